// Outages of our own auth back end (server-error lines): real Dovecot 2.3 output of a passwd-file
// made unreadable (test/fixtures/real/dovecot-passdb-outage.md), and the detector's rules.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Decider } from '../../src/state/decider.js';
import type { StateEvent } from '../../src/state/decider.js';
import { loadRulePack, sampleEvent } from '../../src/rules/pack.js';
import type { Match } from '../../src/types.js';
import { DEFAULT_POLICY, T0, match, s } from './helpers.js';

const FIXTURE = fileURLToPath(new URL('../../../test/fixtures/real/dovecot-passdb-outage.log', import.meta.url));
const engine = loadRulePack();

/**
 * The fixture as Dovecot writes it through syslog on host `mail` (program `dovecot`, no `Info: `
 * level text), with Postfix's line beside each session-less auth request (what Postfix's
 * smtpd_sasl_type = dovecot would have logged: the same text for a wrong password and for a
 * back end that could not check one).
 */
function syslogForm(): string[] {
  const out: string[] = [];
  for (const raw of readFileSync(FIXTURE, 'utf8').split('\n')) {
    const m = /^Dec (\d\d) (\d\d:\d\d:\d\d) ([^:]+): (?:Info: )?(.*)$/.exec(raw);
    if (!m) continue;
    const head = `Dec ${m[1]!.replace(/^0/, ' ')} ${m[2]} mail`;
    out.push(`${head} dovecot: ${m[3]}: ${m[4]}`);
    const sasl = /^(?:Error: )?passwd-file\(([^(),]+),([0-9.]+)\): /.exec(m[4]!);
    if (m[3] === 'auth' && sasl) {
      out.push(`${head} postfix/submission/smtpd[2001]: warning: unknown[${sasl[2]}]: SASL PLAIN authentication failed: (reason unavailable), sasl_username=${sasl[1]}`);
    }
  }
  return out;
}

function replay(lines: readonly string[], keep: (m: Match) => boolean = () => true): { banned: Map<string, number>; events: StateEvent[]; d: Decider } {
  const d = new Decider({ policies: [DEFAULT_POLICY] });
  const banned = new Map<string, number>();
  for (const line of lines) {
    const ev = sampleEvent(line, 'fixture');
    const m = ev && engine.match(ev);
    if (!m || !keep(m)) continue;
    for (const b of d.observe(m, m.event.time).decisions) if (b.action === 'ban') banned.set(b.target, m.event.time);
  }
  return { banned, events: d.drainEvents(), d };
}

test('real Dovecot passdb outage: benign users failing during it are not counted, the attacker is banned', () => {
  const lines = syslogForm();
  assert.ok(lines.some((l) => l.includes('open(/tmp/outage-cap/users) failed: Permission denied')));
  const { banned, events, d } = replay(lines);
  assert.deepEqual([...banned.keys()], ['203.0.113.66'], 'only the attacker');
  // Three definite failures before the outage and two after it: banned at the fifth, after it.
  const at = new Date(banned.get('203.0.113.66')!);
  assert.ok(at.getUTCHours() === 16 && at.getUTCMinutes() === 54 && at.getUTCSeconds() >= 55, `banned at ${at.toISOString()}`);
  const starts = events.filter((e) => e.kind === 'outage' && e.state === 'start');
  assert.equal(starts.length, 1);
  const st = starts[0]!;
  assert.deepEqual(st.kind === 'outage' && [st.cause, st.host], ['server-error', 'mail']);
  assert.ok(d.stats().serverErrors >= 14);
  assert.equal(d.stats().outageExcused, 6, 'the six Postfix lines during the outage were excused');
});

test('without the server-error lines the same log bans a benign user (what the detector prevents)', () => {
  const { banned } = replay(syslogForm(), (m) => m.class !== 'server-error');
  assert.ok(banned.has('192.0.2.10'), 'bob over SASL, six temporary failures read as wrong passwords');
});

