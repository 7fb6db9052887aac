// Reload and start-up wiring through the daemon: a reload whose new source cannot be built is
// refused as a whole, policy changes reload the one decider (counters, bans and history survive),
// and the ledger keeps as much history as the longest escalation window needs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createBackend } from '../../src/firewall/index.js';
import type { MailjailConfig, SourceConfig } from '../../src/daemon/config.js';
import { createLogger } from '../../src/daemon/logger.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { Daemon, type DaemonDeps } from '../../src/daemon/daemon.js';
import { loadRulePack } from '../../src/rules/pack.js';
import type { FirewallBackend } from '../../src/types.js';
import { MailjailError } from '../../src/types.js';
import { PushSource, logSink, sasl, tempDir, testConfig, waitFor } from './helpers.js';

const BROKEN_SIZE = 1234;

interface Rig {
  daemon: Daemon;
  /** The sources by name (a rebuilt source gets the same instance back, so the test can feed it). */
  sources: Map<string, PushSource>;
  /** Source configs the factory was asked to build, in order. */
  built: SourceConfig[];
  fw: FirewallBackend;
  log: ReturnType<typeof logSink>;
  metrics: Metrics;
  setConfig: (c: MailjailConfig) => void;
}

/** A daemon whose source factory refuses any syslog source with maxMessageSize BROKEN_SIZE. */
async function rig(cfg: MailjailConfig): Promise<Rig> {
  let current = cfg;
  const log = logSink();
  const metrics = new Metrics({ defaultMetrics: false });
  const sources = new Map<string, PushSource>();
  const built: SourceConfig[] = [];
  const fw = createBackend({ backend: 'dry-run' });
  const deps: DaemonDeps = {
    loadConfig: () => current,
    log: createLogger({ level: 'debug', destination: log.stream, pretty: false }),
    metrics,
    makeSource: (c) => {
      built.push(c);
      if (c.type !== 'journald' && c.maxMessageSize === BROKEN_SIZE) throw new MailjailError('MJ_SRC_CONFIG', `${c.name}: cannot read tls.caFile`);
      let s = sources.get(c.name);
      if (!s) sources.set(c.name, (s = new PushSource(c.name)));
      return s;
    },
    makeFirewall: () => fw,
    loadRules: (d) => loadRulePack(d),
    allowSelf: false,
    version: 'test',
    restartBaseMs: 10,
    tickMs: 50,
    firewallCheckMs: 0,
  };
  const daemon = await Daemon.start(deps);
  return { daemon, sources, built, fw, log, metrics, setConfig: (c) => { current = c; } };
}

/** `cfg` with its one source changed as `change` says, plus any extra sources. */
function withSources(cfg: MailjailConfig, change: Partial<SourceConfig>, ...extra: SourceConfig[]): MailjailConfig {
  return { ...cfg, sources: [...cfg.sources.map((s) => ({ ...s, ...change }) as SourceConfig), ...extra] };
}

