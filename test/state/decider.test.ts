import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Decider } from '../../src/state/decider.js';
import { Allowlist } from '../../src/state/allowlist.js';
import type { Policy } from '../../src/state/policy.js';
import { parseCidr } from '../../src/parse/ip.js';
import type { BanDecision, Cidr } from '../../src/types.js';
import { DEFAULT_POLICY, T0, match, s } from './helpers.js';

const P: Policy = { ...DEFAULT_POLICY, escalation: { factor: 2, maxBantime: s(4 * 3600), window: s(30 * 86400) } };
const bans = (ds: readonly BanDecision[]): BanDecision[] => ds.filter((d) => d.action === 'ban');

test('window edge: the attempt exactly findtime after the first still counts (closed window)', () => {
  const d = new Decider({ policies: [P] });
  const times = [0, 150, 300, 450];
  for (const t of times) assert.equal(d.observe(match('192.0.2.1', T0 + s(t)), T0 + s(t)).decisions.length, 0, 'no ban before maxretry');
  const out = d.observe(match('192.0.2.1', T0 + s(600)), T0 + s(600)).decisions;
  assert.equal(out.length, 1);
  const b = out[0]!;
  assert.equal(b.action, 'ban');
  if (b.action === 'ban') {
    assert.equal(b.target, '192.0.2.1');
    assert.equal(b.until, T0 + s(600) + s(3600));
    assert.equal(b.level, 0);
    assert.equal(b.policy, 'auth');
  }
});

test('window edge: one millisecond past findtime the first attempt no longer counts', () => {
  const d = new Decider({ policies: [P] });
  for (const t of [0, 150, 300, 450]) d.observe(match('192.0.2.1', T0 + s(t)), T0 + s(t));
  assert.equal(d.observe(match('192.0.2.1', T0 + s(600) + 1), T0 + s(600) + 1).decisions.length, 0);
  // ... and the next one (5 within the window again) bans.
  assert.equal(d.observe(match('192.0.2.1', T0 + s(601)), T0 + s(601)).decisions.length, 1);
});

test('while banned no re-ban; after expiry a fresh maxretry is needed', () => {
  const d = new Decider({ policies: [P] });
  let n = 0;
  for (let i = 0; i < 5; i++) n += d.observe(match('192.0.2.1', T0 + i), T0 + i).decisions.length;
  assert.equal(n, 1);
  for (let i = 0; i < 20; i++) assert.equal(d.observe(match('192.0.2.1', T0 + s(10 + i)), T0 + s(10 + i)).decisions.length, 0);
  assert.equal(d.stats().whileBanned, 20);
  const after = T0 + s(3600) + s(1);
  for (let i = 0; i < 4; i++) assert.equal(d.observe(match('192.0.2.1', after + i), after + i).decisions.length, 0);
  const out = d.observe(match('192.0.2.1', after + 4), after + 4).decisions;
  assert.equal(out.length, 1);
  const b = out[0]!;
  assert.ok(b.action === 'ban' && b.level === 1 && b.until === after + 4 + s(7200), 'escalated to level 1, doubled');
});

test('escalation doubles per previous ban and is capped at maxBantime', () => {
  const d = new Decider({ policies: [P] });
  let t = T0;
  const lengths: number[] = [];
  for (let round = 0; round < 5; round++) {
    for (let i = 0; i < 5; i++) {
      for (const b of bans(d.observe(match('192.0.2.9', t), t).decisions)) if (b.action === 'ban') { lengths.push((b.until - t) / 1000); t = b.until; }
      t += 1;
    }
  }
  assert.deepEqual(lengths, [3600, 7200, 14400, 14400, 14400]);
});

test('recidive: the Nth ban within the window gets the long ban time', () => {
  const p: Policy = { ...DEFAULT_POLICY, name: 'r', recidive: { bans: 3, window: s(86400), bantime: s(7 * 86400) } };
  const { escalation: _e, ...noEsc } = p;
  const d = new Decider({ policies: [noEsc] });
  let t = T0;
  const lengths: number[] = [];
  for (let round = 0; round < 3; round++) {
    for (let i = 0; i < 5; i++) {
      for (const b of d.observe(match('192.0.2.9', t), t).decisions) if (b.action === 'ban') { lengths.push((b.until - t) / 1000); t = b.until; }
      t += 1;
    }
  }
  assert.deepEqual(lengths, [3600, 3600, 7 * 86400]);
});

