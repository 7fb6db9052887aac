// Decider.reload: which counters carry over a policy change, and the table migration behind it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Decider } from '../../src/state/decider.js';
import type { Policy } from '../../src/state/policy.js';
import { SlotTable } from '../../src/state/window.js';
import { DEFAULT_POLICY, T0, match, s } from './helpers.js';

const P: Policy = { ...DEFAULT_POLICY, classes: ['auth', 'probe'] };

/** 3 attempts of `addr`, then reload to `next`: does a 4th attempt under maxretry 4 ban? */
function fourthBans(next: Policy, opts: { maxTracked?: number } = {}): boolean {
  const d = new Decider({ policies: [P] });
  for (let i = 0; i < 3; i++) d.observe(match('192.0.2.1', T0 + i), T0 + i);
  d.reload({ policies: [{ ...next, maxretry: 4 }], ...opts });
  return d.observe(match('192.0.2.1', T0 + 10), T0 + 10).decisions.length === 1;
}

test('reload: counters carry over a change of maxretry, findtime, bantime, maxTracked or a widened class list', () => {
  assert.ok(fourthBans(P));
  assert.ok(fourthBans({ ...P, findtime: s(1200), bantime: s(60) }));
  assert.ok(fourthBans({ ...P, classes: ['auth', 'probe', 'reject'] }));
  assert.ok(fourthBans(P, { maxTracked: 10 }));
});

test('reload: counters restart where the attempts they hold would not count the same way', () => {
  assert.ok(!fourthBans({ ...P, ipv4Prefix: 24 }), 'another key');
  assert.ok(!fourthBans({ ...P, classes: ['auth'] }), 'a class dropped');
  assert.ok(!fourthBans({ ...P, services: ['imap'] }), 'a service filter added');
  assert.ok(!fourthBans({ ...P, distinctUsers: 1 }), 'user names newly needed');
  const d = new Decider({ policies: [P] });
  assert.deepEqual(d.reload({ policies: [{ ...P, ipv4Prefix: 24 }] }), ['auth']);
  assert.deepEqual(d.reload({ policies: [{ ...P, ipv4Prefix: 24, maxretry: 3 }] }), []);
});

test('reload: a smaller maxretry keeps the newest attempts, a smaller maxTracked the most recently used keys', () => {
  const d = new Decider({ policies: [{ ...P, maxretry: 10 }], maxTracked: 100 });
  for (let k = 0; k < 5; k++) d.observe(match(`198.51.100.${k}`, T0 + k), T0 + k);
  for (let i = 0; i < 6; i++) d.observe(match('192.0.2.1', T0 + 10 + i), T0 + 10 + i);
  d.reload({ policies: [{ ...P, maxretry: 3 }], maxTracked: 3 });
  assert.equal(d.stats().tracked, 3);
  assert.equal(d.stats().evictions, 3, 'the three least recently used 198.51.100.x are left behind');
  // .1 kept its newest 3 of 6 attempts: one more is over the new maxretry.
  assert.equal(d.observe(match('192.0.2.1', T0 + 20), T0 + 20).decisions.length, 1);
  // The most recently used others kept their attempt: two more make 3; the evicted start at 0.
  assert.equal(d.observe(match('198.51.100.4', T0 + 30), T0 + 30).decisions.length, 0);
  assert.equal(d.observe(match('198.51.100.4', T0 + 31), T0 + 31).decisions.length, 1);
  assert.equal(d.observe(match('198.51.100.0', T0 + 32), T0 + 32).decisions.length, 0);
  assert.equal(d.observe(match('198.51.100.0', T0 + 33), T0 + 33).decisions.length, 0);
});

test('SlotTable.copyInto: keys, newest attempts in order, definite times and recency move to a table of another size', () => {
  const a = new SlotTable(5, 100, true);
  const key = (n: number): void => { a.key.set([0, 0, 0xffff, n]); };
  key(1);
  let s1 = a.add();
  for (let i = 1; i <= 7; i++) a.push(s1, i * 10, 1, i, i !== 7);
  key(2);
  const s2 = a.add();
  a.push(s2, 5, 1, 9, true);
  key(1);
  s1 = a.find(); // 1 is now the most recently used
  const moved = new Map<number, number>();
  const b = new SlotTable(3, 1, false);
  a.copyInto(b, (f, t) => moved.set(f, t));
  assert.equal(b.size, 1);
  assert.equal(b.evictions, 1);
  assert.deepEqual([...moved.keys()], [s1]);
  b.key.set([0, 0, 0xffff, 1]);
  const t = b.find();
  assert.equal(t, moved.get(s1));
  assert.equal(b.countSince(t, 0), 3);
  assert.equal(b.countSince(t, 55), 2, 'the newest three: 50, 60, 70');
  assert.equal(b.latest(t), 70);
  assert.equal(b.lastDefinite(t), 60);
  assert.equal(b.secondLastDefinite(t), 50);
  b.push(t, 80, 1, 0, true);
  assert.equal(b.countSince(t, 55), 3, 'the ring goes on from the oldest entry');
  assert.throws(() => a.copyInto(b), /empty table/);
});