test('a reload whose changed source cannot be built is refused: the old source, policies and config keep running', async () => {
  const dir = tempDir();
  const cfg = testConfig(dir);
  const r = await rig(cfg);
  try {
    const feed = r.sources.get('feed')!;
    const buildsBefore = r.built.length;
    // New config: the feed changes (and cannot be built), a second source appears (and could be),
    // and maxretry drops to 2. None of it may take effect.
    const extra = { ...cfg.sources[0]!, name: 'second' } as SourceConfig;
    const broken = withSources(testConfig(dir, 'maxretry: 2\n    findtime: 10m\n    bantime: 1h'), { maxMessageSize: BROKEN_SIZE }, extra);
    r.setConfig(broken);
    await assert.rejects(r.daemon.reload(), (e: Error) => {
      assert.match(e.message, /^MJ_RELOAD_REFUSED: new configuration refused, the old one keeps running:\nsource "feed": MJ_SRC_CONFIG: feed: cannot read tls\.caFile$/);
      return true;
    });
    assert.ok(r.built.length > buildsBefore, 'the new sources were built before anything was swapped');
    const st = await r.daemon.status();
    assert.deepEqual(st.sources.map((s) => [s.name, s.state]), [['feed', 'running']]);
    assert.deepEqual(st.policies.map((p) => [p.name, p.maxretry]), [['auth', 5]]);
    assert.match(await r.metrics.registry.metrics(), /mailjail_reloads_total\{result="refused"\} 1/);
    assert.ok(r.log.lines().some((l) => l['msg'] === 'reload refused: the running config stays in force' && l['source'] === 'feed'));
    // The old source still delivers, under the old policy: 2 attempts do not ban, 5 do.
    feed.push([sasl('192.0.2.70', 1), sasl('192.0.2.70', 2)]);
    await waitFor(async () => (await r.daemon.status()).counters['matches'] === 2);
    assert.equal((await r.daemon.bans()).length, 0, 'maxretry 2 of the refused config is not in force');
    feed.push([3, 4, 5].map((i) => sasl('192.0.2.70', i)));
    await waitFor(async () => (await r.fw.list()).has('192.0.2.70'));
    // Once the source can be built, the same change goes through: the feed is replaced, the second one starts.
    r.setConfig(withSources(testConfig(dir), { maxMessageSize: 4321 }, extra));
    await r.daemon.reload();
    await waitFor(async () => (await r.daemon.status()).sources.every((s) => s.state === 'running') && r.sources.has('second'));
    assert.deepEqual((await r.daemon.status()).sources.map((s) => s.name).sort(), ['feed', 'second']);
    r.sources.get('second')!.push([1, 2, 3, 4, 5].map((i) => sasl('192.0.2.71', i)));
    await waitFor(async () => (await r.fw.list()).has('192.0.2.71'));
  } finally {
    await r.daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a reload that changes thresholds keeps counters, bans and escalation history: 3 failures, maxretry 5→4, 1 more bans', async () => {
  const dir = tempDir();
  const esc = '\n    escalation: { factor: 2, maxBantime: 1d }';
  const r = await rig(testConfig(dir, `maxretry: 5\n    findtime: 10m\n    bantime: 1h${esc}`));
  try {
    const feed = r.sources.get('feed')!;
    // History: 192.0.2.81 was banned once and let go.
    await r.daemon.ban({ target: '192.0.2.81' as never, policy: 'auth' });
    await r.daemon.unban({ target: '192.0.2.81' as never });
    await r.daemon.ban({ target: '198.51.100.3' as never, policy: 'auth' });
    feed.push([1, 2, 3].map((i) => sasl('192.0.2.80', i)));
    await waitFor(async () => (await r.daemon.status()).counters['matches'] === 3);
    r.setConfig(testConfig(dir, `maxretry: 4\n    findtime: 20m\n    bantime: 1h${esc}`));
    await r.daemon.reload();
    assert.deepEqual((await r.daemon.status()).policies.map((p) => [p.name, p.maxretry]), [['auth', 4]]);
    assert.ok(r.log.lines().some((l) => l['msg'] === 'configuration reloaded' && l['policiesChanged'] === true && l['countersRestarted'] === undefined));
    feed.push([sasl('192.0.2.80', 4)]);
    await waitFor(async () => (await r.fw.list()).has('192.0.2.80'));
    assert.ok((await r.fw.list()).has('198.51.100.3'), 'bans survive the reload');
    // The earlier ban of .81 still counts for escalation: its next ban is level 1.
    feed.push([1, 2, 3, 4].map((i) => sasl('192.0.2.81', i)));
    await waitFor(async () => (await r.fw.list()).has('192.0.2.81'));
    const b = (await r.daemon.bans()).find((x) => x.target === '192.0.2.81')!;
    assert.equal(b.level, 1);
  } finally {
    await r.daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a 90-day escalation window: a 40-day-old ban survives the ledger compaction at start and escalates the next ban', async () => {
  const dir = tempDir();
  const now = Date.now();
  const day = 86_400_000;
  mkdirSync(join(dir, 'state'), { recursive: true });
  const ban = (target: string, since: number, until: number): string =>
    JSON.stringify({ t: 'ban', policy: 'auth', target, since, until, level: 0, ruleId: 'demo-sasl' });
  // More than the ledger's compaction threshold of dead entries, so that open() compacts.
  const lines = Array.from({ length: 10_050 }, () => JSON.stringify({ t: 'mark', through: {} }));
  lines.push(ban('192.0.2.90', now - 40 * day, now - 40 * day + 3_600_000));
  lines.push(ban('192.0.2.91', now - 2 * 3_600_000, now - 3_600_000)); // recent: compaction measures age from here
  writeFileSync(join(dir, 'state', 'bans.jsonl'), lines.join('\n') + '\n');
  const r = await rig(testConfig(dir, 'maxretry: 5\n    findtime: 10m\n    bantime: 1h\n    escalation: { factor: 2, maxBantime: 1d, window: 90d }'));
  try {
    const kept = readFileSync(join(dir, 'state', 'bans.jsonl'), 'utf8').trim().split('\n');
    assert.ok(kept.length < 10, `compacted at open (${kept.length} lines)`);
    assert.ok(kept.some((l) => l.includes('"target":"192.0.2.90"')), 'the 40-day-old ban is kept for the 90-day window');
    r.sources.get('feed')!.push([1, 2, 3, 4, 5].map((i) => sasl('192.0.2.90', i)));
    await waitFor(async () => (await r.fw.list()).has('192.0.2.90'));
    const b = (await r.daemon.bans()).find((x) => x.target === '192.0.2.90')!;
    assert.equal(b.level, 1, 'escalated by the ban 40 days ago');
    assert.ok(b.until - Date.now() > 1.5 * 3_600_000, 'bantime doubled');
  } finally {
    await r.daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