test('session: lines of one session count once each, a summary raises the count to its total, never beyond', () => {
  const d = new Decider({ policies: [{ ...P, maxretry: 6 }] });
  const sess = (t: number, total?: number) => match('198.51.100.7', T0 + t, { attempt: total === undefined ? { session: 'abc' } : { session: 'abc', total } });
  d.observe(sess(1), T0 + 1);
  d.observe(sess(2), T0 + 2);
  assert.equal(d.stats().counted, 2);
  d.observe(sess(3, 3), T0 + 3); // "3 attempts": one more than the two lines
  assert.equal(d.stats().counted, 3);
  d.observe(sess(4, 3), T0 + 4); // the same summary again adds nothing
  d.observe(sess(5, 2), T0 + 5); // a smaller total never subtracts
  assert.equal(d.stats().counted, 3);
  const out = d.observe(sess(6, 6), T0 + 6).decisions;
  assert.equal(d.stats().counted, 6);
  assert.equal(bans(out).length, 1, 'the summary that makes maxretry bans');
});

test('a probe line of a session (refused plaintext login) is not counted again by the auth summary of that session', () => {
  // Dovecot with disable_plaintext_auth: "Login failed: Plaintext authentication disabled" (probe,
  // session s1) then "Aborted login (auth failed, 1 attempts)" (auth summary, session s1).
  const d = new Decider({ policies: [{ ...P, maxretry: 3 }] });
  for (let i = 0; i < 5; i++) {
    const sid = `pt${i}`;
    assert.deepEqual(bans(d.observe(match('192.0.2.73', T0 + i * 10, { cls: 'probe', attempt: { session: sid } }), T0 + i * 10).decisions), []);
    assert.deepEqual(bans(d.observe(match('192.0.2.73', T0 + i * 10 + 1, { attempt: { session: sid, total: 1 } }), T0 + i * 10 + 1).decisions), []);
  }
  assert.equal(d.stats().counted, 0, 'five refused plaintext logins are no failed login');
  // A real failure in another session of the same address still counts; so does a summary whose
  // total exceeds the refused lines (a refused plaintext LOGIN, then a checked one, in one session).
  d.observe(match('192.0.2.73', T0 + 100, { attempt: { session: 'real', total: 1 } }), T0 + 100);
  d.observe(match('192.0.2.73', T0 + 110, { cls: 'probe', attempt: { session: 'mixed' } }), T0 + 110);
  d.observe(match('192.0.2.73', T0 + 111, { attempt: { session: 'mixed', total: 2 } }), T0 + 111);
  assert.equal(d.stats().counted, 2);
});

test('a session summary alone with N >= maxretry bans at once; another session of the same address counts separately', () => {
  const d = new Decider({ policies: [P] });
  assert.equal(d.observe(match('198.51.100.8', T0, { attempt: { session: 'x1', total: 3 } }), T0).decisions.length, 0);
  assert.equal(d.observe(match('198.51.100.8', T0 + 1, { attempt: { session: 'x2', total: 2 } }), T0 + 1).decisions.length, 1);
});

test('observe returns what it did: the new attempts of each line (0 for a repeat) and each ban with its evidence', () => {
  const mta = { pair: { group: 'sasl', side: 'mta' } } as const;
  const auth = { pair: { group: 'sasl', side: 'auth-process' } } as const;
  const d = new Decider({ policies: [P], keepEvidence: 5 });
  const first = match('203.0.113.20', T0, { attempt: mta });
  assert.deepEqual(d.observe(first, T0), { decisions: [], attempts: 1 });
  assert.deepEqual(d.observe(match('203.0.113.20', T0 + 1, { attempt: auth }), T0 + 1), { decisions: [], attempts: 0 }, 'the other side of the same attempt');
  assert.equal(d.observe(match('203.0.113.20', T0 + 2, { attempt: { session: 'q', total: 3 } }), T0 + 2).attempts, 3);
  const last = match('203.0.113.20', T0 + 3);
  const o = d.observe(last, T0 + 3);
  assert.equal(o.attempts, 1);
  assert.equal(o.decisions.length, 1);
  const ban = o.decisions[0]!;
  assert.ok(ban.action === 'ban');
  // The counted lines behind the ban, in order (the absorbed auth line is none of them).
  assert.deepEqual(ban.evidence.map((m) => m.event.time), [T0, T0 + 2, T0 + 3]);
  assert.equal(ban.evidence[ban.evidence.length - 1], last);
  // A batch sums its attempts and gathers its bans.
  const b = new Decider({ policies: [P] }).observeBatch([1, 2, 3, 4, 5].map((i) => match('203.0.113.21', T0 + i)));
  assert.equal(b.attempts, 5);
  assert.deepEqual(b.decisions.map((x) => x.target), ['203.0.113.21']);
});

