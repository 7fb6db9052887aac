// A line that reached us twice is one line (docs/counting.md, "A line logged twice"): unit rules of
// the duplicate filter through the decider, then Exim's real syslog output (test/fixtures/real/
// exim-syslog-duplication.log, captured from Exim 4.96 with its default syslog_duplication).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseRecord } from '../../src/parse/index.js';
import { loadRulePack } from '../../src/rules/pack.js';
import { Decider } from '../../src/state/decider.js';
import type { Policy } from '../../src/state/policy.js';
import type { Match } from '../../src/types.js';
import { DEFAULT_POLICY, T0, match, s } from './helpers.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const EXIM = join(ROOT, 'test/fixtures/real/exim-syslog-duplication.log');
const CLI = join(ROOT, 'dist/src/cli/main.js');
/** Counts without ever banning, so every attempt is seen. */
const COUNT: Policy = { ...DEFAULT_POLICY, maxretry: 1000 };

/** A match whose log line is `text` from host/program/pid. */
function line(addr: string, t: number, text: string, o: { host?: string; program?: string; pid?: number } = {}): Match {
  const m = match(addr, t);
  return { ...m, event: { ...m.event, host: o.host ?? 'mx1', program: o.program ?? 'exim', pid: o.pid ?? 4242, message: text } };
}

function counted(d: Decider, ms: readonly Match[]): number[] {
  return ms.map((m) => {
    return d.observe(m, m.event.time).attempts;
  });
}

const TEXT = '2026-12-04 16:56:20 [4242] plain_fail authenticator failed for (x) [192.0.2.9]: 535 Incorrect authentication data (set_id=alice)';

test('an exact copy (same host, program, pid, text) within the window counts once, and is reported in stats', () => {
  const d = new Decider({ policies: [COUNT] });
  assert.deepEqual(counted(d, [line('192.0.2.9', T0, TEXT), line('192.0.2.9', T0, TEXT)]), [1, 0]);
  // Journald's microsecond times differ between the copies; they may also arrive out of order.
  assert.deepEqual(counted(d, [line('192.0.2.9', T0 + s(60), TEXT), line('192.0.2.9', T0 + s(60) + 1, TEXT)]), [1, 0]);
  assert.deepEqual(counted(d, [line('192.0.2.9', T0 + s(121), TEXT), line('192.0.2.9', T0 + s(121) - 500, TEXT)]), [1, 0]);
  // The same text a second later (the next second of a 1 s syslog timestamp) is a new line.
  assert.deepEqual(counted(d, [line('192.0.2.9', T0 + s(180), TEXT), line('192.0.2.9', T0 + s(181), TEXT)]), [1, 1]);
  assert.equal(d.stats().duplicates, 3);
  assert.equal(d.stats().counted, 5);
});

test('lines that differ in host, program, pid or text are never collapsed', () => {
  const d = new Decider({ policies: [COUNT] });
  const got = counted(d, [
    line('192.0.2.9', T0, TEXT),
    line('192.0.2.9', T0, TEXT, { host: 'mx2' }),
    line('192.0.2.9', T0, TEXT, { program: 'exim4' }),
    line('192.0.2.9', T0, TEXT, { pid: 4243 }),
    line('192.0.2.9', T0, `${TEXT} `),
  ]);
  assert.deepEqual(got, [1, 1, 1, 1, 1]);
  assert.equal(d.stats().duplicates, 0);
});

test('the same text of one process a second or more apart is a new attempt (Postfix SASL lines), and the window does not slide', () => {
  const pf = 'warning: unknown[198.51.100.10]: SASL PLAIN authentication failed: ';
  const d = new Decider({ policies: [COUNT] });
  const at = (sec: number): Match => line('198.51.100.10', T0 + s(sec), pf, { program: 'postfix/smtpd', pid: 28302 });
  assert.deepEqual(counted(d, [at(0), at(1), at(2), at(4), at(6)]), [1, 1, 1, 1, 1]);
  // A process repeating a line every 300 ms still counts about once per 600 ms: copies are
  // compared with the copy that counted, not with the last copy seen.
  const e = new Decider({ policies: [COUNT] });
  assert.deepEqual(counted(e, [0, 300, 600, 900, 1200].map((ms) => line('198.51.100.10', T0 + ms, pf, { pid: 1 }))), [1, 0, 1, 0, 1]);
});

test('a line without a pid is never taken for a copy (nothing says one process logged both)', () => {
  const d = new Decider({ policies: [COUNT] });
  const noPid = (): Match => {
    const m = line('192.0.2.9', T0, TEXT);
    const { pid: _pid, ...event } = m.event;
    return { ...m, event };
  };
  assert.deepEqual(counted(d, [noPid(), noPid(), noPid()]), [1, 1, 1]);
  assert.equal(d.stats().duplicates, 0);
});

