// Ban propagation through a REAL redis-server: collector → two enforcers, restarts, outages,
// hostile stream content, snapshot for new and trimmed-past enforcers, ACL auth.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { ClusterPublisher } from '../../src/cluster/publisher.js';
import { bansKey, streamKey } from '../../src/cluster/config.js';
import { haveRedis, RedisServer } from './redis-server.js';
import { ban, capturingLog, Host, quiet, redisCfg, unban, until } from './helpers.js';
import { ClusterEnforcer } from '../../src/cluster/enforcer.js';
import { SharedCounter } from '../../src/state/redis-counter.js';
import { resolveFirewallConfig } from '../../src/firewall/config.js';
import { IpsetBackend } from '../../src/firewall/ipset.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addNetnsAll, delNetns, kernelSkipReason, nsExec } from '../firewall/netns.js';

const skip = haveRedis() ? undefined : 'redis-server is not installed (apt-get install redis-server)';
if (skip) console.warn(`SKIPPED cluster propagation tests: ${skip}`);

let srv: RedisServer;
before(async () => {
  if (!skip) srv = await RedisServer.start();
});
after(async () => {
  await srv?.destroy();
});

const H = 3600_000;
let n = 0;
/** A fresh key prefix per test, so tests do not see each other's stream. */
const cfgFor = (over = {}) => redisCfg(srv.url, { prefix: `t${++n}`, ...over });

test('collector → two enforcers: bans and unbans reach both', { skip }, async () => {
  const cfg = cfgFor();
  const a = new Host(), b = new Host();
  const ea = a.start(cfg);
  const eb = b.start(cfg);
  const pub = new ClusterPublisher(cfg, quiet);
  await until(() => ea.stats().snapshots + eb.stats().snapshots === 2 && pub.stats().connected, 10_000, 'enforcers ready');
  const now = Date.now();
  pub.publish([ban('192.0.2.7', now + H), ban('2001:db8:1::/64', now + H)]);
  pub.publish([ban('198.51.100.3', now + H), unban('192.0.2.7')]);
  for (const h of [a, b]) {
    await until(async () => (await h.banned()).length === 2 && h.count('192.0.2.7', 'unban') === 1, 10_000, 'both enforcers');
    assert.deepEqual(await h.banned(), ['198.51.100.3', '2001:db8:1::/64']);
    assert.equal(h.count('198.51.100.3'), 1);
  }
  assert.equal(pub.stats().published, 4);
  await pub.close();
  await a.stop();
  await b.stop();
});

test('an enforcer stopped during a ban applies it on restart, exactly once; a new one starts with the full set', { skip }, async () => {
  const cfg = cfgFor();
  const a = new Host();
  const pub = new ClusterPublisher(cfg, quiet);
  const now = Date.now();
  a.start(cfg);
  pub.publish([ban('192.0.2.10', now + H)]);
  await until(() => a.count('192.0.2.10') === 1, 10_000, 'first ban');
  await a.stop();
  pub.publish([ban('192.0.2.11', now + H), ban('192.0.2.12', now + 2 * H)]);
  await until(() => pub.stats().published === 3);
  a.start(cfg);
  await until(() => a.count('192.0.2.11') === 1 && a.count('192.0.2.12') === 1, 10_000, 'missed bans');
  // A second restart with nothing new applies nothing again: a ban published after the restart
  // arrives after anything it could wrongly re-read, so once it is applied the count is final.
  await a.stop();
  a.start(cfg);
  pub.publish([ban('192.0.2.13', now + H)]);
  await until(() => a.count('192.0.2.13') === 1, 10_000, 'the ban published after the second restart');
  assert.equal(a.count('192.0.2.10'), 1);
  assert.equal(a.count('192.0.2.11'), 1);
  assert.equal(a.count('192.0.2.12'), 1);
  assert.equal(a.enforcer!.stats().snapshots, 0, 'resumed from its position, no snapshot');
  // A brand-new enforcer: snapshot of the active set, with expiries.
  const c = new Host();
  const e = c.start(cfg);
  await until(async () => (await c.banned()).length === 4, 10_000, 'snapshot');
  assert.equal(e.stats().snapshots, 1);
  assert.equal(e.activeBans().get('192.0.2.12'), now + 2 * H);
  await pub.close();
  await a.stop();
  await c.stop();
});