test('pair: a Postfix SASL line and the Dovecot auth line for the same address are one attempt, either order', () => {
  const mta = { pair: { group: 'sasl', side: 'mta' } } as const;
  const auth = { pair: { group: 'sasl', side: 'auth-process' } } as const;
  const d = new Decider({ policies: [P] });
  d.observe(match('203.0.113.5', T0, { attempt: mta }), T0);
  d.observe(match('203.0.113.5', T0 + s(2), { attempt: auth }), T0 + s(2));
  d.observe(match('203.0.113.5', T0 + s(3), { attempt: auth }), T0 + s(3));
  d.observe(match('203.0.113.5', T0 + s(4), { attempt: mta }), T0 + s(4));
  assert.equal(d.stats().counted, 2);
  assert.equal(d.stats().absorbed, 2);
  // Beyond the pairing window the two sides are separate attempts.
  d.observe(match('203.0.113.5', T0 + s(100), { attempt: mta }), T0 + s(100));
  d.observe(match('203.0.113.5', T0 + s(131), { attempt: auth }), T0 + s(131));
  assert.equal(d.stats().counted, 4);
  // Two lines of the same side never pair; another address never pairs.
  d.observe(match('203.0.113.6', T0 + s(200), { attempt: mta }), T0 + s(200));
  d.observe(match('203.0.113.6', T0 + s(201), { attempt: mta }), T0 + s(201));
  d.observe(match('203.0.113.7', T0 + s(201), { attempt: auth }), T0 + s(201));
  assert.equal(d.stats().counted, 7);
});

test('a Dovecot login summary absorbs the earlier session-less auth-process lines of its address', () => {
  const auth = { pair: { group: 'sasl', side: 'auth-process' } } as const;
  const d = new Decider({ policies: [{ ...P, maxretry: 10 }] });
  for (let i = 0; i < 3; i++) d.observe(match('203.0.113.9', T0 + s(i), { attempt: auth }), T0 + s(i));
  assert.equal(d.stats().counted, 3);
  d.observe(match('203.0.113.9', T0 + s(10), { attempt: { session: 'S1', total: 3 } }), T0 + s(10));
  assert.equal(d.stats().counted, 3, '3 driver lines + "3 attempts" = 3');
  d.observe(match('203.0.113.9', T0 + s(11), { attempt: auth }), T0 + s(11));
  d.observe(match('203.0.113.9', T0 + s(12), { attempt: { session: 'S2', total: 4 } }), T0 + s(12));
  assert.equal(d.stats().counted, 7, '1 driver line + "4 attempts" = 4 more');
  // An absorbed auth-process line can no longer pair with a Postfix line.
  d.observe(match('203.0.113.9', T0 + s(13), { attempt: { pair: { group: 'sasl', side: 'mta' } } }), T0 + s(13));
  assert.equal(d.stats().counted, 8);
});

test('weak lines count next to two definite failures of the same address: a hammering attacker is banned', () => {
  const d = new Decider({ policies: [P] });
  const weak = { weak: true } as const;
  assert.equal(d.observe(match('192.0.2.50', T0, { attempt: weak }), T0).decisions.length, 0);
  assert.equal(d.stats().weakIgnored, 1, 'weak alone does not count');
  d.observe(match('192.0.2.50', T0 + 1), T0 + 1);
  d.observe(match('192.0.2.50', T0 + 2, { attempt: weak }), T0 + 2);
  assert.equal(d.stats().weakIgnored, 2, 'one definite failure (a typo) does not explain a weak line');
  d.observe(match('192.0.2.50', T0 + 3), T0 + 3);
  const out: BanDecision[] = [];
  for (let i = 4; i < 7; i++) out.push(...d.observe(match('192.0.2.50', T0 + i, { attempt: weak }), T0 + i).decisions);
  assert.equal(bans(out).length, 1);
  assert.equal(d.stats().weakCounted, 3);
});

