// The daemon with its state directory on a small tmpfs (root) that fills up: it enforces and
// lists only bans the ledger holds, says so (log line, metric), and bans each offender it could
// not ban at its next line once there is room again. Lines reach the decider in batches
// (observeBatch, one ledger write per batch).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { createBackend } from '../../src/firewall/index.js';
import { createLogger } from '../../src/daemon/logger.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { loadRulePack } from '../../src/rules/pack.js';
import { fill, mountTmpfs, unmount } from '../state/tmpfs.js';
import { PushSource, logSink, sasl, tempDir, testConfig, waitFor } from './helpers.js';

const ledgerTargets = (stateDir: string): Set<string> => new Set(
  readFileSync(join(stateDir, 'bans.jsonl'), 'utf8').split('\n').filter(Boolean)
    .map((l) => JSON.parse(l) as { t: string; target?: string }).filter((e) => e.t === 'ban').map((e) => e.target!),
);

test('daemon on a full disk: no ban is enforced or listed that the ledger lacks; it says so, and bans at the next line once there is room', async (t) => {
  const dir = tempDir();
  const stateDir = join(dir, 'state');
  if (!mountTmpfs(t, '512k', stateDir)) {
    rmSync(dir, { recursive: true, force: true });
    return;
  }
  const log = logSink();
  const metrics = new Metrics({ defaultMetrics: false });
  const source = new PushSource('feed');
  const fw = createBackend({ backend: 'dry-run' });
  const cfg = testConfig(dir);
  const daemon = await Daemon.start({
    loadConfig: () => cfg, log: createLogger({ level: 'debug', destination: log.stream, pretty: false }), metrics,
    makeSource: () => source, makeFirewall: () => fw, loadRules: (d) => loadRulePack(d), allowSelf: false, version: 'test',
    tickMs: 50, firewallCheckMs: 0,
  });
  let stopped = false;
  try {
    const attacker = (a: number): string => `198.51.${a >> 8}.${a & 255}`;
    let matches = 0;
    const attack = (as: readonly number[]): void => {
      source.push(as.flatMap((a) => [1, 2, 3, 4, 5].map((i) => sasl(attacker(a), i))));
      matches += as.length * 5;
    };
    attack([0]);
    await waitFor(async () => (await fw.list()).has(attacker(0)));

    fill(join(stateDir, 'filler'));
    // One attacker per batch, then batches of four (group commit: all of a batch or none).
    const all: number[] = [];
    for (let a = 1; a <= 60; a++) { attack([a]); all.push(a); }
    for (let a = 61; a <= 100; a += 4) { attack([a, a + 1, a + 2, a + 3]); all.push(a, a + 1, a + 2, a + 3); }
    await waitFor(async () => (await daemon.status()).counters['matches'] === matches);

    const listed = new Set((await daemon.bans()).map((b) => b.target));
    const failed = all.filter((a) => !listed.has(attacker(a)));
    assert.ok(failed.length >= 10, `bans that could not be written are not listed (${failed.length} of ${all.length} not listed)`);
    // Never a ban listed or enforced that is not in the ledger, and everything listed is enforced.
    const inLedger = ledgerTargets(stateDir);
    for (const target of listed) assert.ok(inLedger.has(target), `${target} is listed but not in the ledger`);
    await waitFor(async () => (await fw.list()).size === listed.size);
    for (const target of (await fw.list()).keys()) assert.ok(listed.has(target), `${target} enforced but not listed`);
    for (let a = 61; a <= 100; a += 4) {
      const got = [a, a + 1, a + 2, a + 3].filter((x) => listed.has(attacker(x))).length;
      assert.ok(got === 0 || got === 4, `batch ${a}: all or none (${got})`);
    }
    // It says so: one error line (rate-limited), and the metric.
    assert.equal(log.lines().filter((l) => l['level'] === 'error' && /state stage failed on a batch/.test(String(l['msg']))).length, 1);
    const failures = Number(/mailjail_ledger_write_failures_total (\d+)/.exec(await metrics.registry.metrics())?.[1]);
    assert.ok(failures >= failed.length / 4, `mailjail_ledger_write_failures_total ${failures}`);

    // Room again: each offender's next line bans it.
    unlinkSync(join(stateDir, 'filler'));
    source.push(failed.map((a) => sasl(attacker(a), 6)));
    await waitFor(async () => (await fw.list()).size === all.length + 1);
    assert.equal((await daemon.bans()).length, all.length + 1);
    await daemon.stop();
    stopped = true;
    const after = ledgerTargets(stateDir);
    for (const a of [0, ...all]) assert.ok(after.has(attacker(a)), `${attacker(a)} in the ledger`);
  } finally {
    if (!stopped) await daemon.stop();
    unmount(stateDir);
    rmSync(dir, { recursive: true, force: true });
  }
});
