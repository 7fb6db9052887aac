// Through the daemon: (1) `ipset flush` behind its back is noticed by the periodic firewall check
// and the active bans are re-applied (logged, counted in mailjail_firewall_repairs_total);
// (2) a hand-edited ledger cannot put loopback, allowlisted networks or endless bans into the kernel.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBackend } from '../../src/firewall/index.js';
import type { MailjailConfig } from '../../src/daemon/config.js';
import { createLogger } from '../../src/daemon/logger.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { loadRulePack } from '../../src/rules/pack.js';
import type { FirewallBackend, Ip } from '../../src/types.js';
import { addNetns, delNetns, kernelSkipReason, nsExec } from '../firewall/netns.js';
import { PushSource, logSink, tempDir, testConfig, waitFor } from './helpers.js';

async function start(cfg: MailjailConfig, fw: FirewallBackend, opts: { firewallCheckMs: number; allowSelf: boolean }) {
  const log = logSink();
  const metrics = new Metrics({ defaultMetrics: false });
  const daemon = await Daemon.start({
    loadConfig: () => cfg,
    log: createLogger({ level: 'debug', destination: log.stream, pretty: false }),
    metrics,
    makeSource: () => new PushSource('feed'),
    makeFirewall: () => fw,
    loadRules: (d) => loadRulePack(d),
    allowSelf: opts.allowSelf,
    version: 'test',
    restartBaseMs: 10,
    tickMs: 50,
    firewallCheckMs: opts.firewallCheckMs,
  });
  return { daemon, log, metrics };
}

const skip = kernelSkipReason(['ipset', 'iptables', 'ip6tables']);

test('daemon: `ipset flush` while running is noticed by the periodic check and the bans are re-applied', { skip: skip ?? false }, async () => {
  const dir = tempDir();
  const ns = addNetns('fwint-');
  const fw = createBackend({ backend: 'ipset', netns: ns, prefix: 'mjint' });
  const r = await start(testConfig(dir), fw, { firewallCheckMs: 100, allowSelf: false });
  try {
    const targets = ['192.0.2.1', '192.0.2.2', '198.51.100.7', '2001:db8::5'] as Ip[];
    for (const target of targets) await r.daemon.ban({ target, durationMs: 3_600_000 });
    assert.deepEqual([...(await fw.list()).keys()].sort(), [...targets].sort());
    nsExec(ns, 'ipset', ['flush', 'mjint-v4']);
    nsExec(ns, 'ipset', ['flush', 'mjint-v6']);
    await waitFor(async () => (await fw.list()).size === targets.length, 60_000);
    const kernel = await fw.list();
    const bans = await r.daemon.bans();
    assert.equal(bans.length, targets.length);
    for (const b of bans) {
      const have = kernel.get(b.target);
      assert.ok(have !== undefined && Math.abs(have - b.until) < 3000, `${b.target}: kernel ${have}, ban until ${b.until}`);
    }
    await waitFor(async () => /mailjail_firewall_repairs_total\{backend="ipset"\} 4\b/.test(await r.metrics.registry.metrics()), 10_000);
    const warned = r.log.lines().filter((l) => typeof l['msg'] === 'string' && /were missing from the kernel/.test(l['msg']));
    assert.equal(warned.reduce((a, l) => a + Number(l['missing']), 0), targets.length);
  } finally {
    await r.daemon.stop();
    await fw.stop({ purge: true }).catch(() => undefined);
    delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('daemon: start-up restore keeps loopback, allowlisted networks and endless bans of a hand-edited ledger out of the kernel', async () => {
  const dir = tempDir();
  const now = Date.now();
  const line = (target: string, o: Record<string, unknown> = {}): string =>
    JSON.stringify({ t: 'ban', policy: 'auth', target, since: now - 60_000, until: now + 3_600_000, level: 0, ruleId: 'test-auth', ...o });
  mkdirSync(join(dir, 'state'), { recursive: true });
  writeFileSync(join(dir, 'state', 'bans.jsonl'), [
    line('127.0.0.1'), line('::1', { policy: 'manual', ruleId: 'operator' }),
    line('10.0.0.0/8', { policy: 'manual', ruleId: 'operator' }),
    line('192.0.2.9', { since: now + 86_400_000, until: now + 90_000_000 }),
    line('198.51.100.1', { until: 1e300 }),
    line('192.0.2.10'),
  ].join('\n') + '\n');
  const fw = createBackend({ backend: 'dry-run' });
  const r = await start(testConfig(dir, undefined, 'allowlist: [10.20.30.40]'), fw, { firewallCheckMs: 0, allowSelf: true });
  try {
    const kernel = await fw.list();
    assert.deepEqual([...kernel.keys()].sort(), ['192.0.2.10', '198.51.100.1']);
    // 1e300 is clamped to the policy's longest ban (bantime 1h, no escalation in testConfig)
    assert.ok(Math.abs(kernel.get('198.51.100.1')! - (now - 60_000 + 3_600_000)) < 3000);
    assert.deepEqual((await r.daemon.bans()).map((b) => b.target).sort(), ['192.0.2.10', '198.51.100.1']);
    const warned = r.log.lines().filter((l) => l['action'] === 'refused').map((l) => l['target']).sort();
    assert.deepEqual(warned, ['10.0.0.0/8', '127.0.0.1', '192.0.2.9', '::1']);
    assert.ok(r.log.lines().some((l) => l['action'] === 'clamped' && l['target'] === '198.51.100.1'));
    assert.match(await r.metrics.registry.metrics(), /mailjail_ledger_restore_issues_total\{action="refused"\} 4/);
  } finally {
    await r.daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
