import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Decider } from '../../src/state/decider.js';
import type { Policy } from '../../src/state/policy.js';
import type { AttemptInfo, BanDecision, Match } from '../../src/types.js';
import { DEFAULT_POLICY, T0, match, s } from './helpers.js';

const ADDRS = ['192.0.2.1', '192.0.2.2', '198.51.100.9', '2001:db8:0:1::1', '2001:db8:0:1::2', '2001:db8:0:2::1'];

/** One arbitrary matched line: who, how long after the previous line, and how it relates to its attempt. */
const lineArb = fc.record({
  addr: fc.integer({ min: 0, max: ADDRS.length - 1 }),
  dt: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 5_000 }), fc.integer({ min: 0, max: 400_000 })),
  kind: fc.constantFrom('plain', 'plain', 'session', 'summary', 'mta', 'auth', 'weak', 'probe'),
  sess: fc.integer({ min: 0, max: 2 }),
  total: fc.integer({ min: 0, max: 7 }),
  user: fc.constantFrom(undefined, 'alice', 'bob', 'carol'),
});

type Line = typeof lineArb extends fc.Arbitrary<infer T> ? T : never;

function toMatches(lines: readonly Line[]): Match[] {
  let t = T0;
  return lines.map((l, i) => {
    t += l.dt;
    let attempt: AttemptInfo = {};
    if (l.kind === 'session') attempt = { session: `s${l.sess}` };
    else if (l.kind === 'summary') attempt = { session: `s${l.sess}`, total: l.total };
    else if (l.kind === 'mta') attempt = { pair: { group: 'sasl', side: 'mta' } };
    else if (l.kind === 'auth') attempt = { pair: { group: 'sasl', side: 'auth-process' } };
    else if (l.kind === 'weak') attempt = { weak: true };
    return match(ADDRS[l.addr]!, t, { attempt, line: i + 1, ...(l.kind === 'probe' ? { cls: 'probe' as const } : {}), ...(l.user ? { user: l.user } : {}) });
  });
}

const POLICIES: Policy[] = [
  { ...DEFAULT_POLICY, maxretry: 3, findtime: s(120), bantime: s(60) },
  { ...DEFAULT_POLICY, name: 'users', maxretry: 4, findtime: s(600), bantime: s(300), ipv6Prefix: 128, distinctUsers: 2 },
  { ...DEFAULT_POLICY, name: 'probes', classes: ['probe'], maxretry: 2, findtime: s(60), bantime: s(30), ipv4Prefix: 24 },
];

const summary = (ds: readonly BanDecision[]): string[] => ds.map((d) => (d.action === 'ban' ? `${d.policy} ${d.target} ${d.until} ${d.level}` : `unban ${d.target}`));

test('property: the bans never depend on how the input is split into batches', () => {
  fc.assert(
    fc.property(fc.array(lineArb, { maxLength: 150 }), fc.array(fc.integer({ min: 0, max: 150 }), { maxLength: 12 }), (lines, cuts) => {
      const ms = toMatches(lines);
      const whole = new Decider({ policies: POLICIES, maxTracked: 1000, maxSessions: 1000 }).observeBatch(ms).decisions;
      const d = new Decider({ policies: POLICIES, maxTracked: 1000, maxSessions: 1000 });
      const bounds = [...new Set([0, ...cuts.filter((c) => c <= ms.length), ms.length])].sort((a, b) => a - b);
      const split: BanDecision[] = [];
      for (let i = 0; i + 1 < bounds.length; i++) split.push(...d.observeBatch(ms.slice(bounds[i], bounds[i + 1])).decisions);
      assert.deepEqual(summary(split), summary(whole));
    }),
    { numRuns: 300 },
  );
});

test('property: for plain attempts the ring table decides exactly what a naive full-history model decides', () => {
  const policyArb = fc.record({
    maxretry: fc.integer({ min: 1, max: 6 }),
    findtime: fc.integer({ min: 1, max: 100 }),
    bantime: fc.integer({ min: 1, max: 200 }),
  });
  const seqArb = fc.array(fc.record({ addr: fc.integer({ min: 0, max: 3 }), dt: fc.oneof(fc.integer({ min: 0, max: 30_000 }), fc.constantFrom(0, 1, 1000)) }), { maxLength: 200 });
  fc.assert(
    fc.property(policyArb, seqArb, (pp, seq) => {
      const maxTracked = 4; // all four addresses fit: eviction would (rightly) forget counts
      const p: Policy = { ...DEFAULT_POLICY, ...pp, findtime: s(pp.findtime), bantime: s(pp.bantime), escalation: { factor: 2, maxBantime: s(pp.bantime * 8), window: s(30 * 86400) } };
      const F = p.findtime;
      // Exact findtime steps make window edges frequent.
      const ms: Match[] = [];
      let t = T0;
      for (const x of seq) { t += x.dt === 1000 ? F : x.dt; ms.push(match(`10.0.0.${x.addr}`, t)); }
      const got = summary(new Decider({ policies: [p], maxTracked, maxSessions: 10 }).observeBatch(ms).decisions);
      // The model: full attempt lists per address, reset on ban; bans with escalation history.
      const tries = new Map<string, number[]>();
      const bans = new Map<string, number>();
      const hist = new Map<string, number[]>();
      const want: string[] = [];
      for (const m of ms) {
        const now = m.event.time;
        if ((bans.get(m.ip) ?? -Infinity) > now) continue;
        const list = tries.get(m.ip) ?? [];
        list.push(now);
        tries.set(m.ip, list);
        if (list.filter((x) => x >= now - F).length >= p.maxretry) {
          const h = hist.get(m.ip) ?? [];
          const level = h.length;
          const until = now + Math.min(p.bantime * 2 ** level, p.bantime * 8);
          want.push(`${p.name} ${m.ip} ${until} ${level}`);
          bans.set(m.ip, until);
          hist.set(m.ip, [...h, now]);
          tries.set(m.ip, []);
        }
      }
      assert.deepEqual(got, want);
    }),
    { numRuns: 400 },
  );
});
