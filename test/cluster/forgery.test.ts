// Whoever can write to Redis but does not hold the cluster key, against a REAL redis-server and a
// running enforcer: unsigned, badly signed and tampered entries and ban tokens are refused (counted,
// logged with the stream id); networks wider than redis.widestNetwork are refused even when signed;
// a resync lifts cluster bans the active set no longer holds, never this host's own bans.
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { after, before, test } from 'node:test';
import { Redis } from 'ioredis';
import { pino, type Logger } from 'pino';
import { encode } from '../../src/cluster/codec.js';
import { banTokensKey, bansKey, streamKey } from '../../src/cluster/config.js';
import { ClusterPublisher } from '../../src/cluster/publisher.js';
import { banToken, loadClusterKeys, signEntry } from '../../src/cluster/signing.js';
import { ban, Host, keyFile, quiet, redisCfg, TEST_KEY_FILE, unban, until } from './helpers.js';
import { haveRedis, RedisServer } from './redis-server.js';

const skip = haveRedis() ? undefined : 'redis-server is not installed (apt-get install redis-server)';
if (skip) console.warn(`SKIPPED cluster forgery tests: ${skip}`);

let srv: RedisServer;
let raw: Redis;
before(async () => {
  if (skip) return;
  srv = await RedisServer.start();
  raw = new Redis(srv.url);
  raw.on('error', () => {});
});
after(async () => {
  raw?.disconnect();
  await srv?.destroy();
});

const H = 3600_000;
let n = 0;
const cfgFor = (over = {}) => redisCfg(srv.url, { prefix: `f${++n}`, ...over });
const keys = () => loadClusterKeys(TEST_KEY_FILE);
const wrongKeys = () => loadClusterKeys(keyFile('not-the-cluster-key-0123456789abcdefghij'));

