import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { createBackend } from '../../src/firewall/index.js';
import type { MailjailConfig } from '../../src/daemon/config.js';
import { createLogger } from '../../src/daemon/logger.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { Daemon, type DaemonDeps } from '../../src/daemon/daemon.js';
import { loadRulePack } from '../../src/rules/pack.js';
import type { FirewallBackend } from '../../src/types.js';
import { PushSource, RULES, logSink, sasl, tempDir, testConfig, waitFor } from './helpers.js';

interface Rig {
  daemon: Daemon;
  source: PushSource;
  fw: FirewallBackend;
  log: ReturnType<typeof logSink>;
  metrics: Metrics;
  setConfig: (c: MailjailConfig | Error) => void;
}

async function rig(dir: string, cfg: MailjailConfig, opts: { failFirst?: boolean; fw?: FirewallBackend } = {}): Promise<Rig> {
  let current: MailjailConfig | Error = cfg;
  const log = logSink();
  const metrics = new Metrics({ defaultMetrics: false });
  const source = new PushSource('feed', opts.failFirst);
  const fw = opts.fw ?? createBackend({ backend: 'dry-run' });
  const deps: DaemonDeps = {
    loadConfig: () => { if (current instanceof Error) throw current; return current; },
    log: createLogger({ level: 'debug', destination: log.stream, pretty: false }),
    metrics,
    makeSource: () => source,
    makeFirewall: () => fw,
    loadRules: (d) => loadRulePack(d),
    allowSelf: false,
    version: 'test',
    restartBaseMs: 10,
    tickMs: 50,
    firewallCheckMs: 0,
  };
  const daemon = await Daemon.start(deps);
  return { daemon, source, fw, log, metrics, setConfig: (c) => { current = c; } };
}

