// The wired daemon in cluster roles, against a REAL redis-server: a collector daemon (sources →
// state → Redis, no local firewall) and two enforcer daemons (Redis → their firewall); config
// checks for the redis section. Absent section = today's behaviour (the daemon tests cover that).
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { createBackend } from '../../src/firewall/index.js';
import { configFromTexts, type MailjailConfig } from '../../src/daemon/config.js';
import { createLogger } from '../../src/daemon/logger.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { Daemon, type DaemonDeps } from '../../src/daemon/pipeline.js';
import { loadRulePack } from '../../src/rules/pack.js';
import type { FirewallBackend } from '../../src/types.js';
import { PushSource, logSink, sasl, tempDir, testConfig, waitFor } from '../daemon/helpers.js';
import { haveRedis, RedisServer } from './redis-server.js';

const skip = haveRedis() ? undefined : 'redis-server is not installed (apt-get install redis-server)';
if (skip) console.warn(`SKIPPED cluster daemon tests: ${skip}`);

let srv: RedisServer;
before(async () => {
  if (!skip) srv = await RedisServer.start();
});
after(async () => {
  await srv?.destroy();
});

async function node(cfg: MailjailConfig, fw: FirewallBackend = createBackend({ backend: 'dry-run' })) {
  const log = logSink();
  const metrics = new Metrics({ defaultMetrics: false });
  const source = new PushSource('feed');
  const made: string[] = [];
  const deps: DaemonDeps = {
    loadConfig: () => cfg,
    log: createLogger({ level: 'debug', destination: log.stream, pretty: false }),
    metrics,
    makeSource: () => source,
    makeFirewall: (c) => { made.push(c.backend); return fw; },
    loadRules: (d) => loadRulePack(d),
    allowSelf: false,
    version: 'test',
    tickMs: 50,
    firewallCheckMs: 0,
  };
  const daemon = await Daemon.start(deps);
  return { daemon, source, fw, log, metrics, made };
}

const clusterYaml = (role: string, nodeName: string, extra = '') =>
  `role: ${role}\nredis: { url: "${srv.url}", node: ${nodeName}, prefix: d${nodeName.length}x }\n${extra}`;

test('collector daemon → two enforcer daemons: the attacker is banned on both mail hosts, not on the collector', { skip }, async () => {
  const prefix = `dm${Date.now()}`;
  const yaml = (role: string, n: string) => `role: ${role}\nredis: { url: "${srv.url}", node: ${n}, prefix: ${prefix} }`;
  const dc = tempDir(), d1 = tempDir(), d2 = tempDir();
  const col = await node(testConfig(dc, undefined, yaml('collector', 'collector')));
  const mx1 = await node(testConfig(d1, undefined, yaml('enforcer', 'mx1')));
  const mx2 = await node(testConfig(d2, undefined, yaml('enforcer', 'mx2')));
  try {
    assert.deepEqual(col.made, ['dry-run']);
    for (let i = 1; i <= 5; i++) col.source.push([sasl('192.0.2.50', i)]);
    await waitFor(async () => (await mx1.fw.list()).has('192.0.2.50') && (await mx2.fw.list()).has('192.0.2.50'), 10_000);
    const until = (await col.daemon.bans())[0]!.until;
    assert.equal((await mx1.fw.list()).size, 1);
    assert.ok(Math.abs(((await mx1.fw.list()).get('192.0.2.50') ?? 0) - until) < 2000);
    assert.equal((await mx1.daemon.bans()).length, 0, 'enforcers hold no decider bans of their own');
    assert.ok(mx1.log.lines().some((l) => l['event'] === 'cluster-ban' && l['target'] === '192.0.2.50'));
    assert.match(await mx1.metrics.registry.metrics(), /mailjail_cluster_stat\{link="enforcer",stat="applied"\} 1/);
    assert.match(await col.metrics.registry.metrics(), /mailjail_cluster_stat\{link="publisher",stat="published"\} 1/);
    // Operator unban on the collector lifts it everywhere.
    await col.daemon.unban({ target: '192.0.2.50' as never });
    await waitFor(async () => !(await mx1.fw.list()).has('192.0.2.50') && !(await mx2.fw.list()).has('192.0.2.50'), 10_000);
    // Restart an enforcer with a wiped "kernel": the cluster bans it holds come back at start.
    await col.daemon.ban({ target: '198.51.100.77' as never });
    await waitFor(async () => (await mx2.fw.list()).has('198.51.100.77'), 10_000);
    await mx2.daemon.stop();
    const fresh = createBackend({ backend: 'dry-run' });
    const mx2b = await node(testConfig(d2, undefined, yaml('enforcer', 'mx2')), fresh);
    assert.ok((await fresh.list()).has('198.51.100.77'), 'reconciled at start from the position file, before Redis is read');
    await mx2b.daemon.stop();
  } finally {
    await col.daemon.stop();
    await mx1.daemon.stop();
    await mx2.daemon.stop();
  }
});

