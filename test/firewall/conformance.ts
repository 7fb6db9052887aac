// The shared conformance suite: one function, run against every firewall backend (dry-run,
// ipset, nftables). Kernel backends run inside a namespace the harness creates.
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { KernelFirewall } from '../../src/firewall/backend.js';
import type { FirewallConfig } from '../../src/firewall/config.js';
import { FW_CODES } from '../../src/firewall/exec.js';
import { reconcile } from '../../src/firewall/reconcile.js';
import { ResilientFirewall, type FirewallEvent } from '../../src/firewall/resilient.js';
import { parseCidr, parseIp } from '../../src/parse/ip.js';
import { waitFor } from '../helpers/wait.js';
import type { BanDecision, Cidr, Ip, MailjailError } from '../../src/types.js';

export interface Harness {
  /** A fresh backend with its own names (a new prefix per call). */
  make(cfg?: FirewallConfig): KernelFirewall;
  /** Delete the backend's sets/table behind its back, as an admin might. */
  sabotage(b: KernelFirewall): Promise<void>;
  /** Text that changes when the firewall layout changes (rules, chains, set headers). */
  snapshot(b: KernelFirewall): Promise<string>;
  /** Two backends made with the same prefix see the same sets (false for dry-run: state is per object). */
  readonly sharedKernel: boolean;
}

const ip = (s: string): Ip => { const r = parseIp(s); assert.ok(r, s); return r; };
const net = (s: string): Cidr => { const r = parseCidr(s); assert.ok(r, s); return r; };

export function ban(target: Ip | Cidr, until: number): BanDecision {
  return { action: 'ban', target, until, level: 0, policy: 'test', ruleId: 'test', evidence: [] };
}
export function unban(target: Ip | Cidr): BanDecision {
  return { action: 'unban', target, reason: 'operator' };
}

/** Asserts the expiry is within `tol` ms of `want` (the kernel counts whole seconds). */
function near(have: number | undefined, want: number, tol = 2500): void {
  assert.ok(have !== undefined, 'entry missing');
  if (want === 0) assert.equal(have, 0);
  else assert.ok(Math.abs(have - want) <= tol, `expiry ${have} not within ${tol} ms of ${want}`);
}