test('an attack wave under the auth penalty is no outage: every attacker is banned at its 5th attempt', () => {
  // Real Postfix + Dovecot: after a few failures Dovecot's penalty outlasts Postfix's wait, and each
  // further attempt of each attacker logs only "Connection lost to authentication server".
  const d = new Decider({ policies: [P] });
  const attackers = ['198.51.100.10', '198.51.100.11', '198.51.100.12', '198.51.100.13'];
  const bannedAt = new Map<string, number>();
  let t = T0;
  for (let attempt = 1; attempt <= 6; attempt++) {
    for (const a of attackers) {
      const out = d.observe(match(a, t, attempt <= 3 ? {} : { attempt: { weak: true, pair: { group: 'sasl', side: 'mta' } } }), t).decisions;
      if (bans(out).length) bannedAt.set(a, attempt);
      t += 1000;
    }
  }
  assert.deepEqual([...bannedAt.values()], [5, 5, 5, 5]);
  assert.equal(d.stats().outage, false);
});

test('a weak line and the auth process line of the same attempt count once, counted or not', () => {
  const mta = { weak: true, pair: { group: 'sasl', side: 'mta' } } as const;
  const dovecot = { pair: { group: 'sasl', side: 'auth-process' } } as const;
  // Corroborated: the weak line counts, the Dovecot line 5 s later is the same attempt.
  const d = new Decider({ policies: [P] });
  d.observe(match('192.0.2.9', T0), T0);
  d.observe(match('192.0.2.9', T0 + 1000), T0 + 1000);
  d.observe(match('192.0.2.9', T0 + 20_000, { attempt: mta }), T0 + 20_000);
  d.observe(match('192.0.2.9', T0 + 25_000, { attempt: dovecot }), T0 + 25_000);
  assert.equal(d.stats().counted, 3);
  // Not corroborated: the weak line is ignored and leaves no credit, so the Dovecot line counts.
  const e = new Decider({ policies: [P] });
  e.observe(match('192.0.2.9', T0, { attempt: mta }), T0);
  e.observe(match('192.0.2.9', T0 + 5000, { attempt: dovecot }), T0 + 5000);
  assert.equal(e.stats().counted, 1);
});

test('weak lines during an auth-server outage (many addresses at once) ban nobody', () => {
  const d = new Decider({ policies: [P] });
  const out: BanDecision[] = [];
  const users = ['192.0.2.60', '192.0.2.61', '192.0.2.62', '192.0.2.63'];
  let t = T0;
  for (const u of users) out.push(...d.observe(match(u, t++), t).decisions); // one real typo each
  for (let round = 0; round < 10; round++) for (const u of users) out.push(...d.observe(match(u, t, { attempt: { weak: true } }), t++).decisions);
  assert.equal(out.length, 0);
  assert.ok(d.stats().outage);
  assert.equal(d.stats().outages, 1);
  assert.ok(d.drainEvents().some((e) => e.kind === 'outage' && e.state === 'start'));
});

test('IPv6 is counted and banned per /64: rotating addresses inside it are one offender', () => {
  const d = new Decider({ policies: [P] });
  const out: BanDecision[] = [];
  for (let i = 1; i <= 5; i++) out.push(...d.observe(match(`2001:db8:1:2::${i.toString(16)}`, T0 + i), T0 + i).decisions);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.target, '2001:db8:1:2::/64');
  // A neighbour /64 is separate.
  assert.equal(d.observe(match('2001:db8:1:3::1', T0 + 9), T0 + 9).decisions.length, 0);
});

test('IPv4 prefix aggregation when configured; full-length prefixes ban the address', () => {
  const d = new Decider({ policies: [{ ...P, ipv4Prefix: 24, ipv6Prefix: 128 }] });
  const out: BanDecision[] = [];
  for (let i = 1; i <= 5; i++) out.push(...d.observe(match(`198.51.100.${i}`, T0 + i), T0 + i).decisions);
  assert.equal(out[0]?.target, '198.51.100.0/24');
  for (let i = 1; i <= 5; i++) out.push(...d.observe(match('2001:db8::1', T0 + 10 + i), T0 + 10 + i).decisions);
  assert.equal(out[1]?.target, '2001:db8::1');
});