test('the fixture in Dovecot\'s own log-file form (no host) is read the same way', () => {
  const lines = readFileSync(FIXTURE, 'utf8').split('\n').filter((l) => l !== '');
  const ms = lines.map((l) => sampleEvent(l, 'fixture')).map((e) => e && engine.match(e)).filter((m): m is Match => m !== undefined);
  const errors = ms.filter((m) => m.class === 'server-error');
  // 14 auth-process lines and 8 login summaries ("auth service reported temporary failure").
  assert.equal(errors.filter((m) => m.ruleId === 'dovecot-auth-backend-error').length, 14);
  assert.equal(errors.filter((m) => m.ruleId === 'dovecot-login-auth-tempfail').length, 8);
  assert.ok(!ms.some((m) => m.class === 'auth' && m.ip !== '203.0.113.66'), 'no benign address has an auth failure');
});

const err = (addr: string, t: number, host = 'mx1'): Match => {
  const m = match(addr, t, { cls: 'server-error' });
  return { ...m, event: { ...m.event, host } };
};
const fail = (addr: string, t: number, host = 'mx1'): Match => {
  const m = match(addr, t);
  return { ...m, event: { ...m.event, host } };
};

test('an outage is per host, ends after the hold without server errors, and failures count again', () => {
  const d = new Decider({ policies: [{ ...DEFAULT_POLICY, maxretry: 3 }], outageHoldMs: 60_000, serverErrorPairMs: 5_000 });
  d.observe(err('192.0.2.1', T0), T0);
  assert.equal(d.stats().outageHosts, 1);
  for (let i = 1; i <= 5; i++) {
    assert.deepEqual(d.observe(fail('198.51.100.1', T0 + s(i * 10)), T0 + s(i * 10)), { decisions: [], attempts: 0 }, 'every address, during the outage');
  }
  // Another host is not in an outage: its failures count.
  assert.equal(d.observe(fail('198.51.100.2', T0 + s(1), 'mx2'), T0 + s(1)).attempts, 1);
  // A server error of the same address pairs with its failure on another host (same attempt).
  d.observe(err('198.51.100.3', T0 + s(2), 'imap9'), T0 + s(2));
  assert.equal(d.observe(fail('198.51.100.3', T0 + s(3), 'mx2'), T0 + s(3)).attempts, 0);
  assert.equal(d.observe(fail('198.51.100.3', T0 + s(20), 'mx2'), T0 + s(20)).attempts, 1, 'outside the pairing window it counts');
  // mx1's last server error was at T0: counting resumes after T0 + 60 s.
  const t = T0 + s(61);
  assert.equal(d.observe(fail('198.51.100.1', t), t).attempts, 1);
  const ends = d.drainEvents().filter((e) => e.kind === 'outage' && e.state === 'end' && e.host === 'mx1');
  assert.equal(ends.length, 1);
  const end = ends[0]!;
  const o = end.kind === 'outage' ? end.outage : undefined;
  assert.deepEqual(o && [o.start, o.end, o.errors, o.excused], [T0, T0 + s(60), 1, 5]);
  assert.equal(d.stats().outageHosts, 1, 'imap9 is still in its outage');
});

test('an attacker hammering across an outage is banned by his definite failures before and after it', () => {
  const d = new Decider({ policies: [DEFAULT_POLICY] });
  const A = '203.0.113.9';
  for (const t of [0, 10, 20]) d.observe(fail(A, T0 + s(t)), T0 + s(t));
  d.observe(err('192.0.2.1', T0 + s(30)), T0 + s(30));
  for (const t of [31, 40, 50, 60, 70]) assert.deepEqual(d.observe(fail(A, T0 + s(t)), T0 + s(t)).decisions, []);
  assert.deepEqual(d.observe(fail(A, T0 + s(200)), T0 + s(200)).decisions, []);
  const b = d.observe(fail(A, T0 + s(210)), T0 + s(210)).decisions;
  assert.equal(b.length, 1, 'the fifth definite failure, after the outage');
});

