// Start-up restore treats the ledger as a file someone may have edited: every ban it re-applies
// passes the checks a live ban gets (allowlist, width, start, length). Each case below went into
// the kernel from a hand-edited ledger before these checks existed.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Allowlist } from '../../src/state/allowlist.js';
import { Decider, MAX_MANUAL_BAN_MS, type RestoreIssue } from '../../src/state/decider.js';
import { Ledger } from '../../src/state/ledger.js';
import type { Policy } from '../../src/state/policy.js';
import { parseCidr } from '../../src/parse/ip.js';
import type { BanRecord } from '../../src/state/records.js';
import type { Cidr } from '../../src/types.js';
import { DEFAULT_POLICY, T0, s } from './helpers.js';

const P: Policy = { ...DEFAULT_POLICY, name: 'auth', escalation: { factor: 2, maxBantime: s(7 * 86400), window: s(30 * 86400) } };
const { escalation: _noEscalation, ...BASE } = DEFAULT_POLICY;
const WIDE: Policy = { ...BASE, name: 'wide', ipv4Prefix: 12, ipv6Prefix: 24, recidive: { bans: 3, window: s(86400 * 30), bantime: s(30 * 86400) } };
const NOW = T0 + s(3600);
const allow = new Allowlist(['127.0.0.0/8', '::1/128', '10.1.2.3/32', '2001:db8:ffff::/48'].map((c) => parseCidr(c)! as Cidr));

function rec(target: string, o: Partial<BanRecord> = {}): BanRecord {
  return { policy: 'auth', target: target as never, since: NOW - s(60), until: NOW + s(3600), level: 0, ruleId: 'test-auth', ...o };
}

function restore(bans: readonly BanRecord[], policies: readonly Policy[] = [P, WIDE]): { active: Map<string, number>; issues: RestoreIssue[]; decisions: string[] } {
  const d = new Decider({ policies, allowlist: allow });
  const issues: RestoreIssue[] = [];
  const decisions = d.restore({ bans, through: {} }, NOW, (i) => issues.push(i)).map((x) => String(x.target)).sort();
  const active = new Map(d.activeBans(NOW).map((b) => [String(b.target), b.until]));
  return { active, issues, decisions };
}

const refused = (issues: readonly RestoreIssue[]): string[] => issues.filter((i) => i.action === 'refused').map((i) => i.target).sort();

test('restore: allowlisted targets (loopback, own and configured addresses, networks holding one) are refused', () => {
  const r = restore([
    rec('127.0.0.1'), rec('::1', { policy: 'manual', ruleId: 'operator' }), rec('10.0.0.0/8', { policy: 'manual', ruleId: 'operator' }),
    rec('10.1.0.0/16'), rec('2001:db8:ffff:1::/64'), rec('192.0.2.1'),
  ]);
  assert.deepEqual([...r.active.keys()], ['192.0.2.1']);
  assert.deepEqual(r.decisions, ['192.0.2.1']);
  assert.deepEqual(refused(r.issues), ['10.0.0.0/8', '10.1.0.0/16', '127.0.0.1', '2001:db8:ffff:1::/64', '::1'].sort());
  assert.ok(r.issues.every((i) => i.reason === 'allowlisted'));
});

test('restore: networks wider than a live ban could be are refused (policy prefix or /16 v4, /32 v6; manual /8, /16)', () => {
  const r = restore([
    rec('198.50.0.0/15'), rec('198.52.0.0/16'), rec('198.51.100.0/24'), // auth counts per /32: up to /16 accepted
    rec('2001:db8::/31'), rec('2001:db8:1::/48'),
    rec('172.16.0.0/12', { policy: 'wide' }), rec('172.32.0.0/11', { policy: 'wide' }), // wide counts per /12
    rec('2001:e00::/24', { policy: 'wide' }),
    rec('100.0.0.0/8', { policy: 'manual', ruleId: 'operator' }), rec('96.0.0.0/6', { policy: 'manual', ruleId: 'operator' }),
    rec('2002::/16', { policy: 'manual', ruleId: 'operator' }),
    rec('203.0.0.0/15', { policy: 'gone' }), rec('203.0.113.0/24', { policy: 'gone' }), // a policy no longer configured
    rec('192.0.2.1', { policy: 'auth', ruleId: 'operator' }),
  ]);
  assert.deepEqual([...r.active.keys()].sort(), [
    '100.0.0.0/8', '172.16.0.0/12', '192.0.2.1', '198.52.0.0/16', '198.51.100.0/24', '2001:e00::/24', '2001:db8:1::/48', '2002::/16', '203.0.113.0/24',
  ].sort());
  assert.deepEqual(refused(r.issues), ['172.32.0.0/11', '198.50.0.0/15', '2001:db8::/31', '203.0.0.0/15', '96.0.0.0/6'].sort());
  assert.ok(r.issues.every((i) => /wider than/.test(i.reason)), JSON.stringify(r.issues));
});