test('config: redis section and role are checked; absent section means no cluster', { skip }, () => {
  const dir = tempDir();
  const plain = testConfig(dir);
  assert.equal(plain.redis, undefined);
  assert.equal(plain.role, undefined);
  const c = testConfig(dir, undefined, clusterYaml('both', 'mx9'));
  assert.equal(c.redis?.url, srv.url);
  assert.equal(c.redis?.maxQueue, 100_000);
  const bad = (extra: string, re: RegExp) => assert.throws(() => testConfig(dir, undefined, extra), re);
  bad('role: enforcer', /MJ_CONFIG_MISSING.*role: role "enforcer" needs a redis section/);
  bad('role: boss', /role/);
  bad('redis: { url: "http://x" }', /redis\.url: .*must be a redis:\/\/ or rediss:\/\/ URL/);
  bad('redis: { node: a }', /redis\.url/);
  bad('redis: { url: "redis://h", maxQueue: 0 }', /redis\.maxQueue/);
  bad('redis: { url: "redis://h", pasword: x }', /did you mean "password"/);
  const tls = configFromTexts([{ file: '/etc/mailjail/mailjail.yaml', text: `policies: { auth: {} }\nsources: { j: { type: journald } }\nredis: { url: "rediss://r:6380", username: mj, password: pw, tls: { ca: ./ca.pem } }` }]);
  assert.equal(tls.redis?.tls?.ca, '/etc/mailjail/ca.pem');
  assert.equal(tls.redis?.username, 'mj');
  const pf = configFromTexts([{ file: '/etc/mailjail/mailjail.yaml', text: 'policies: { auth: {} }\nsources: { j: { type: journald } }\nredis: { url: "redis://r", passwordFile: ./redis.pass }' }]);
  assert.equal(pf.redis?.passwordFile, '/etc/mailjail/redis.pass');
  // An enforcer-only mail host needs no sources.
  const enf = configFromTexts([{ file: '/etc/mailjail/mailjail.yaml', text: 'role: enforcer\npolicies: { auth: {} }\nredis: { url: "redis://10.0.0.5:6379" }' }]);
  assert.equal(enf.role, 'enforcer');
  assert.equal(enf.sources.length, 0);
  assert.throws(() => configFromTexts([{ file: '/x.yaml', text: 'policies: { auth: {} }' }]), /no enabled source/);
});

test('shared counting: an attack split across two collectors bans at the attempt one collector would, once', { skip }, async () => {
  const prefix = `sc${Date.now()}`;
  const yaml = (n: string, shared: boolean) => `role: collector\nredis: { url: "${srv.url}", node: ${n}, prefix: ${prefix}${shared ? ', sharedCounting: true' : ''} }`;
  // Without shared counting: 3 + 2 attempts on two collectors ban nobody.
  const run = async (shared: boolean) => {
    const da = tempDir(), db = tempDir(), de = tempDir();
    const a = await node(testConfig(da, undefined, yaml(`a${shared}`, shared)));
    const b = await node(testConfig(db, undefined, yaml(`b${shared}`, shared)));
    const mx = await node(testConfig(de, undefined, `role: enforcer\nredis: { url: "${srv.url}", node: mx${shared}, prefix: ${prefix} }`));
    const stat = async (x: typeof a, s: string) => Number(new RegExp(`mailjail_cluster_stat\\{link="counter",stat="${s}"\\} (\\d+)`).exec(await x.metrics.registry.metrics())?.[1] ?? 0);
    const ip = shared ? '192.0.2.201' : '192.0.2.200';
    try {
      if (shared) await waitFor(async () => (await stat(a, 'connected')) === 1 && (await stat(b, 'connected')) === 1, 5000);
      for (let i = 1; i <= 5; i++) {
        const c = i % 2 === 1 ? a : b;
        const before = (await c.daemon.status()).counters['counted'];
        c.source.push([sasl(ip, i)]);
        await waitFor(async () => (await c.daemon.status()).counters['counted'] === before! + 1);
        if (shared) await waitFor(async () => (await stat(a, 'shared')) + (await stat(b, 'shared')) === i, 5000);
        if (i === 4) {
          // The shared count's threshold callback bans synchronously before `shared` is read
          // above, so a premature ban would already show here.
          assert.equal((await a.daemon.bans()).length + (await b.daemon.bans()).length, 0, 'no ban before the 5th attempt');
        }
      }
      if (!shared) {
        // The mail host only applies what a collector banned and published: no collector ban,
        // nothing to apply.
        assert.equal((await a.daemon.bans()).length + (await b.daemon.bans()).length, 0, 'no collector banned');
        assert.equal((await mx.fw.list()).size, 0);
        return;
      }
      await waitFor(async () => (await mx.fw.list()).has(ip), 10_000);
      const bans = [...(await a.daemon.bans()), ...(await b.daemon.bans())];
      assert.equal(bans.length, 1, 'exactly one collector banned');
      assert.equal(bans[0]!.policy, 'auth');
      assert.equal((await stat(a, 'thresholds')) + (await stat(b, 'thresholds')), 1);
    } finally {
      await a.daemon.stop();
      await b.daemon.stop();
      await mx.daemon.stop();
    }
  };
  await run(false);
  await run(true);
});