export async function conformance(t: TestContext, h: Harness): Promise<void> {
  await t.test('apply before ensure fails with MJ_FW_SET_MISSING and drops nothing', async () => {
    const b = h.make();
    const rep = await b.apply([ban(ip('192.0.2.10'), Date.now() + 60_000)]);
    assert.equal(rep.applied, 0);
    assert.equal(rep.failed.length, 1);
    assert.equal((rep.failed[0]!.error as MailjailError).code, FW_CODES.SET_MISSING);
  });

  await t.test('ensure is idempotent', async () => {
    const b = h.make();
    await b.ensure();
    const first = await h.snapshot(b);
    await b.ensure();
    assert.equal(await h.snapshot(b), first);
    const st = await b.status();
    assert.ok(st.present && st.hooked);
    await b.stop({ purge: true });
  });

  await t.test('other layouts: all ports, reject, IPv4 only', async () => {
    const b = h.make({ ports: 'all', target: 'reject', ipv6: false });
    await b.ensure();
    const first = await h.snapshot(b);
    await b.ensure();
    assert.equal(await h.snapshot(b), first);
    const rep = await b.apply([ban(ip('192.0.2.1'), Date.now() + 60_000), ban(ip('2001:db8::1'), Date.now() + 60_000)]);
    assert.equal(rep.applied, 1);
    assert.equal((rep.failed[0]?.error as MailjailError).code, FW_CODES.TARGET);
    assert.deepEqual([...(await b.list()).keys()], ['192.0.2.1']);
    assert.ok((await b.status()).hooked);
    // switching the same names back to the default layout replaces the hook, leaving one
    const prefix = (b as unknown as { cfg: { prefix: string } }).cfg.prefix;
    const d = h.make({ prefix });
    await d.ensure();
    const st = await d.status();
    assert.ok(st.present && st.hooked);
    if (h.sharedKernel) assert.notEqual(await h.snapshot(d), first);
    await d.stop({ purge: true });
  });

  await t.test('ban v4/v6 hosts and prefixes with timeouts, list them back', async () => {
    const b = h.make();
    await b.ensure();
    const now = Date.now();
    const rep = await b.apply([
      ban(ip('192.0.2.1'), now + 600_000),
      ban(ip('2001:db8::1'), now + 300_000),
      ban(net('198.51.100.0/24'), now + 900_000),
      ban(net('2001:db8:1::/64'), 0),
      ban(net('203.0.113.7/32'), now + 60_000), // a /32 is the host itself
      ban(ip('198.51.100.9'), now + 60_000), // a host inside a banned prefix
    ]);
    assert.deepEqual(rep.failed, []);
    assert.equal(rep.applied, 6);
    // prefixes of other lengths overlapping banned ones (escalation /64 → /48, /24 → /16) coexist
    const wider = await b.apply([ban(net('2001:db8::/48'), now + 60_000), ban(net('198.51.0.0/16'), now + 60_000), ban(net('198.51.100.0/25'), now + 60_000)]);
    assert.deepEqual(wider.failed, []);
    await b.apply([unban(net('2001:db8::/48')), unban(net('198.51.0.0/16')), unban(net('198.51.100.0/25'))]);
    const l = await b.list();
    assert.deepEqual([...l.keys()].sort(), ['192.0.2.1', '198.51.100.0/24', '198.51.100.9', '2001:db8:1::/64', '2001:db8::1', '203.0.113.7']);
    near(l.get('192.0.2.1'), now + 600_000);
    near(l.get('2001:db8::1'), now + 300_000);
    near(l.get('198.51.100.0/24'), now + 900_000);
    near(l.get('2001:db8:1::/64'), 0);
    // a longer ban replaces the timeout, it does not add a second entry
    await b.apply([ban(ip('192.0.2.1'), now + 1_200_000), ban(net('2001:db8:1::/64'), now + 120_000)]);
    // two policies banning one address in one batch: the longer ban holds
    await b.apply([ban(ip('203.0.113.7'), now + 900_000), ban(ip('203.0.113.7'), now + 30_000)]);
    const l2 = await b.list();
    assert.equal(l2.size, 6);
    near(l2.get('203.0.113.7'), now + 900_000);
    near(l2.get('192.0.2.1'), now + 1_200_000);
    near(l2.get('2001:db8:1::/64'), now + 120_000);
    await b.stop({ purge: true });
  });

  await t.test('unban removes; unban of an absent target succeeds; order inside a batch holds', async () => {
    const b = h.make();
    await b.ensure();
    const until = Date.now() + 600_000;
    await b.apply([ban(ip('192.0.2.1'), until), ban(ip('2001:db8::1'), until)]);
    const rep = await b.apply([unban(ip('192.0.2.1')), unban(ip('192.0.2.99')), unban(net('2001:db8:5::/64'))]);
    assert.deepEqual(rep.failed, []);
    assert.equal(rep.applied, 3);
    assert.deepEqual([...(await b.list()).keys()], ['2001:db8::1']);
    await b.apply([ban(ip('192.0.2.5'), until), unban(ip('192.0.2.5')), unban(ip('192.0.2.6')), ban(ip('192.0.2.6'), until)]);
    assert.deepEqual([...(await b.list()).keys()].sort(), ['192.0.2.6', '2001:db8::1']);
    await b.stop({ purge: true });
  });

  await t.test('invalid targets are refused with MJ_FW_TARGET, the rest of the batch applies', async () => {
    const b = h.make();
    await b.ensure();
    const until = Date.now() + 600_000;
    const hostile = ['192.0.2.1; rm -rf /', '10.0.0.1/24', '0.0.0.0/0', '::ffff:192.0.2.1', '192.0.2.1\nflush', '-exist', '', '1.2.3.4 timeout 0'];
    const rep = await b.apply([...hostile.map((s) => ban(s as Ip, until)), ban(ip('192.0.2.2'), until)]);
    assert.equal(rep.applied, 1);
    assert.equal(rep.failed.length, hostile.length);
    for (const f of rep.failed) assert.equal((f.error as MailjailError).code, FW_CODES.TARGET);
    assert.deepEqual([...(await b.list()).keys()], ['192.0.2.2']);
    await b.stop({ purge: true });
  });

  await t.test('a ban already over adds nothing', async () => {
    const b = h.make();
    await b.ensure();
    const rep = await b.apply([ban(ip('192.0.2.1'), Date.now() - 1000)]);
    assert.deepEqual(rep.failed, []);
    assert.equal((await b.list()).size, 0);
    await b.stop({ purge: true });
  });

  await t.test('1000 bans in one batch', async () => {
    const b = h.make();
    await b.ensure();
    const until = Date.now() + 600_000;
    const batch: BanDecision[] = [];
    for (let i = 0; i < 1000; i++) batch.push(ban(ip(i % 2 ? `10.${i >> 8}.${i & 255}.1` : `2001:db8:${i.toString(16)}::1`), until));
    const rep = await b.apply(batch);
    assert.deepEqual(rep.failed, []);
    assert.equal((await b.list()).size, 1000);
    const st = await b.status();
    assert.equal(st.entries.v4 + st.entries.v6, 1000);
    await b.stop({ purge: true });
  });

  await t.test('the kernel expires a ban by its timeout', async () => {
    const b = h.make();
    await b.ensure();
    await b.apply([ban(ip('192.0.2.1'), Date.now() + 1200), ban(ip('192.0.2.2'), Date.now() + 600_000)]);
    assert.equal((await b.list()).size, 2);
    await waitFor(async () => [...(await b.list()).keys()].join() === '192.0.2.2',
      { timeoutMs: 15_000, intervalMs: 100, what: 'the kernel to expire the 1.2 s ban, keeping the 10 min one', observe: async () => [...(await b.list()).keys()] });
    await b.stop({ purge: true });
  });

  await t.test('reconcile applies only the difference, adds before deletes', async () => {
    const b = h.make();
    await b.ensure();
    const now = Date.now();
    await b.apply([ban(ip('192.0.2.1'), now + 600_000), ban(ip('192.0.2.2'), now + 600_000), ban(ip('192.0.2.3'), now + 600_000)]);
    const calls: string[][] = [];
    const spy: KernelFirewall = Object.assign(Object.create(b) as KernelFirewall, {
      apply: (batch: readonly BanDecision[]) => { calls.push(batch.map((d) => `${d.action} ${d.target}`)); return b.apply(batch); },
    });
    const ledger = new Map<string, number>([
      ['192.0.2.1', now + 600_000], // kept
      ['192.0.2.2', now + 1_800_000], // timeout updated
      ['2001:db8::/64', now + 600_000], // added
      ['198.51.100.1', now - 5000], // already over: not added
    ]);
    const rep = await reconcile(spy, ledger, { now });
    assert.deepEqual({ added: rep.added, updated: rep.updated, removed: rep.removed, kept: rep.kept }, { added: 1, updated: 1, removed: 1, kept: 1 });
    assert.deepEqual(calls, [['ban 2001:db8::/64', 'ban 192.0.2.2'], ['unban 192.0.2.3']]);
    const l = await b.list();
    assert.deepEqual([...l.keys()].sort(), ['192.0.2.1', '192.0.2.2', '2001:db8::/64']);
    near(l.get('192.0.2.2'), now + 1_800_000);
    // a second run finds nothing to do
    const again = await reconcile(spy, ledger, { now });
    assert.deepEqual({ added: again.added, updated: again.updated, removed: again.removed, kept: again.kept }, { added: 0, updated: 0, removed: 0, kept: 3 });
    await b.stop({ purge: true });
  });

  await t.test('a set deleted while running is recreated, refilled and reported', async () => {
    const b = h.make();
    const now = Date.now();
    const ledger = new Map<string, number>([['192.0.2.1', now + 600_000], ['2001:db8::7', now + 600_000]]);
    const events: FirewallEvent[] = [];
    const r = new ResilientFirewall(b, { activeBans: () => ledger, onEvent: (e) => events.push(e), checkIntervalMs: 0, baseDelayMs: 10 });
    await r.start();
    assert.equal((await b.list()).size, 2);
    await h.sabotage(b);
    const seen = await r.check();
    assert.equal(seen?.present, false);
    assert.deepEqual([...(await b.list()).keys()].sort(), ['192.0.2.1', '2001:db8::7']);
    assert.ok((await b.status()).hooked);
    assert.equal(r.stats().recoveries, 1);
    assert.ok(events.some((e) => e.type === 'recovered'));
    // and a decision arriving while the set is gone is applied after recovery, not dropped
    await h.sabotage(b);
    ledger.set('192.0.2.9', now + 600_000);
    const rep = await r.apply([ban(ip('192.0.2.9'), now + 600_000)]);
    assert.equal(rep.failed.length, 1);
    assert.equal(r.stats().pending, 1);
    assert.equal(await r.drain(5000), 0);
    assert.deepEqual([...(await b.list()).keys()].sort(), ['192.0.2.1', '192.0.2.9', '2001:db8::7']);
    r.close();
    await b.stop({ purge: true });
  });

  await t.test('stop removes the hooks and keeps the sets; purge removes everything', async () => {
    const b = h.make();
    await b.ensure();
    await b.apply([ban(ip('192.0.2.1'), Date.now() + 600_000)]);
    await b.stop();
    let st = await b.status();
    assert.equal(st.hooked, false);
    assert.equal(st.present, true);
    assert.equal((await b.list()).size, 1);
    await b.stop(); // twice is fine
    await b.ensure();
    st = await b.status();
    assert.ok(st.hooked && st.present);
    await b.stop({ purge: true });
    st = await b.status();
    assert.equal(st.present, false);
    assert.equal(st.hooked, false);
  });

  await t.test('raising maxelem rebuilds the sets in place, keeping every entry', { skip: !h.sharedKernel && 'state is per object' }, async () => {
    const small = h.make({ maxelem: 100 });
    await small.ensure();
    const prefix = (small as unknown as { cfg: { prefix: string } }).cfg.prefix;
    const until = Date.now() + 600_000;
    await small.apply([ban(ip('192.0.2.1'), until), ban(net('2001:db8::/64'), 0)]);
    const big = h.make({ maxelem: 5000, prefix });
    await big.ensure();
    const st = await big.status();
    assert.ok(st.present && st.hooked);
    assert.equal(st.maxelem, 5000);
    const l = await big.list();
    assert.deepEqual([...l.keys()].sort(), ['192.0.2.1', '2001:db8::/64']);
    near(l.get('192.0.2.1'), until);
    near(l.get('2001:db8::/64'), 0);
    const layout = await h.snapshot(big);
    await big.ensure();
    assert.equal(await h.snapshot(big), layout);
    await big.stop({ purge: true });
  });

  await t.test('a full set refuses with MJ_FW_SET_FULL; the 80 % warning fires first', async () => {
    const b = h.make({ maxelem: 16 });
    const events: FirewallEvent[] = [];
    const r = new ResilientFirewall(b, { onEvent: (e) => events.push(e), checkIntervalMs: 0, baseDelayMs: 60_000 });
    await r.start();
    const until = Date.now() + 600_000;
    await r.apply(Array.from({ length: 13 }, (_, i) => ban(ip(`192.0.2.${i + 1}`), until)));
    await r.check();
    const warn = events.find((e) => e.type === 'near-full');
    assert.ok(warn && warn.type === 'near-full' && warn.family === 'v4' && warn.entries === 13);
    const rep = await b.apply(Array.from({ length: 8 }, (_, i) => ban(ip(`198.51.100.${i + 1}`), until)));
    assert.ok(rep.failed.length > 0, 'some bans must fail');
    assert.ok(rep.failed.every((f) => (f.error as MailjailError).code === FW_CODES.SET_FULL), rep.failed.map((f) => f.error.message).join('\n'));
    assert.equal(rep.applied + rep.failed.length, 8);
    r.close();
    await b.stop({ purge: true });
  });
}