test('allowlisted addresses are counted for reporting, never banned, reported once per window', () => {
  const allow = new Allowlist([parseCidr('192.0.2.0/28')!, parseCidr('2001:db8:1:2::53')!]);
  const d = new Decider({ policies: [P], allowlist: allow });
  const out: BanDecision[] = [];
  for (let i = 0; i < 20; i++) out.push(...d.observe(match('192.0.2.3', T0 + s(i)), T0 + s(i)).decisions);
  assert.equal(out.length, 0);
  assert.equal(d.stats().allowlistedHits, 20);
  let ev = d.drainEvents();
  assert.equal(ev.length, 1);
  assert.deepEqual(ev[0], { kind: 'allowlisted', ip: '192.0.2.3', policy: 'auth', time: T0 });
  d.observe(match('192.0.2.3', T0 + s(700)), T0 + s(700));
  ev = d.drainEvents();
  assert.equal(ev.length, 1, 'reported again in the next window');
  // A /64 holding an allowlisted address: the ban falls back to the offending address.
  for (let i = 1; i <= 5; i++) out.push(...d.observe(match('2001:db8:1:2::99', T0 + i), T0 + i).decisions);
  assert.equal(out.length, 1);
  assert.equal(out[0]!.target, '2001:db8:1:2::99');
  assert.equal(d.observe(match('2001:db8:1:2::53', T0 + 9), T0 + 9).decisions.length, 0);
});

test('several policies count independently with their own thresholds and filters', () => {
  const smtpOnly: Policy = { ...P, name: 'smtp-fast', services: ['smtp'], maxretry: 2, findtime: s(60), bantime: s(600) };
  const probes: Policy = { ...P, name: 'probes', classes: ['probe'], maxretry: 3 };
  const d = new Decider({ policies: [P, smtpOnly, probes] });
  const out: BanDecision[] = [];
  out.push(...d.observe(match('192.0.2.70', T0, { service: 'smtp' }), T0).decisions);
  out.push(...d.observe(match('192.0.2.70', T0 + 1, { service: 'smtp' }), T0 + 1).decisions);
  assert.deepEqual(out.map((b) => b.action === 'ban' && b.policy), ['smtp-fast']);
  for (let i = 0; i < 3; i++) out.push(...d.observe(match('192.0.2.71', T0 + i, { cls: 'probe' }), T0 + i).decisions);
  assert.deepEqual(out.map((b) => b.action === 'ban' && b.policy), ['smtp-fast', 'probes']);
  assert.equal(d.observe(match('192.0.2.72', T0, { cls: 'reject' }), T0).decisions.length, 0);
  assert.equal(d.stats().ignored, 1);
});

test('distinct users: one stale password retried behind NAT does not ban, a dictionary does', () => {
  const d = new Decider({ policies: [{ ...P, distinctUsers: 3 }] });
  const out: BanDecision[] = [];
  for (let i = 0; i < 20; i++) out.push(...d.observe(match('192.0.2.80', T0 + s(i), { user: 'alice' }), T0 + s(i)).decisions);
  assert.equal(out.length, 0);
  for (const u of ['a', 'b', 'c', 'd', 'e']) out.push(...d.observe(match('192.0.2.81', T0 + 1, { user: u }), T0 + 1).decisions);
  assert.equal(out.length, 1);
  // Lines without a user name cannot be proven to repeat one: they count as distinct.
  for (let i = 0; i < 5; i++) out.push(...d.observe(match('192.0.2.82', T0 + i), T0 + i).decisions);
  assert.equal(out.length, 2);
});

test('the table is bounded: least recently used keys are evicted and counted', () => {
  const d = new Decider({ policies: [P], maxTracked: 100 });
  for (let i = 0; i < 250; i++) d.observe(match(`10.0.${i >> 8}.${i & 255}`, T0 + i), T0 + i);
  const st = d.stats();
  assert.equal(st.tracked, 100);
  assert.equal(st.evictions, 150);
  // An attacker stays tracked while fewer than maxTracked other addresses go by between its attempts.
  const d2 = new Decider({ policies: [P], maxTracked: 10 });
  let banned = 0;
  for (let i = 0; i < 100; i++) {
    if (i % 5 === 0) banned += d2.observe(match('192.0.2.99', T0 + i), T0 + i).decisions.length;
    d2.observe(match(`10.1.0.${i}`, T0 + i), T0 + i);
  }
  assert.equal(banned, 1);
});