test('lines flow sources → parse → rules → state → firewall; one log line per ban with the evidence', async () => {
  const dir = tempDir();
  const r = await rig(dir, testConfig(dir));
  try {
    r.source.push([sasl('192.0.2.1', 1), sasl('192.0.2.1', 2), 'Nov  4 00:00:03 mx1 postfix/smtpd[1]: connect from unknown[192.0.2.1]', 'garbage']);
    r.source.push([sasl('192.0.2.1', 4), sasl('192.0.2.1', 5), sasl('198.51.100.9', 6)]);
    await waitFor(async () => (await r.daemon.status()).counters['matches'] === 5);
    assert.equal((await r.daemon.bans()).length, 0);
    r.source.push([sasl('192.0.2.1', 7), sasl('192.0.2.1', 8)]);
    await waitFor(async () => (await r.fw.list()).has('192.0.2.1'));
    const bans = await r.daemon.bans();
    assert.equal(bans.length, 1);
    assert.equal(bans[0]!.target, '192.0.2.1');
    assert.equal(bans[0]!.policy, 'auth');
    assert.equal(bans[0]!.evidence.count, 5);
    assert.match(bans[0]!.evidence.firstLine!, /unknown\[192\.0\.2\.1\]: SASL LOGIN/);
    const ban = r.log.lines().find((l) => l['event'] === 'ban')!;
    assert.equal(ban['target'], '192.0.2.1');
    assert.equal(ban['rule'], 'demo-sasl');
    assert.equal(ban['level'], 'info');
    assert.equal(ban['banLevel'], 0);
    assert.equal(r.log.raw().split('"level"').length - 1, r.log.lines().length, 'one "level" key per line');
    assert.equal(ban['count'], 5);
    assert.ok(typeof ban['first'] === 'string' && typeof ban['last'] === 'string');
    assert.match(String(ban['msg']), /^ban 192\.0\.2\.1 for (59m\d+s|1h) \(policy auth, level 0, 5 × demo-sasl\)$/);
    const st = await r.daemon.status();
    assert.equal(st.counters['lines'], 8 - 0 + 1);
    assert.equal(st.counters['matches'], 7);
    assert.equal(st.counters['bansActive'], 1);
    assert.deepEqual(st.sources.map((s) => [s.name, s.state]), [['feed', 'running']]);
    assert.deepEqual(st.policies.map((p) => [p.name, p.bansActive]), [['auth', 1]]);
    const text = await r.metrics.registry.metrics();
    assert.match(text, /mailjail_lines_received_total\{source="feed"\} 9/);
    assert.match(text, /mailjail_rule_matches_total\{rule="demo-sasl",class="auth"\} 7/);
    await waitFor(async () => /mailjail_bans_active\{policy="auth"\} 1/.test(await r.metrics.registry.metrics()));
  } finally {
    await r.daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('operator ban and unban take the same ledger → firewall path; unknown policies and allowlisted targets are refused', async () => {
  const dir = tempDir();
  const r = await rig(dir, testConfig(dir, undefined, 'allowlist: [203.0.113.200]'));
  try {
    const b = await r.daemon.ban({ target: '203.0.113.5' as never, durationMs: 120_000 });
    assert.equal(b.policy, 'manual');
    assert.ok(Math.abs(b.until - Date.now() - 120_000) < 5000);
    assert.ok((await r.fw.list()).has('203.0.113.5'));
    const p = await r.daemon.ban({ target: '2001:db8::/64' as never, policy: 'auth' });
    assert.equal(p.policy, 'auth');
    assert.ok((await r.fw.list()).has('2001:db8::/64'));
    await assert.rejects(r.daemon.ban({ target: '203.0.113.6' as never, policy: 'smtp' }), /MJ_CTL_UNKNOWN_POLICY: unknown policy "smtp"; known: auth, manual/);
    await assert.rejects(r.daemon.ban({ target: '203.0.113.0/24' as never }), /MJ_STATE_ALLOWLISTED/);
    const u = await r.daemon.unban({ target: '203.0.113.5' as never });
    assert.deepEqual(u, { target: '203.0.113.5', removed: true });
    assert.ok(!(await r.fw.list()).has('203.0.113.5'));
    assert.deepEqual((await r.daemon.unban({ target: '203.0.113.77' as never })).removed, false);
    const ledger = readFileSync(join(dir, 'state', 'bans.jsonl'), 'utf8');
    assert.match(ledger, /"t":"ban".*"target":"203\.0\.113\.5"/);
    assert.match(ledger, /"t":"unban","target":"203\.0\.113\.5"/);
  } finally {
    await r.daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('reload keeps counters and bans; a broken config is refused and the old one keeps running', async () => {
  const dir = tempDir();
  const cfg = testConfig(dir);
  const r = await rig(dir, cfg);
  try {
    await r.daemon.ban({ target: '198.51.100.1' as never, policy: 'auth' });
    r.source.push([1, 2, 3].map((i) => sasl('192.0.2.50', i)));
    await waitFor(async () => (await r.daemon.status()).counters['matches'] === 3);
    // Same policies, another allowlist entry: counters must carry over.
    r.setConfig(testConfig(dir, undefined, 'allowlist: [192.0.2.99]'));
    assert.deepEqual(await r.daemon.reload(), { files: [join(dir, 'mailjail.yaml')] });
    r.source.push([4, 5].map((i) => sasl('192.0.2.50', i)));
    await waitFor(async () => (await r.fw.list()).has('192.0.2.50'));
    assert.ok((await r.fw.list()).has('198.51.100.1'), 'bans survive the reload');
    // The new allowlist is in force.
    r.source.push([1, 2, 3, 4, 5, 6].map((i) => sasl('192.0.2.99', i)));
    await waitFor(async () => (await r.daemon.status()).counters['matches'] === 11);
    assert.ok(!(await r.fw.list()).has('192.0.2.99'));
    r.setConfig(new Error('MJ_CONFIG_TYPE: mailjail.yaml:3:5: policies.auth.maxretry: expected an integer'));
    await assert.rejects(r.daemon.reload(), /MJ_RELOAD_REFUSED: new configuration refused, the old one keeps running:\nMJ_CONFIG_TYPE/);
    assert.equal((await r.daemon.status()).sources[0]!.state, 'running');
    // A policy change keeps bans (and counters: test/daemon/reload.test.ts).
    r.setConfig(testConfig(dir, 'maxretry: 2\n    findtime: 10m\n    bantime: 1h'));
    await r.daemon.reload();
    assert.equal((await r.daemon.bans()).length, 2);
    r.source.push([1, 2].map((i) => sasl('192.0.2.60', i)));
    await waitFor(async () => (await r.fw.list()).has('192.0.2.60'));
    assert.match(await r.metrics.registry.metrics(), /mailjail_reloads_total\{result="refused"\} 1/);
  } finally {
    await r.daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('journal entries count at their journald time (a look-back is not squeezed into now); syslog lines at wall time', async () => {
  const dir = tempDir();
  const r = await rig(dir, testConfig(dir));
  try {
    const msg = 'warning: unknown[192.0.2.80]: SASL LOGIN authentication failed: UGFzc3dvcmQ6';
    const old = Date.now() - 30 * 60_000;
    r.source.pushJournal([0, 1, 2].map((i) => ({ message: msg, time: old + i * 1000 })));
    r.source.pushJournal([0, 1].map((i) => ({ message: msg, time: Date.now() - 1000 + i })));
    await waitFor(async () => (await r.daemon.status()).counters['matches'] === 5);
    assert.equal((await r.daemon.bans()).length, 0, '3 attempts 30 min ago and 2 now are not 5 in 10 min');
    r.source.pushJournal([0, 1, 2].map((i) => ({ message: msg, time: Date.now() - 500 + i })));
    await waitFor(async () => (await r.fw.list()).has('192.0.2.80'));
  } finally {
    await r.daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a failing source is restarted by the supervisor', async () => {
  const dir = tempDir();
  const r = await rig(dir, testConfig(dir), { failFirst: true });
  try {
    await waitFor(() => r.source.runs >= 2);
    r.source.push([sasl('192.0.2.1', 1)]);
    await waitFor(async () => (await r.daemon.status()).counters['matches'] === 1);
    assert.ok(r.log.lines().some((l) => l['msg'] === 'source failed; restarting' && l['err'] === 'listener exploded'));
    assert.match(await r.metrics.registry.metrics(), /mailjail_source_restarts_total\{source="feed"\} 1/);
  } finally {
    await r.daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('restart: bans come back from the ledger into a fresh firewall; shutdown writes a checkpoint', async () => {
  const dir = tempDir();
  const cfg = testConfig(dir);
  const a = await rig(dir, cfg);
  a.source.push([1, 2, 3, 4, 5].map((i) => sasl('192.0.2.7', i)));
  await waitFor(async () => (await a.fw.list()).has('192.0.2.7'));
  await a.daemon.ban({ target: '2001:db8:1::/48' as never, durationMs: 3_600_000 });
  await a.daemon.stop();
  assert.match(readFileSync(join(dir, 'state', 'bans.jsonl'), 'utf8').trim().split('\n').at(-1)!, /^\{"t":"mark"/);
  const b = await rig(dir, cfg); // a new dry-run backend: empty "kernel"
  try {
    const kernel = await b.fw.list();
    assert.ok(kernel.has('192.0.2.7') && kernel.has('2001:db8:1::/48'), [...kernel.keys()].join(','));
    assert.equal((await b.daemon.bans()).length, 2);
    assert.ok(b.log.lines().some((l) => l['msg'] === 'firewall reconciled with the ledger' && l['added'] === 2));
  } finally {
    await b.daemon.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('orderly stop drains: a ban decided just before stop reaches a slow firewall; a failing one is retried', async () => {
  const dir = tempDir();
  const inner = createBackend({ backend: 'dry-run' });
  let fails = 2;
  const slow: FirewallBackend = {
    name: 'slow', healthcheck: () => inner.healthcheck(), ensure: () => inner.ensure(), list: () => inner.list(), stop: (o) => inner.stop(o),
    async apply(batch) {
      await new Promise((res) => setTimeout(res, 200));
      if (batch.length > 0 && fails-- > 0) throw new Error('ipset restore: exit 1');
      return inner.apply(batch);
    },
  };
  const r = await rig(dir, testConfig(dir), { fw: slow });
  r.source.push([1, 2, 3, 4, 5].map((i) => sasl('192.0.2.33', i)));
  await waitFor(async () => (await r.daemon.status()).counters['bans'] === 1);
  await r.daemon.stop();
  assert.ok((await inner.list()).has('192.0.2.33'), 'applied before stop returned');
  assert.ok(r.log.lines().some((l) => l['msg'] === 'firewall failure; decisions kept and retried'));
  assert.match(await r.metrics.registry.metrics(), /mailjail_bans_failed_total\{backend="slow"\} [1-9]/);
  rmSync(dir, { recursive: true, force: true });
});

test('start fails cleanly when the rule pack does not load', async () => {
  const dir = tempDir();
  const cfg = testConfig(dir);
  await assert.rejects(Daemon.start({
    loadConfig: () => ({ ...cfg, rules: { dir: join(RULES, '..', 'rules-bad') } }),
    log: createLogger({ level: 'silent', destination: logSink().stream, pretty: false }),
    metrics: new Metrics({ defaultMetrics: false }),
    makeSource: () => new PushSource('x'),
    makeFirewall: () => createBackend({ backend: 'dry-run' }),
    allowSelf: false,
    version: 'test',
  }), /MJ_RULE/);
  rmSync(dir, { recursive: true, force: true });
});
