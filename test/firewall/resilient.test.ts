// The resilient wrapper against a scripted fake backend: retries with backoff, counts failures,
// never drops a decision, reports refused ones, and repairs a vanished set from the ledger.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DryRunBackend } from '../../src/firewall/dryrun.js';
import { createFirewall } from '../../src/firewall/index.js';
import { FirewallError, FW_CODES } from '../../src/firewall/exec.js';
import { ResilientFirewall, type FirewallEvent } from '../../src/firewall/resilient.js';
import type { ApplyReport, BanDecision, Ip } from '../../src/types.js';
import { waitFor } from '../helpers/wait.js';
import { ban, unban } from './conformance.js';

/** A dry-run backend whose next `failures` applies throw the given error. */
class Flaky extends DryRunBackend {
  failures = 0;
  code: string = FW_CODES.EXEC;
  calls: string[][] = [];
  override async apply(batch: readonly BanDecision[]): Promise<ApplyReport> {
    this.calls.push(batch.map((d) => `${d.action} ${d.target}`));
    if (this.failures > 0) {
      this.failures--;
      throw new FirewallError(this.code, 'ipset restore -exist failed (exit 1): boom', 'ipset restore -exist', 'boom');
    }
    return super.apply(batch);
  }
}

const until = Date.now() + 3_600_000;

test('failed applies stay queued and are retried with backoff until they land', async () => {
  const b = new Flaky();
  await b.ensure();
  b.failures = 3;
  const events: FirewallEvent[] = [];
  const r = new ResilientFirewall(b, { baseDelayMs: 5, maxDelayMs: 20, checkIntervalMs: 0, onEvent: (e) => events.push(e) });
  const rep = await r.apply([ban('192.0.2.1' as Ip, until), ban('192.0.2.2' as Ip, until)]);
  assert.equal(rep.failed.length, 2);
  assert.equal(r.stats().pending, 2);
  // Left to its own timers (no drain), the wrapper retries after 5, 10, 20 ms.
  await waitFor(() => r.stats().pending === 0, { timeoutMs: 10_000, intervalMs: 5, what: 'the retries to empty the pending queue', observe: () => r.stats() });
  assert.deepEqual([...(await b.list()).keys()].sort(), ['192.0.2.1', '192.0.2.2']);
  const s = r.stats();
  assert.equal(s.failures, 3);
  assert.equal(s.applied, 2);
  assert.match(s.lastError ?? '', /MJ_FW_EXEC: ipset restore -exist failed/);
  const delays = events.filter((e) => e.type === 'retry').map((e) => (e as { delayMs: number }).delayMs);
  assert.deepEqual(delays.slice(0, 3), [5, 10, 20]);
  r.close();
});

test('a newer decision for the same target replaces the queued one (last wins, nothing lost)', async () => {
  const b = new Flaky();
  await b.ensure();
  b.failures = 1;
  const r = new ResilientFirewall(b, { baseDelayMs: 60_000, checkIntervalMs: 0 });
  await r.apply([ban('192.0.2.1' as Ip, until), ban('192.0.2.3' as Ip, until)]);
  await r.apply([unban('192.0.2.1' as Ip)]);
  assert.equal(r.stats().pending, 0);
  assert.deepEqual(b.calls[1], ['ban 192.0.2.3', 'unban 192.0.2.1']);
  assert.deepEqual([...(await b.list()).keys()], ['192.0.2.3']);
  r.close();
});

test('refused targets are reported once and not retried', async () => {
  const b = new Flaky();
  await b.ensure();
  const events: FirewallEvent[] = [];
  const r = new ResilientFirewall(b, { checkIntervalMs: 0, onEvent: (e) => events.push(e) });
  const rep = await r.apply([ban('not an ip' as Ip, until), ban('192.0.2.1' as Ip, until)]);
  assert.equal(rep.applied, 1);
  assert.equal(rep.failed.length, 1);
  assert.equal(r.stats().pending, 0);
  assert.equal(r.stats().rejected, 1);
  const rej = events.find((e) => e.type === 'rejected');
  assert.ok(rej && rej.type === 'rejected' && (rej.error as FirewallError).code === FW_CODES.TARGET);
  r.close();
});

test('MJ_FW_SET_MISSING triggers ensure + refill from the ledger before the retry', async () => {
  const b = new Flaky();
  const ledger = new Map([['192.0.2.1', until]]);
  const events: FirewallEvent[] = [];
  const r = new ResilientFirewall(b, { activeBans: () => ledger, baseDelayMs: 5, checkIntervalMs: 0, onEvent: (e) => events.push(e) });
  await r.start();
  b.simulateLoss();
  ledger.set('192.0.2.2', until);
  const rep = await r.apply([ban('192.0.2.2' as Ip, until)]);
  assert.equal((rep.failed[0]?.error as FirewallError).code, FW_CODES.SET_MISSING);
  assert.equal(await r.drain(2000), 0);
  assert.deepEqual([...(await b.list()).keys()].sort(), ['192.0.2.1', '192.0.2.2']);
  assert.equal(r.stats().recoveries, 1);
  assert.ok(events.some((e) => e.type === 'recovered'));
  r.close();
});

test('concurrent applies are serialised: every decision lands exactly once', async () => {
  const b = new Flaky();
  await b.ensure();
  const r = new ResilientFirewall(b, { checkIntervalMs: 0 });
  const reps = await Promise.all(Array.from({ length: 20 }, (_, i) => r.apply([ban(`198.51.100.${i + 1}` as Ip, until)])));
  assert.equal(reps.reduce((n, x) => n + x.applied, 0), 20);
  assert.equal((await b.list()).size, 20);
  r.close();
});

test('createFirewall builds the configured backend inside the wrapper and reconciles on start', async () => {
  const fw = createFirewall({ backend: 'dry-run', prefix: 'mjc' }, { activeBans: () => new Map([['192.0.2.1', until], ['bogus', until]]), checkIntervalMs: 0 });
  const rep = await fw.start();
  assert.equal(fw.name, 'dry-run');
  assert.deepEqual({ added: rep?.added, invalid: rep?.invalid }, { added: 1, invalid: ['bogus'] });
  assert.deepEqual([...(await fw.list()).keys()], ['192.0.2.1']);
  assert.match((fw.backend as DryRunBackend).log.at(-1) ?? '', /^add mjc-v4 192\.0\.2\.1 timeout 3\d{3}$/);
  await fw.stop({ purge: true });
});

test('a ban never shortens a longer one still running (several policies, one kernel entry); an unban lifts it', async () => {
  const b = new Flaky();
  const now = Date.now();
  const r = new ResilientFirewall(b, { activeBans: () => [['192.0.2.1', now + 7_200_000], ['192.0.2.1', now + 600_000]], checkIntervalMs: 0 });
  await r.start();
  const exp = async (): Promise<number | undefined> => (await b.list()).get('192.0.2.1');
  assert.ok(Math.abs((await exp())! - (now + 7_200_000)) < 2000, 'ledger duplicates: the later end wins');
  await r.apply([ban('192.0.2.1' as Ip, now + 600_000)]); // another policy, shorter
  assert.ok(Math.abs((await exp())! - (now + 7_200_000)) < 2000);
  await r.apply([ban('192.0.2.1' as Ip, now + 9_000_000)]); // longer: extends
  assert.ok(Math.abs((await exp())! - (now + 9_000_000)) < 2000);
  await r.apply([unban('192.0.2.1' as Ip), ban('192.0.2.1' as Ip, now + 600_000)]); // lifted, then a fresh short ban
  assert.ok(Math.abs((await exp())! - (now + 600_000)) < 2000);
  r.close();
});