test('redis restarted mid-attack loses no ban: the collector queues and replays', { skip }, async () => {
  const cfg = cfgFor();
  const a = new Host();
  const pub = new ClusterPublisher(cfg, quiet);
  a.start(cfg);
  const now = Date.now();
  pub.publish([ban('203.0.113.1', now + H)]);
  await until(() => a.count('203.0.113.1') === 1, 10_000, 'before the outage');
  await srv.down();
  await until(() => !pub.stats().connected, 5000, 'publisher notices');
  for (let i = 2; i <= 40; i++) pub.publish([ban(`203.0.113.${i}`, now + H)]);
  assert.equal(pub.stats().queued, 39);
  assert.equal(pub.stats().dropped, 0);
  await srv.up();
  await until(async () => (await a.banned()).length === 40, 15_000, 'all 40 bans after the restart');
  for (let i = 1; i <= 40; i++) assert.equal(a.count(`203.0.113.${i}`), 1, `203.0.113.${i} once`);
  assert.equal(pub.stats().queued, 0);
  assert.ok(pub.stats().reconnects >= 1);
  assert.ok(a.enforcer!.stats().reconnects >= 1);
  await pub.close();
  await a.stop();
});

test('queue full while redis is away: oldest dropped and counted', { skip }, async () => {
  const cfg = redisCfg('redis://127.0.0.1:1', { maxQueue: 3, prefix: `t${++n}` });
  const pub = new ClusterPublisher(cfg, quiet);
  for (let i = 1; i <= 5; i++) pub.publish([ban(`192.0.2.${i}`, Date.now() + H)]);
  assert.deepEqual({ queued: pub.stats().queued, dropped: pub.stats().dropped, published: pub.stats().published }, { queued: 3, dropped: 2, published: 0 });
  assert.equal(await pub.close(10), 3);
});

test('hostile stream and snapshot content never reaches the firewall', { skip }, async () => {
  const cfg = cfgFor();
  const raw = new Redis(srv.url);
  raw.on('error', () => {});
  const now = Date.now();
  const sk = streamKey(cfg);
  const f = (t: string, extra: string[] = []) => ['v', '1', 'a', 'ban', 't', t, 'n', 'evil', 'at', String(now), 'u', String(now + H), 'l', '0', 'p', 'auth', 'r', 'x', ...extra];
  await raw.zadd(bansKey(cfg), String(now + H), '0.0.0.0/0', String(now + H), '192.0.2.66; rm -rf /', String(now + H), '192.0.2.77');
  await raw.xadd(sk, '*', ...f('0.0.0.0/0'));
  const h = new Host();
  const e = h.start(cfg, { refuse: (t) => (t === '192.0.2.99' ? 'allowlisted' : undefined) });
  await until(() => e.stats().snapshots === 1, 10_000, 'snapshot');
  assert.deepEqual(await h.banned(), ['192.0.2.77']);
  for (const bad of ['::/0', '10.0.0.1/8', '192.0.2.5 -exist', '192.0.2.99' /* allowlisted here */]) await raw.xadd(sk, '*', ...f(bad));
  await raw.xadd(sk, '*', 'v', '1', 'a', 'ban', 't', '192.0.2.8'); // missing fields
  await raw.xadd(sk, '*', ...f('192.0.2.9'));
  await until(() => h.count('192.0.2.9') === 1, 10_000, 'the valid entry after the hostile ones');
  assert.deepEqual(await h.banned(), ['192.0.2.77', '192.0.2.9']);
  assert.equal(h.handed.length, 2);
  assert.ok(e.stats().refused >= 7, String(e.stats().refused));
  await h.stop();
  raw.disconnect();
});

test('an enforcer whose position was trimmed away resyncs from the snapshot', { skip }, async () => {
  const cfg = cfgFor();
  const raw = new Redis(srv.url);
  raw.on('error', () => {});
  const pub = new ClusterPublisher(cfg, quiet);
  const h = new Host();
  const now = Date.now();
  h.start(cfg);
  pub.publish([ban('192.0.2.20', now + H), ban('192.0.2.21', now + H)]);
  await until(() => h.count('192.0.2.21') === 1, 10_000, 'first bans');
  await h.stop();
  pub.publish([ban('192.0.2.22', now + H), unban('192.0.2.20')]);
  await until(() => pub.stats().published === 4);
  await raw.xtrim(streamKey(cfg), 'MAXLEN', 0); // everything it missed is gone from the stream
  const e = h.start(cfg);
  await until(() => e.stats().snapshots === 1, 10_000, 'resync');
  // The snapshot adds what is missing; it never unbans (a Redis that lost data must not unban a
  // cluster), so the unban of .20 that was trimmed away is not seen: .20 runs out at its expiry.
  assert.deepEqual(await h.banned(), ['192.0.2.20', '192.0.2.21', '192.0.2.22']);
  assert.equal(h.count('192.0.2.21'), 1, 'an entry it already had is not re-applied');
  assert.equal(h.count('192.0.2.22'), 1);
  await pub.close();
  await h.stop();
  raw.disconnect();
});

