// `mailjail check` as a user runs it: the built CLI in a child process, on files and stdin.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const DEMO = join(ROOT, 'test/fixtures/demo.log');

function run(args: string[], input?: string | Buffer, nodeArgs: string[] = []): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [...nodeArgs, CLI, ...args], { encoding: 'utf8', input, env: { ...process.env, TZ: 'UTC' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

test('check on the bundled demo log names the attackers and spares the user who mistyped once', () => {
  const r = run(['check', DEMO]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /Would ban 3 addresses under policy auth \(/);
  for (const who of ['203.0.113.45', '2001:db8:bad:1::/64', '198.51.100.23']) assert.ok(r.out.includes(who), `${who} in:\n${r.out}`);
  assert.ok(!/192\.0\.2\.50 .*\d{4}-/.test(r.out.split('Would ban')[1]!), 'the user who mistyped once is not banned');
  assert.ok(!r.out.split('Would ban')[1]!.includes('203.0.113.99'), 'three attempts are below maxretry');
  // Offenders as the policy counts them: the rotator is one /64; two lines of one login are one attempt.
  assert.match(r.out, /^ {2}2001:db8:bad:1::\/64 +5 +12 +6 /m);
  assert.match(r.out, /^ {2}192\.0\.2\.50 +1 +2 +1 /m);
});

test('check --json: one object per matched line, then the summary', () => {
  const r = run(['check', '--json', DEMO]);
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const summary = lines.pop()!['summary'] as { lines: number; matched: number; banned: string[] };
  assert.equal(summary.lines, 125);
  assert.equal(summary.matched, lines.length);
  assert.deepEqual(new Set(summary.banned), new Set(['203.0.113.45', '2001:db8:bad:1::/64', '198.51.100.23']));
  for (const m of lines) {
    assert.deepEqual(Object.keys(m).filter((k) => k !== 'user'), ['line', 'rule', 'service', 'class', 'ip', 'time', 'attempts']);
    assert.equal(typeof m['line'], 'number');
    assert.match(String(m['time']), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }
});

test('check reads stdin, --maxretry/--findtime change the verdict', () => {
  const line = (i: number): string => `Nov  4 00:00:0${i} mx1 postfix/smtpd[1]: warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n`;
  const input = [1, 2, 3].map(line).join('');
  const strict = run(['check', '--json', '--maxretry', '3', '-'], input);
  assert.deepEqual((JSON.parse(strict.out.trimEnd().split('\n').pop()!) as { summary: { banned: string[] } }).summary.banned, ['192.0.2.7']);
  const lax = run(['check', '--json', '-'], input);
  assert.deepEqual((JSON.parse(lax.out.trimEnd().split('\n').pop()!) as { summary: { banned: string[] } }).summary.banned, []);
  const narrow = run(['check', '--json', '--maxretry', '3', '--findtime', '1', '-'], input);
  assert.deepEqual((JSON.parse(narrow.out.trimEnd().split('\n').pop()!) as { summary: { banned: string[] } }).summary.banned, []);
});

test('check journald JSON on stdin (journalctl -o json | mailjail check -)', () => {
  const e = (i: number): string => JSON.stringify({
    __REALTIME_TIMESTAMP: String(1730678400000000 + i * 1e6), _HOSTNAME: 'imap1', SYSLOG_IDENTIFIER: 'dovecot',
    MESSAGE: `imap-login: Disconnected: Connection closed (auth failed, 1 attempts in 2 secs): user=<admin>, method=PLAIN, rip=203.0.113.8, lip=192.0.2.10, TLS, session=<sess${i}AAAAAAAAAAA>`,
  });
  const r = run(['check', '--json', '--maxretry', '2', '-'], `${e(1)}\n${e(2)}\n`);
  assert.equal(r.code, 0, r.err);
  const out = r.out.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  assert.equal(out.length, 3);
  assert.equal(out[0]!['ip'], '203.0.113.8');
  assert.equal(out[0]!['time'], '2024-11-04T00:00:01.000Z');
  assert.deepEqual((out[2]!['summary'] as { banned: string[] }).banned, ['203.0.113.8']);
});

test('bad input: clear errors, counted skips, never a crash', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mj-check-'));
  try {
    const missing = run(['check', join(dir, 'nope.log')]);
    assert.equal(missing.code, 2);
    assert.match(missing.err, /nope\.log: no such file/);
    const fmt = run(['check', '--format', 'xml', DEMO]);
    assert.notEqual(fmt.code, 0);
    assert.match(fmt.err, /format/);
    const big = join(dir, 'big.log');
    writeFileSync(big, `${'x'.repeat(70_000)}\n{"MESSAGE": broken\nNov  4 00:00:01 mx1 postfix/smtpd[1]: connect from x\n\u0000\u00ff garbage\n`);
    const r = run(['check', '--json', big]);
    assert.equal(r.code, 0, r.err);
    const s = (JSON.parse(r.out.trimEnd().split('\n').pop()!) as { summary: { lines: number; skippedOversize: number; parseErrors: number } }).summary;
    assert.deepEqual([s.lines, s.skippedOversize, s.parseErrors], [4, 1, 1]);
    const badRules = run(['check', '--rules', join(ROOT, 'test/fixtures/rules-bad'), DEMO]);
    assert.equal(badRules.code, 2);
    assert.match(badRules.err, /MJ_RULE_NO_IP/);
    assert.match(badRules.err, /no-ip\.yaml:7/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

const JOURNAL_ROUTE = /journalctl -o json --since -1d SYSLOG_FACILITY=2 \| mailjail check -/;

test('a missing log file: no raw ENOENT, but the journal route as a command to copy', () => {
  const r = run(['check', '/nonexistent/mail.log']);
  assert.equal(r.code, 2);
  assert.doesNotMatch(r.err, /ENOENT/);
  assert.match(r.err, /\/nonexistent\/mail\.log: no such file/);
  assert.match(r.err, JOURNAL_ROUTE);
  assert.equal(r.out, '');
});

test('binary input is refused as binary, a file up front and stdin after the replay', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mj-check-'));
  try {
    // Like an executable: short "lines" of NUL bytes and bytes that are not UTF-8.
    const bin = Buffer.concat(Array.from({ length: 200 }, (_, i) => Buffer.from([0x7f, 0x45, 0x4c, 0x46, 0, 0, 0x80 | (i & 0x3f), 0xff, 0xfe, 0x0a])));
    const file = join(dir, 'a.out');
    writeFileSync(file, bin);
    const r = run(['check', file]);
    assert.equal(r.code, 2);
    assert.match(r.err, /a\.out is a binary file, not a log/);
    assert.match(r.err, /journalctl -o json --file FILE\.journal \| mailjail check -/);
    const piped = run(['check', '-'], bin);
    assert.equal(piped.code, 2);
    assert.match(piped.err, /the input looks binary, not like a log \(200 lines of 200 hold NUL bytes or invalid UTF-8\)/);
    // A log with a run of NUL bytes (a crash cut it short) is still a log.
    const log = join(dir, 'mail.log');
    const sasl = 'Nov  4 00:00:01 mx1 postfix/smtpd[1]: warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n';
    writeFileSync(log, `${sasl}${'\u0000'.repeat(4096)}${sasl}${sasl}`);
    const ok = run(['check', log]);
    assert.equal(ok.code, 0, ok.err);
    // The NUL run glues onto the line after it: that one line is not understood, the rest is read.
    assert.match(ok.out, /matched 2 lines: auth 2\n {2}not understood: 1 line of 3 /);
    assert.doesNotMatch(ok.out, /check reads/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('text in no known format: says how much was not understood and which formats check reads', () => {
  const r = run(['check', '-'], 'hello world\nthis is not a log\n');
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /not understood: 2 lines of 2 \(no syslog header, not journald JSON/);
  assert.match(r.out, /check reads BSD syslog .*RFC 5424, journald JSON \(journalctl -o json\)/);
  const json = run(['check', '--json', '-'], 'hello world\nNov  4 00:00:01 mx1 postfix/smtpd[1]: connect from x\n');
  assert.equal((JSON.parse(json.out.trimEnd().split('\n').pop()!) as { summary: { notUnderstood: number } }).summary.notUnderstood, 1);
  // A real log: not a word about formats.
  assert.doesNotMatch(run(['check', DEMO]).out, /not understood/);
});

test('counts are singular where they are one: "1 line", "1 attempt", "1 address"', () => {
  const one = 'Nov  4 00:00:01 mx1 postfix/smtpd[1]: warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6\n';
  const r = run(['check', '--maxretry', '1', '-'], one);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^mailjail check: 1 line from /);
  assert.match(r.out, /matched 1 line: auth 1/);
  assert.match(r.out, /1 offender in all/);
  assert.match(r.out, /Would ban 1 address under policy auth \(auth: 1 attempt within 600 s/);
  assert.doesNotMatch(r.out, /\b1 (lines|attempts|addresses|offenders)\b/);
});

test('on Node.js older than 20 the CLI says so before loading anything', () => {
  const fake18 = 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"18.19.0"})';
  const r = run(['--version'], undefined, ['--import', fake18]);
  assert.equal(r.code, 1);
  assert.match(r.err, /mailjail needs Node\.js 20 or newer; this is Node\.js 18\.19\.0/);
  assert.match(r.err, /\.deb and \.rpm packages carry their own Node\.js/);
  assert.equal(r.out, '');
  const now = run(['--version']);
  assert.equal(now.code, 0, now.err);
});

test("Dovecot's auth-process lines are counted under the protocol their session's login line names", () => {
  const demo = run(['check', DEMO]);
  assert.match(demo.out, /^ {2}dovecot-auth-failed +7 +imap +auth$/m);
  assert.match(demo.out, /Matches per service: smtp 36, imap 14\n/);
  const auth = (s: string, ip: string): string => `Nov  4 00:00:01 mx1 dovecot: auth: passwd-file(bob,${ip},<${s}>): Password mismatch\n`;
  const login = (proto: string, s: string, ip: string): string =>
    `Nov  4 00:00:03 mx1 dovecot: ${proto}-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<bob>, method=PLAIN, rip=${ip}, lip=192.0.2.1, TLS, session=<${s}>\n`;
  const input = auth('pop3sessionAAAAA', '192.0.2.5') + login('pop3', 'pop3sessionAAAAA', '192.0.2.5') +
    auth('nologinlineBBBBB', '192.0.2.6'); // no login line: the protocol stays unknown (`mail`)
  const r = run(['check', '-'], input);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^ {2}dovecot-auth-failed +2 +pop3, mail +auth$/m);
  assert.match(r.out, /Matches per service: pop3 2, mail 1\n/);
});

test('check --json says what each line counted and lists the auth back-end outage (real Dovecot 2.3 lines)', () => {
  const fixture = join(ROOT, 'test/fixtures/real/dovecot-passdb-outage.log');
  const r = run(['check', '--json', fixture]);
  assert.equal(r.code, 0, r.err);
  const lines = r.out.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
  const summary = lines.pop()!['summary'] as { banned: string[]; outages: { start: string; end: string; lines: number; errors: number; host: string | null }[] };
  assert.deepEqual(summary.banned, ['203.0.113.66'], 'three failures before the outage and two after it');
  for (const m of lines) assert.equal(typeof m['attempts'], 'number');
  // Server-error lines add nothing; the attacker's summary of a session already counted adds 0.
  assert.ok(lines.filter((m) => m['class'] === 'server-error').every((m) => m['attempts'] === 0));
  const attacker = lines.filter((m) => m['ip'] === '203.0.113.66' && m['class'] === 'auth');
  assert.equal(attacker.reduce((n, m) => n + (m['attempts'] as number), 0), 5);
  assert.equal(summary.outages.length, 1);
  const o = summary.outages[0]!;
  assert.equal(o.start, '2026-12-04T16:53:34.000Z'.replace('2026', o.start.slice(0, 4)));
  assert.equal(o.errors, 22, '14 auth-process lines and 8 login summaries');
  assert.equal(o.host, '');
  assert.ok(o.end > o.start);
  const human = run(['check', fixture]);
  assert.match(human.out, /Auth back-end outages \(1\)/);
});