// Real Postfix 3.7 + Dovecot 2.3 from the acceptance lab's outage pass (test/acceptance/outage.ts,
// test/fixtures/real/postfix-dovecot-outage.md): Postfix logs `SASL ... authentication failed:
// (reason unavailable)` for a Dovecot temporary failure, as for a wrong password.
const LAB_CAPTURE = fileURLToPath(new URL('../../../test/fixtures/real/postfix-dovecot-outage.log', import.meta.url));

function replayCapture(maxretry: number): { banned: Map<string, string>; events: StateEvent[]; d: Decider; lines: string[] } {
  const d = new Decider({ policies: [{ ...DEFAULT_POLICY, maxretry }] });
  const banned = new Map<string, string>();
  const lines = readFileSync(LAB_CAPTURE, 'utf8').split('\n').filter((l) => l !== '');
  for (const line of lines) {
    const ev = sampleEvent(line, 'fixture');
    const m = ev && engine.match(ev);
    if (!m) continue;
    for (const b of d.observe(m, m.event.time).decisions) if (b.action === 'ban') banned.set(b.target, line);
  }
  return { banned, events: d.drainEvents(), d, lines };
}

test('real Postfix + Dovecot outage (acceptance lab): benign users are not counted, the attacker is banned at his first failure after it', () => {
  const { banned, events, d, lines } = replayCapture(3);
  // What real Postfix 3.7 logs for a Dovecot temp-fail: the wrong-password text.
  assert.ok(lines.some((l) => l.includes('postfix/smtpd[29923]: warning: unknown[192.0.2.32]: SASL LOGIN authentication failed: (reason unavailable), sasl_username=carol@mx.test')));
  assert.deepEqual([...banned.keys()], ['198.51.100.60'], 'only the attacker');
  // Two definite failures before the outage; every guess during it excused; the first guess after
  // the restore (an IMAP unknown user) is the third.
  assert.match(banned.get('198.51.100.60')!, /17:25:00 .*passwd-file\(ghost-o5@mx\.test,198\.51\.100\.60,<[^>]+>\): unknown user$/);
  const outages = events.filter((e) => e.kind === 'outage' && e.cause === 'server-error');
  assert.deepEqual(outages.map((e) => e.kind === 'outage' && [e.state, e.host]), [['start', 'mx1'], ['end', 'mx1']]);
  const end = outages[1]!;
  // Ended by the auth process's verdict on the IMAP login, not 60 s after the last server error.
  assert.equal(new Date(end.time).toISOString().slice(11, 19), '17:25:00');
  // Postfix's lines of the 7 benign SASL attempts during the outage, and the attacker's 2
  // ("Connection lost": his requests waited out Dovecot's auth penalty).
  assert.equal(d.stats().outageExcused, 9);
});

test('a verdict of the auth process on a login session ends its host\'s outage (attempt.verdict)', () => {
  const at = (line: string) => { const ev = sampleEvent(line, 'fixture'); return ev && engine.match(ev); };
  const m = at('Dec  4 17:25:00 mx1 dovecot[29564]: auth: passwd-file(ghost-o5@mx.test,198.51.100.60,<w3vnJ9JhyZ7GM2Q8>): unknown user');
  assert.equal(m?.ruleId, 'dovecot-auth-failed');
  assert.equal(m?.attempt.verdict, true);
  assert.equal(at('Dec  4 17:25:02 mx1 dovecot[29564]: imap-login: Disconnected: Aborted login by logging out (auth failed, 1 attempts in 2 secs): user=<ghost-o5@mx.test>, method=PLAIN, rip=198.51.100.60, lip=192.0.2.1, session=<w3vnJ9JhyZ7GM2Q8>')?.attempt.verdict, undefined, 'the login process is no verdict of the back end');
});