test('duplicateWindowMs is an option; 0 turns the check off', () => {
  const off = new Decider({ policies: [COUNT], duplicateWindowMs: 0 });
  assert.deepEqual(counted(off, [line('192.0.2.9', T0, TEXT), line('192.0.2.9', T0, TEXT)]), [1, 1]);
  const wide = new Decider({ policies: [COUNT], duplicateWindowMs: 1000 });
  assert.deepEqual(counted(wide, [line('192.0.2.9', T0, TEXT), line('192.0.2.9', T0 + s(1), TEXT), line('192.0.2.9', T0 + s(1) + 1, TEXT)]), [1, 0, 1]);
});

test('memory is bounded: past maxDuplicates newer lines, an old line is forgotten (counted again, never dropped wrongly)', () => {
  const d = new Decider({ policies: [COUNT], maxDuplicates: 3 });
  const others = [1, 2, 3].map((i) => line('192.0.2.9', T0, `${TEXT} ${i}`));
  assert.deepEqual(counted(d, [line('192.0.2.9', T0, TEXT), ...others, line('192.0.2.9', T0, TEXT)]), [1, 1, 1, 1, 1]);
});

test('a copy of a line that banned is not counted against the banned address again', () => {
  const d = new Decider({ policies: [{ ...DEFAULT_POLICY, maxretry: 2 }] });
  const a = line('198.51.100.66', T0, `${TEXT} a`), b = line('198.51.100.66', T0 + s(2), `${TEXT} b`);
  assert.equal(d.observe(a, T0).decisions.length, 0);
  assert.equal(d.observe(a, T0).decisions.length, 0, 'the copy of the first failure does not make a second');
  assert.equal(d.observe(b, T0 + s(2)).decisions.length, 1);
  d.observe(b, T0 + s(2));
  assert.equal(d.stats().bans, 1);
});

// ── Exim's real output ──────────────────────────────────────────────────────────────────────

/** Failed AUTHs each client made (test/fixtures/real/exim-syslog-duplication/README.md). */
const EXIM_TRUTH: Record<string, number> = {
  '192.0.2.9': 3,
  // Two failures within the same second on one connection: identical text (Exim's timestamp has
  // one-second resolution, the pid is the connection's), so they count once. The documented limit.
  '198.51.100.7': 1,
  '203.0.113.44': 2,
  '198.51.100.66': 6,
};

function replayExim(policy: Policy): { d: Decider; perIp: Map<string, number>; bans: string[]; matches: number } {
  const engine = loadRulePack();
  const d = new Decider({ policies: [policy] });
  const perIp = new Map<string, number>();
  const bans: string[] = [];
  let n = 0, matches = 0;
  for (const text of readFileSync(EXIM, 'utf8').split('\n')) {
    if (!text) continue;
    const r = parseRecord({ kind: 'line', text, origin: { kind: 'file', name: 'exim', line: ++n } }, { format: 'auto', now: Date.UTC(2026, 11, 31) });
    assert.ok('event' in r, text);
    const m = engine.match(r.event);
    assert.ok(m, `a rule takes every captured line: ${text}`);
    matches++;
    const { decisions, attempts } = d.observe(m, m.event.time);
    for (const b of decisions) if (b.action === 'ban') bans.push(b.target);
    if (m.class === 'auth') perIp.set(m.ip, (perIp.get(m.ip) ?? 0) + attempts);
  }
  return { d, perIp, bans, matches };
}

test('real Exim 4.96 syslog output: each failed AUTH, logged twice, counts once', () => {
  const { d, perIp, matches } = replayExim(COUNT);
  assert.equal(matches, 28);
  assert.deepEqual(Object.fromEntries(perIp), EXIM_TRUTH);
  // Each of the 13 AUTH failure lines has its copy, and 198.51.100.7's second same-second failure
  // is taken for a copy too (the refused RCPT's copy is not looked at: no policy counts `reject`).
  assert.equal(d.stats().duplicates, 14);
});

test('real Exim 4.96 syslog output: the user with three typos is not banned at maxretry 5, the attacker is (replay and `mailjail check`)', () => {
  assert.deepEqual(replayExim(DEFAULT_POLICY).bans, ['198.51.100.66']);
  const r = spawnSync(process.execPath, [CLI, 'check', '--json', '--maxretry', '5', EXIM], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
  assert.equal(r.status, 0, r.stderr);
  const summary = (JSON.parse(r.stdout.trimEnd().split('\n').pop()!) as { summary: { banned: string[] } }).summary;
  assert.deepEqual(summary.banned, ['198.51.100.66']);
});