test('operator ban and unban go through the same path and records', () => {
  const recorded: unknown[] = [];
  const d = new Decider({ policies: [P], ledger: { record: (e) => recorded.push(...e) } });
  const b = d.ban({ target: '2001:DB8::7', now: T0, bantime: s(60) });
  assert.deepEqual(b.map((x) => x.action === 'ban' && [x.target, x.until, x.policy]), [['2001:db8::7', T0 + s(60), 'manual']]);
  assert.equal(d.activeBans(T0).length, 1);
  const u = d.unban({ target: '2001:db8::7', now: T0 + 5 });
  assert.deepEqual(u, [{ action: 'unban', target: '2001:db8::7', policy: 'manual', reason: 'operator' }]);
  assert.equal(d.activeBans(T0 + 6).length, 0);
  assert.equal(recorded.length, 2);
  // A policy ban with escalation from the operator, and refusing allowlisted targets.
  const d2 = new Decider({ policies: [P], allowlist: new Allowlist([parseCidr('127.0.0.0/8') as Cidr]) });
  assert.throws(() => d2.ban({ target: '127.0.0.1', now: T0 }), /MJ_STATE_ALLOWLISTED/);
  assert.throws(() => d2.ban({ target: 'not-an-ip', now: T0 }), /MJ_STATE_TARGET/);
  const pb = d2.ban({ target: '192.0.2.1', now: T0, policy: 'auth' });
  assert.ok(pb[0]!.action === 'ban' && pb[0]!.until === T0 + s(3600));
});

test('policies are validated with a stable code', () => {
  assert.throws(() => new Decider({ policies: [{ ...P, maxretry: 0 }] }), /MJ_STATE_POLICY.*maxretry/);
  assert.throws(() => new Decider({ policies: [{ ...P, ipv6Prefix: 129 }] }), /MJ_STATE_POLICY.*ipv6Prefix/);
  assert.throws(() => new Decider({ policies: [P, P] }), /MJ_STATE_POLICY/);
});

test('resume: re-fed lines up to the restored position are skipped; a rotated file (line 1, newer time) counts', () => {
  const through = { 'file:test.log': { line: 100, time: T0 + s(50) }, 'journald:journal': { cursor: 's=abc;i=9', time: T0 + s(50) } };
  const d = new Decider({ policies: [P] });
  d.restore({ bans: [], through }, T0 + s(60));
  d.observe(match('192.0.2.1', T0 + s(10), { line: 40 }), T0 + s(10));
  d.observe(match('192.0.2.1', T0 + s(50), { line: 100 }), T0 + s(50));
  assert.equal(d.stats().skippedReplayed, 2);
  assert.equal(d.stats().counted, 0);
  // logrotate: the same name starts again at line 1 with newer events.
  d.observe(match('192.0.2.1', T0 + s(70), { line: 1 }), T0 + s(70));
  assert.equal(d.stats().counted, 1);
  d.observe(match('192.0.2.1', T0 + s(71), { line: 101 }), T0 + s(71));
  d.observe(match('192.0.2.1', T0 + s(72), { line: 50 }), T0 + s(72));
  assert.equal(d.stats().counted, 3, 'past the position nothing is skipped any more');
  // journald: the entry at the cursor is skipped, the ones after it count.
  const j = (cursor: string, t: number) => ({ ...match('192.0.2.2', t), event: { ...match('192.0.2.2', t).event, origin: { kind: 'journald' as const, name: 'journal', cursor } } });
  d.observe(j('s=abc;i=9', T0 + s(50)), T0 + s(50));
  d.observe(j('s=abc;i=a', T0 + s(50)), T0 + s(50));
  assert.equal(d.stats().skippedReplayed, 3);
  assert.equal(d.stats().counted, 4);
});

test('operator unban of an address inside a banned /64 lifts the /64', () => {
  const d = new Decider({ policies: [P] });
  for (let i = 1; i <= 5; i++) d.observe(match(`2001:db8:7:7::${i}`, T0 + i), T0 + i);
  assert.equal(d.activeBans(T0 + 10)[0]?.target, '2001:db8:7:7::/64');
  assert.deepEqual(d.unban({ target: '2001:db8:7:7::3', now: T0 + 10 }), [{ action: 'unban', target: '2001:db8:7:7::/64', policy: 'auth', reason: 'operator' }]);
  assert.equal(d.activeBans(T0 + 11).length, 0);
});

