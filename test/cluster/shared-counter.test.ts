// The shared-counting Lua script against a real redis-server: atomic under concurrency, sliding window.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { SharedCounter } from '../../src/state/redis-counter.js';
import type { Ip } from '../../src/types.js';
import { quiet, redisCfg, until } from './helpers.js';
import { haveRedis, RedisServer } from './redis-server.js';

const skip = haveRedis() ? undefined : 'redis-server is not installed';
if (skip) console.warn(`SKIPPED shared counter tests: ${skip}`);
let srv: RedisServer;
before(async () => { if (!skip) srv = await RedisServer.start(); });
after(async () => { await srv?.destroy(); });

test('two collectors racing: every 5th attempt crosses, exactly one collector is told each time', { skip }, async () => {
  const hits: string[] = [];
  const mk = (node: string) => new SharedCounter(redisCfg(srv.url, { node, prefix: 'race' }), quiet,
    new Map([['auth', { findtimeMs: 600_000, maxretry: 5 }]]), (_p, k, _r, c) => hits.push(`${node}:${k}:${c}`));
  const a = mk('a'), b = mk('b');
  await until(() => a.stats().connected && b.stats().connected);
  for (let i = 0; i < 100; i++) {
    a.note({ policy: 'auth', key: '192.0.2.1' as Ip, n: 1, ruleId: 'r' });
    b.note({ policy: 'auth', key: '192.0.2.1' as Ip, n: 1, ruleId: 'r' });
  }
  await until(() => a.stats().shared + b.stats().shared === 200);
  assert.equal(hits.length, 40);
  assert.ok(hits.every((h) => h.endsWith(':5')));
  a.note({ policy: 'other', key: '192.0.2.1' as Ip, n: 1, ruleId: 'r' }); // unknown policy: ignored
  a.close();
  b.close();
});

test('attempts older than findtime fall out of the window', { skip }, async () => {
  let crossed = 0;
  const c = new SharedCounter(redisCfg(srv.url, { node: 'w', prefix: 'win' }), quiet,
    new Map([['auth', { findtimeMs: 300, maxretry: 3 }]]), () => crossed++);
  await until(() => c.stats().connected);
  const k = { policy: 'auth', key: '192.0.2.2' as Ip, n: 1, ruleId: 'r' };
  c.note(k);
  c.note(k);
  await until(() => c.stats().shared === 2);
  await new Promise((r) => setTimeout(r, 400)); // the window under test (300 ms) must pass: a clock wait, not a guess
  c.note(k);
  await until(() => c.stats().shared === 3);
  assert.equal(crossed, 0);
  c.note({ ...k, n: 2 }); // a session summary worth two attempts
  await until(() => c.stats().shared === 5);
  assert.equal(crossed, 1);
  c.close();
});

test('redis unreachable: attempts are counted locally only, and said so', { skip }, async () => {
  const c = new SharedCounter(redisCfg('redis://127.0.0.1:1', { node: 'x' }), quiet, new Map([['auth', { findtimeMs: 1000, maxretry: 3 }]]), () => {});
  c.note({ policy: 'auth', key: '192.0.2.3' as Ip, n: 2, ruleId: 'r' });
  assert.equal(c.stats().unshared, 2);
  c.close();
});