test('ACL user and password from config; a wrong password never connects', { skip }, async () => {
  const acl = await RedisServer.start(['--user', 'default', 'off', '--user', 'mj', 'on', '>s3cret', '~mailjail:*', '+@read', '+@write', '+@stream', '+@sortedset', '+@transaction', '+@scripting', '+time', '+info', '+ping', '+client|setname']);
  try {
    const ok = redisCfg(acl.url, { username: 'mj', password: 's3cret', prefix: 'mailjail' });
    const h = new Host();
    h.start(ok);
    const pub = new ClusterPublisher(ok, quiet);
    pub.publish([ban('192.0.2.44', Date.now() + H)]);
    await until(() => h.count('192.0.2.44') === 1, 10_000, 'ban through ACL user');
    let crossed = 0;
    const counter = new SharedCounter(ok, quiet, new Map([['auth', { findtimeMs: 60_000, maxretry: 1 }]]), () => crossed++);
    await until(() => counter.stats().connected);
    counter.note({ policy: 'auth', key: '192.0.2.46' as never, n: 1, ruleId: 'r' });
    await until(() => crossed === 1, 5000, 'shared count through the ACL user');
    counter.close();
    // The password from a file (first line) instead of the config.
    const pwFile = join(mkdtempSync(join(tmpdir(), 'mj-pw-')), 'redis.pass');
    writeFileSync(pwFile, 's3cret\n', { mode: 0o600 });
    const { password: _pw, ...noPw } = ok;
    const fromFile = new ClusterPublisher({ ...noPw, passwordFile: pwFile }, quiet);
    fromFile.publish([ban('192.0.2.47', Date.now() + H)]);
    await until(() => h.count('192.0.2.47') === 1, 10_000, 'ban with the password from a file');
    await fromFile.close();
    const cap = capturingLog();
    const wrong = new ClusterPublisher({ ...ok, password: 'nope' }, cap.log);
    wrong.publish([ban('192.0.2.45', Date.now() + H)]);
    // Wait for the refusal itself (the error it logs), not for a guessed delay.
    await until(() => cap.lines().some((l) => l.msg === 'redis error'), 15_000, 'the refused password to be logged');
    assert.equal(wrong.stats().connected, false);
    assert.equal(wrong.stats().published, 0);
    assert.equal(wrong.stats().queued, 1);
    await wrong.close(10);
    await pub.close();
    await h.stop();
  } finally {
    await acl.destroy();
  }
});

test('ipset in two network namespaces: both mail hosts get the entry in their kernel set', async (t) => {
  const why = skip ?? kernelSkipReason(['ipset', 'iptables', 'ip6tables']);
  if (why) { console.warn(`SKIPPED cluster ipset test: ${why}`); t.skip(why); return; }
  const cfg = cfgFor();
  const nss = addNetnsAll(['cl', 'cl']);
  const es: ClusterEnforcer[] = [];
  try {
    for (const ns of nss) {
      const fw = new IpsetBackend(resolveFirewallConfig({ backend: 'ipset', prefix: 'mjcl', netns: ns }));
      await fw.ensure();
      const e = new ClusterEnforcer(cfg, quiet, {
        stateDir: mkdtempSync(join(tmpdir(), 'mj-enf-')), blockMs: 200,
        apply: async (b) => { const r = await fw.apply(b); if (r.failed.length) throw r.failed[0]!.error; },
      });
      e.start();
      es.push(e);
    }
    const pub = new ClusterPublisher(cfg, quiet);
    pub.publish([ban('203.0.113.99', Date.now() + H), ban('2001:db8:5::/64', Date.now() + H)]);
    for (const ns of nss) {
      await until(() => /203\.0\.113\.99 timeout/.test(nsExec(ns, 'ipset', ['list', 'mjcl-v4'])), 10_000, `ipset entry in ${ns}`);
      await until(() => /2001:db8:5::\/64 timeout/.test(nsExec(ns, 'ipset', ['list', 'mjcl-v6'])), 10_000, `ipset v6 entry in ${ns}`);
    }
    await pub.close();
  } finally {
    for (const e of es) await e.stop();
    for (const ns of nss) delNetns(ns);
  }
});

test('queue overflowed during an outage: once redis is back the collector re-publishes its active bans', { skip }, async () => {
  const own = await RedisServer.start();
  try {
    const cfg = redisCfg(own.url, { maxQueue: 3, prefix: `t${++n}` });
    const now = Date.now();
    const active = [1, 2, 3, 4, 5].map((i) => ban(`192.0.2.${100 + i}`, now + H));
    const pub = new ClusterPublisher(cfg, quiet, { activeBans: () => active });
    const h = new Host();
    h.start(cfg);
    await until(() => pub.stats().connected && h.enforcer!.stats().snapshots === 1, 10_000, 'ready');
    await own.down();
    await until(() => !pub.stats().connected, 5000, 'down');
    for (const d of active) pub.publish([d]);
    assert.equal(pub.stats().dropped, 2);
    await own.up();
    await until(async () => (await h.banned()).length === 5, 15_000, 'all five bans after the re-publish');
    assert.equal(pub.stats().republished, 5);
    await pub.close();
    await h.stop();
  } finally {
    await own.destroy();
  }
});