/** A warn-level logger whose JSON lines the test can read. */
function captured(): { log: Logger; lines: () => Record<string, unknown>[] } {
  const out: string[] = [];
  const w = new Writable({ write(c: Buffer, _e, cb) { out.push(...c.toString().split('\n').filter(Boolean)); cb(); } });
  return { log: pino({ level: 'warn' }, w) as unknown as Logger, lines: () => out.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

test('unsigned, badly signed and tampered stream entries are refused; signed ones are applied', { skip }, async () => {
  const cfg = cfgFor();
  const sk = streamKey(cfg);
  const now = Date.now();
  const c = captured();
  const h = new Host();
  const e2 = h.start(cfg, {}, c.log);
  await until(() => e2.stats().snapshots === 1, 10_000, 'enforcer ready');
  const entry = (d: Parameters<typeof encode>[0]) => encode(d, 'mallory', now);
  // A ban on the cluster's own mail relay, without any signature (the attacker has no key).
  const unsignedId = await raw.xadd(sk, '*', ...entry(ban('192.0.2.25', now + H)));
  await raw.xadd(sk, '*', ...signEntry(wrongKeys(), cfg.prefix, entry(ban('192.0.2.26', now + H))));
  // A genuine entry (signed with the key) whose target was changed afterwards.
  const genuine = signEntry(keys(), cfg.prefix, entry(ban('192.0.2.27', now + H)));
  await raw.xadd(sk, '*', ...genuine.map((v) => (v === '192.0.2.27' ? '192.0.2.28' : v)));
  // A signature in the wrong shape, and a genuine entry moved over from another cluster's prefix.
  await raw.xadd(sk, '*', ...entry(ban('192.0.2.29', now + H)), 's', 'A'.repeat(43));
  await raw.xadd(sk, '*', ...signEntry(keys(), 'another-cluster', entry(ban('192.0.2.30', now + H))));
  await raw.xadd(sk, '*', ...signEntry(keys(), cfg.prefix, entry(ban('192.0.2.31', now + H))));
  await until(() => h.count('192.0.2.31') === 1, 10_000, 'the signed entry after the forged ones');
  assert.deepEqual(await h.banned(), ['192.0.2.31']);
  assert.equal(e2.stats().badSignature, 5);
  assert.equal(e2.stats().refused, 5);
  const warn = c.lines().find((l) => /refused a cluster decision/.test(String(l['msg'])));
  assert.ok(warn, 'a refusal is logged');
  assert.equal(warn['streamId'], unsignedId, 'with the stream id of the entry');
  assert.equal(warn['why'], 'unsigned entry');
  assert.equal(c.lines().filter((l) => /refused a cluster decision/.test(String(l['msg']))).length, 1, 'rate-limited: one line for the burst');

  // An unsigned unban does not lift a genuine ban.
  await raw.xadd(sk, '*', ...entry(unban('192.0.2.31')));
  await raw.xadd(sk, '*', ...signEntry(keys(), cfg.prefix, entry(ban('192.0.2.32', now + H))));
  await until(() => h.count('192.0.2.32') === 1, 10_000, 'marker after the forged unban');
  assert.deepEqual(await h.banned(), ['192.0.2.31', '192.0.2.32']);
  assert.equal(h.count('192.0.2.31', 'unban'), 0);
  assert.equal(e2.stats().badSignature, 6);
  await h.stop();
});

test('networks wider than redis.widestNetwork are refused even when signed (default /16 v4, /32 v6)', { skip }, async () => {
  const cfg = cfgFor();
  const sk = streamKey(cfg);
  const now = Date.now();
  const h = new Host();
  const e = h.start(cfg);
  await until(() => e.stats().snapshots === 1, 10_000, 'enforcer ready');
  const signed = (t: string) => signEntry(keys(), cfg.prefix, encode(ban(t, now + H), 'c1', now));
  for (const t of ['10.0.0.0/8', '172.16.0.0/12', '2001::/16', '2001:db8::/31']) await raw.xadd(sk, '*', ...signed(t));
  for (const t of ['10.20.0.0/16', '2001:db8::/32']) await raw.xadd(sk, '*', ...signed(t));
  await until(() => h.count('2001:db8::/32') === 1, 10_000, 'the /32');
  assert.deepEqual(await h.banned(), ['10.20.0.0/16', '2001:db8::/32']);
  assert.equal(e.stats().tooWide, 4);
  assert.equal(e.stats().refused, 4);
  await h.stop();
  // A tighter limit from config: a /16 is refused as well, through the snapshot too.
  const tight = { ...cfg, widestNetwork: { v4: 24, v6: 48 } };
  await raw.hset(banTokensKey(cfg), '10.30.0.0/16', banToken(keys(), cfg.prefix, '10.30.0.0/16', now + H), '192.0.2.0/24', banToken(keys(), cfg.prefix, '192.0.2.0/24', now + H));
  await raw.xadd(sk, '*', ...signed('10.40.0.0/16'));
  const h2 = new Host();
  const e2 = h2.start(tight);
  await until(() => e2.stats().snapshots === 1, 10_000, 'snapshot');
  await raw.xadd(sk, '*', ...signed('10.50.0.0/16'));
  await raw.xadd(sk, '*', ...signed('198.51.100.0/24'));
  await until(() => h2.count('198.51.100.0/24') === 1, 10_000, 'the /24');
  assert.deepEqual(await h2.banned(), ['192.0.2.0/24', '198.51.100.0/24']);
  assert.equal(e2.stats().tooWide, 2, 'the /16 token in the snapshot and the /16 entry');
  await h2.stop();
});

test('snapshot: forged ban tokens are refused, genuine ones applied', { skip }, async () => {
  const cfg = cfgFor();
  const now = Date.now();
  const hk = banTokensKey(cfg);
  await raw.hset(hk,
    '192.0.2.40', String(now + H), // unsigned
    '192.0.2.41', banToken(wrongKeys(), cfg.prefix, '192.0.2.41', now + H),
    '192.0.2.42', banToken(keys(), cfg.prefix, '192.0.2.43', now + H), // a genuine token moved to another target
    '192.0.2.44', banToken(keys(), cfg.prefix, '192.0.2.44', now + H).replace(/^\d+/, String(now + 9 * H)), // stretched
    '192.0.2.45', banToken(keys(), cfg.prefix, '192.0.2.45', now + H));
  // A bare zset member (the old, unsigned layout) is ignored too.
  await raw.zadd(bansKey(cfg), String(now + H), '192.0.2.46');
  const h = new Host();
  const e = h.start(cfg);
  await until(() => e.stats().snapshots === 1, 10_000, 'snapshot');
  assert.deepEqual(await h.banned(), ['192.0.2.45']);
  assert.equal(e.activeBans().get('192.0.2.45'), now + H);
  assert.equal(e.stats().badSignature, 4);
  await h.stop();
});

test('the publisher writes tokens an enforcer accepts; unbans and expiry remove them', { skip }, async () => {
  const cfg = cfgFor();
  const now = Date.now();
  const pub = new ClusterPublisher(cfg, quiet);
  pub.publish([ban('192.0.2.50', now + H), ban('192.0.2.51', now + H), ban('192.0.2.51', now + 2 * H), ban('192.0.2.51', now + H / 2), ban('192.0.2.52', now + H)]);
  pub.publish([unban('192.0.2.52')]);
  await until(() => pub.stats().published === 6, 10_000, 'published');
  const tokens = await raw.hgetall(banTokensKey(cfg));
  assert.deepEqual(Object.keys(tokens).sort(), ['192.0.2.50', '192.0.2.51']);
  assert.equal(tokens['192.0.2.51']!.split('.')[0], String(now + 2 * H), 'the token follows the latest expiry (ZADD GT)');
  const h = new Host();
  const e = h.start(cfg);
  await until(() => e.stats().snapshots === 1, 10_000, 'snapshot');
  assert.deepEqual(await h.banned(), ['192.0.2.50', '192.0.2.51']);
  assert.equal(e.activeBans().get('192.0.2.51'), now + 2 * H);
  assert.equal(e.stats().refused, 0);
  // Expired bans leave the set and the hash with the next publish.
  pub.publish([ban('192.0.2.53', now + 300)]);
  await until(() => pub.stats().published === 7);
  await until(() => Date.now() > now + 400, 2000);
  pub.publish([ban('192.0.2.54', now + H)]);
  await until(() => pub.stats().published === 8);
  assert.equal(await raw.hexists(banTokensKey(cfg), '192.0.2.53'), 0);
  assert.equal(await raw.zscore(bansKey(cfg), '192.0.2.53'), null);
  await pub.close();
  await h.stop();
});

test('resync lifts cluster bans the active set no longer holds, never a local ban; an empty set lifts nothing', { skip }, async () => {
  const cfg = cfgFor();
  const now = Date.now();
  const pub = new ClusterPublisher(cfg, quiet);
  const h = new Host();
  const local = new Set(['192.0.2.62']); // this host's own (ledger) ban on .62
  const opts = { isLocalBan: (t: string) => local.has(t) };
  h.start(cfg, opts);
  pub.publish([ban('192.0.2.60', now + H), ban('192.0.2.61', now + H), ban('192.0.2.62', now + H)]);
  await until(async () => (await h.banned()).length === 3, 10_000, 'three cluster bans');
  await h.stop();
  // While this enforcer is away its missed entries are trimmed and .61/.62 are gone from the set
  // (lifted elsewhere, or a forged/replayed unban this host applied: the set is the truth).
  await raw.hdel(banTokensKey(cfg), '192.0.2.61', '192.0.2.62');
  pub.publish([ban('192.0.2.63', now + H)]);
  await until(() => pub.stats().published === 4);
  await raw.xtrim(streamKey(cfg), 'MAXLEN', 0);
  const e = h.start(cfg, opts);
  await until(() => e.stats().snapshots === 1, 10_000, 'resync');
  assert.deepEqual(await h.banned(), ['192.0.2.60', '192.0.2.62', '192.0.2.63'], '.61 lifted; .62 is a local ban and stays');
  assert.equal(h.count('192.0.2.61', 'unban'), 1);
  assert.equal(h.count('192.0.2.62', 'unban'), 0);
  assert.equal(e.stats().resyncUnbans, 1);
  assert.deepEqual([...e.activeBans().keys()].sort(), ['192.0.2.60', '192.0.2.63'], 'no longer held as a cluster ban');
  await h.stop();
  // Redis lost everything (or someone deleted the keys): a resync keeps what is held.
  await raw.del(banTokensKey(cfg), bansKey(cfg), streamKey(cfg));
  await raw.xadd(streamKey(cfg), '99999999999999-0', ...signEntry(keys(), cfg.prefix, encode(ban('192.0.2.64', now + H), 'c1', now)));
  await raw.xtrim(streamKey(cfg), 'MAXLEN', 0);
  const e2 = h.start(cfg, opts);
  await until(() => e2.stats().snapshots === 1, 10_000, 'resync on an empty set');
  assert.deepEqual(await h.banned(), ['192.0.2.60', '192.0.2.62', '192.0.2.63']);
  assert.equal(e2.stats().resyncUnbans, 0);
  await pub.close();
  await h.stop();
});