test('a summary with a total but no session id counts its total, minus the driver lines it covers', () => {
  const d = new Decider({ policies: [{ ...P, maxretry: 20 }] });
  d.observe(match('203.0.113.20', T0, { attempt: { total: 3 } }), T0);
  assert.equal(d.stats().counted, 3);
  d.observe(match('203.0.113.20', T0 + 1, { attempt: { pair: { group: 'sasl', side: 'auth-process' } } }), T0 + 1);
  d.observe(match('203.0.113.20', T0 + 2, { attempt: { total: 2 } }), T0 + 2);
  assert.equal(d.stats().counted, 5, '3 + 1 driver line + (2 − 1)');
  d.observe(match('203.0.113.20', T0 + 3, { attempt: { total: 1 } }), T0 + 3);
  assert.equal(d.stats().counted, 6);
});

test('reload: compatible policies keep their counters, all keep bans and history, the allowlist is swapped', () => {
  const d = new Decider({ policies: [P, { ...P, name: 'old-one' }] });
  for (let i = 0; i < 4; i++) d.observe(match('192.0.2.30', T0 + i), T0 + i);
  for (let i = 0; i < 5; i++) d.observe(match('192.0.2.31', T0 + i), T0 + i);
  d.reload({ policies: [{ ...P, findtime: s(1200), bantime: s(60) }], allowlist: new Allowlist([parseCidr('192.0.2.32')!]) });
  // The 5th attempt of .30 still bans (counts kept), with the new bantime.
  const out = d.observe(match('192.0.2.30', T0 + 10), T0 + 10).decisions;
  assert.ok(out[0]?.action === 'ban' && out[0].until === T0 + 10 + s(60));
  // Bans of the removed policy are still listed and can be lifted.
  assert.deepEqual(d.activeBans(T0 + 20).map((b) => `${b.policy} ${b.target}`).sort(), ['auth 192.0.2.30', 'auth 192.0.2.31', 'old-one 192.0.2.30', 'old-one 192.0.2.31'].filter((x) => x !== 'old-one 192.0.2.30'));
  assert.equal(d.unban({ target: '192.0.2.31', now: T0 + 30 }).length, 2);
  for (let i = 0; i < 10; i++) d.observe(match('192.0.2.32', T0 + 40 + i), T0 + 40 + i);
  assert.equal(d.stats().allowlistedHits, 10);
  // A bad config changes nothing; a change of maxretry keeps the counters (test/state/decider-reload.test.ts).
  assert.throws(() => d.reload({ policies: [{ ...P, maxretry: 0 }] }), /MJ_STATE_POLICY/);
  d.reload({ policies: [{ ...P, maxretry: 3 }] });
  for (let i = 0; i < 2; i++) d.observe(match('198.51.100.1', T0 + 50 + i), T0 + 50 + i);
  assert.equal(d.observe(match('198.51.100.1', T0 + 60), T0 + 60).decisions.length, 1);
});

test('evictions never forget a ban: a banned address pushed out of the table is still banned', () => {
  const d = new Decider({ policies: [P], maxTracked: 10 });
  for (let i = 0; i < 5; i++) d.observe(match('192.0.2.44', T0 + i), T0 + i);
  for (let i = 0; i < 100; i++) d.observe(match(`10.9.0.${i}`, T0 + 10 + i), T0 + 10 + i);
  assert.ok(d.stats().evictions >= 90);
  for (let i = 0; i < 10; i++) assert.equal(d.observe(match('192.0.2.44', T0 + 200 + i), T0 + 200 + i).decisions.length, 0);
  assert.equal(d.stats().whileBanned, 10);
  assert.equal(d.activeBans(T0 + 300).length, 1);
});