test('restore: a ban starting in the future (beyond clock skew) is refused; a few minutes of skew are fine', () => {
  const r = restore([rec('192.0.2.1', { since: NOW + s(3600), until: NOW + s(7200) }), rec('192.0.2.2', { since: NOW + s(60), until: NOW + s(3660) })]);
  assert.deepEqual([...r.active.keys()], ['192.0.2.2']);
  assert.deepEqual(refused(r.issues), ['192.0.2.1']);
  assert.match(r.issues[0]!.reason, /future/);
});

test('restore: an end beyond the longest ban the policy can give is clamped to it (escalation cap, recidive, 1 year manual)', () => {
  const since = NOW - s(60);
  const r = restore([
    rec('192.0.2.1', { until: 1e300 }),
    rec('192.0.2.2', { until: since + s(7 * 86400) }), // exactly the cap: untouched
    rec('192.0.2.3', { policy: 'wide', until: 1e300 }),
    rec('192.0.2.4', { policy: 'manual', ruleId: 'operator', until: 1e300 }),
    rec('192.0.2.5', { policy: 'gone', until: 1e300 }),
  ]);
  assert.equal(r.active.get('192.0.2.1'), since + s(7 * 86400));
  assert.equal(r.active.get('192.0.2.2'), since + s(7 * 86400));
  assert.equal(r.active.get('192.0.2.3'), since + s(30 * 86400));
  assert.equal(r.active.get('192.0.2.4'), since + MAX_MANUAL_BAN_MS);
  assert.equal(r.active.get('192.0.2.5'), since + MAX_MANUAL_BAN_MS);
  assert.deepEqual(r.issues.map((i) => [i.target, i.action]).sort(), [['192.0.2.1', 'clamped'], ['192.0.2.3', 'clamped'], ['192.0.2.4', 'clamped'], ['192.0.2.5', 'clamped']]);
  // a clamped end already passed: the ban is over, nothing to re-apply
  const old = restore([rec('192.0.2.9', { since: NOW - s(8 * 86400), until: 1e300 })]);
  assert.equal(old.active.size, 0);
  assert.equal(old.decisions.length, 0);
});

test('restore: targets that are not canonical addresses, and non-finite times, are refused', () => {
  const r = restore([
    rec('not-an-ip'), rec('192.0.2.1/24'), rec('192.0.2.010'), rec('192.0.2.7/32'), rec('2001:DB8::1'),
    rec('192.0.2.8', { until: Number.POSITIVE_INFINITY }), rec('192.0.2.9', { since: Number.NaN }),
    rec('192.0.2.2'), rec('198.51.100.0/24'),
  ]);
  assert.deepEqual([...r.active.keys()].sort(), ['192.0.2.2', '198.51.100.0/24']);
  assert.equal(refused(r.issues).length, 7);
});

test('restore: refused bans leave no escalation history behind', () => {
  const d = new Decider({ policies: [P], allowlist: allow });
  d.restore({ bans: [rec('192.0.2.1', { since: NOW + s(86400), until: NOW + s(90000) })], through: {} }, NOW);
  // a first real ban of the address: level 0, the plain bantime
  const out = d.ban({ target: '192.0.2.1', now: NOW, policy: 'auth', ruleId: 'test-auth' });
  assert.ok(out[0]?.action === 'ban' && out[0].level === 0 && out[0].until === NOW + P.bantime);
});

test('restore from a hand-edited ledger file: only the sane lines come back', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mj-restore-'));
  try {
    const line = (r: BanRecord): string => JSON.stringify({ t: 'ban', ...r });
    writeFileSync(join(dir, 'bans.jsonl'), [
      line(rec('127.0.0.1')), line(rec('::1')), line(rec('10.0.0.0/8', { policy: 'manual', ruleId: 'operator' })),
      line(rec('192.0.2.50', { until: 1e300 })), line(rec('192.0.2.51')),
    ].join('\n') + '\n');
    const { ledger, state } = Ledger.open(dir);
    try {
      const d = new Decider({ policies: [P], allowlist: allow, ledger });
      const issues: RestoreIssue[] = [];
      const out = d.restore(state, NOW, (i) => issues.push(i));
      assert.deepEqual(out.map((x) => String(x.target)).sort(), ['192.0.2.50', '192.0.2.51']);
      assert.deepEqual(refused(issues), ['10.0.0.0/8', '127.0.0.1', '::1']);
      const clamped = d.activeBans(NOW).find((b) => b.target === '192.0.2.50');
      assert.equal(clamped?.until, NOW - s(60) + s(7 * 86400));
    } finally {
      ledger.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