test('an address banned by one policy (or the operator) is not counted or re-banned by another meanwhile', () => {
  const host: Policy = { ...P, name: 'per-host', ipv6Prefix: 128, maxretry: 3 };
  const d = new Decider({ policies: [P, host] });
  const out: BanDecision[] = [];
  // per-host bans 2001:db8:3::1 after 3; auth (/64) keeps counting its other addresses.
  for (let i = 1; i <= 3; i++) out.push(...d.observe(match('2001:db8:3::1', T0 + i), T0 + i).decisions);
  assert.deepEqual(out.map((b) => b.target), ['2001:db8:3::1']);
  for (let i = 2; i <= 5; i++) out.push(...d.observe(match(`2001:db8:3::${i}`, T0 + 10 + i), T0 + 10 + i).decisions);
  // mail-auth: 3 attempts of ::1 were counted in its /64 before the host ban, so the 2nd other address makes 5.
  assert.deepEqual(out.map((b) => b.target), ['2001:db8:3::1', '2001:db8:3::/64']);
  for (let i = 6; i <= 12; i++) out.push(...d.observe(match(`2001:db8:3::${i.toString(16)}`, T0 + 20 + i), T0 + 20 + i).decisions);
  assert.equal(out.length, 2, 'inside the banned /64 nobody is counted');
  // Operator ban of a long time: rule lines for it do not produce a shorter ban.
  d.ban({ target: '192.0.2.90', now: T0, bantime: s(86400) });
  for (let i = 0; i < 10; i++) out.push(...d.observe(match('192.0.2.90', T0 + s(60) + i), T0 + s(60) + i).decisions);
  assert.equal(out.length, 2);
});

test('outage detection: two addresses are not an outage, three within 60 s are, and it ends when they stop', () => {
  const d = new Decider({ policies: [P] });
  const weak = { weak: true } as const;
  d.observe(match('192.0.2.1', T0), T0); // two definite failures, so its weak lines can count
  d.observe(match('192.0.2.1', T0 + 1), T0 + 1);
  d.observe(match('192.0.2.2', T0 + s(1), { attempt: weak }), T0 + s(1));
  d.observe(match('192.0.2.1', T0 + s(2), { attempt: weak }), T0 + s(2));
  assert.equal(d.stats().outage, false);
  assert.equal(d.stats().weakCounted, 1);
  d.observe(match('192.0.2.3', T0 + s(30), { attempt: weak }), T0 + s(30));
  assert.equal(d.stats().outage, false, 'a corroborated address does not feed the outage detector');
  d.observe(match('192.0.2.4', T0 + s(61), { attempt: weak }), T0 + s(61)); // .2 is 60 s old: still inside
  assert.equal(d.stats().outage, true);
  d.observe(match('192.0.2.1', T0 + s(61), { attempt: weak }), T0 + s(61));
  assert.equal(d.stats().weakCounted, 1, 'not counted during the outage');
  d.observe(match('192.0.2.1', T0 + s(200)), T0 + s(200));
  d.observe(match('192.0.2.1', T0 + s(201), { attempt: weak }), T0 + s(201));
  assert.equal(d.stats().outage, false);
  assert.equal(d.stats().weakCounted, 2, 'counted again once the outage is over');
  assert.deepEqual(d.drainEvents().map((e) => e.kind === 'outage' && e.state), ['start', 'end']);
});

test('evidence: the triggering match by default, the last N counted matches when asked (for check)', () => {
  const d1 = new Decider({ policies: [P] });
  let out: BanDecision[] = [];
  for (let i = 0; i < 5; i++) out = out.concat(d1.observe(match('192.0.2.1', T0 + i, { line: i + 1 }), T0 + i).decisions);
  const b1 = out[0]!;
  assert.deepEqual(b1.action === 'ban' && b1.evidence.map((m) => m.event.origin.line), [5]);
  const d2 = new Decider({ policies: [P], keepEvidence: 5, maxTracked: 2 });
  out = [];
  for (let i = 0; i < 3; i++) d2.observe(match('192.0.2.2', T0 + i, { line: 100 + i }), T0 + i);
  d2.observe(match('192.0.2.3', T0 + 5), T0 + 5);
  d2.observe(match('192.0.2.4', T0 + 6), T0 + 6); // evicts .2: its slot's lines must not leak to .4
  for (let i = 0; i < 7; i++) out = out.concat(d2.observe(match('192.0.2.4', T0 + 10 + i, { line: i + 1 }), T0 + 10 + i).decisions);
  const b2 = out[0]!;
  assert.deepEqual(b2.action === 'ban' && b2.evidence.map((m) => `${m.ip}:${m.event.origin.line}`), ['192.0.2.4:undefined', '192.0.2.4:1', '192.0.2.4:2', '192.0.2.4:3', '192.0.2.4:4']);
});
