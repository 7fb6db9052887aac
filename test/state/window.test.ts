import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { SlotTable } from '../../src/state/window.js';
import { ipBytes, loadMaskedKey, parseIp, v6Groups } from '../../src/parse/ip.js';
import { ip } from './helpers.js';

test('slot table: hash index + LRU list behave like an LRU map (random operations vs a model)', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 3000 }),
      fc.array(fc.tuple(fc.integer({ min: 0, max: 6000 }), fc.integer({ min: 0, max: 3 })), { minLength: 4000, maxLength: 12_000 }),
      (max, ops) => {
        const t = new SlotTable(3, max, false);
        const model = new Map<string, number>(); // key → slot, in recency order (oldest first)
        let evictions = 0;
        for (const [k, hi] of ops) {
          // Keys spread over all four words so every word takes part in hashing and comparison.
          t.key.set([hi * 0x10001, k & 7, 0xffff, k]);
          const name = `${hi}/${k}`;
          const slot = t.find();
          const want = model.get(name);
          assert.equal(slot, want ?? -1, `find ${name}`);
          if (want !== undefined) {
            model.delete(name);
            model.set(name, want);
            continue;
          }
          if (model.size >= max) {
            const [oldest, freed] = model.entries().next().value!;
            model.delete(oldest);
            evictions++;
            const s = t.add();
            assert.equal(s, freed, 'the least recently used slot is reused');
            model.set(name, s);
          } else model.set(name, t.add());
        }
        assert.equal(t.size, model.size);
        assert.equal(t.evictions, evictions);
        // Every key the model holds is still found at its slot (index intact after shifts).
        for (const [name, slot] of model) {
          const [hi, k] = name.split('/').map(Number) as [number, number];
          t.key.set([hi * 0x10001, k & 7, 0xffff, k]);
          assert.equal(t.peek(), slot);
        }
      },
    ),
    { numRuns: 25 },
  );
});

test('slot table: rings keep the newest attempts; forget empties a slot', () => {
  const t = new SlotTable(3, 10, true);
  t.key.set([1, 2, 3, 4]);
  const s = t.add();
  t.push(s, 10, 1, 7, true);
  t.push(s, 20, 1, 7, false);
  assert.equal(t.countSince(s, 0), 2);
  assert.equal(t.distinctUsersSince(s, 0), 1);
  assert.equal(t.lastDefinite(s), 10);
  t.push(s, 30, 5, 0, true); // a summary of 5: only 3 fit, all at 30
  assert.equal(t.countSince(s, 0), 3);
  assert.equal(t.countSince(s, 31), 0);
  assert.equal(t.latest(s), 30);
  t.forget(s);
  assert.equal(t.countSince(s, 0), 0);
  assert.equal(t.find(), s, 'still tracked');
});

test('counting keys: IPv4 and IPv6 prefixes map to the same key exactly when they share the prefix', () => {
  const k = (a: string, v4: number, v6: number): string => {
    const key = new Uint32Array(4);
    loadMaskedKey(key, ip(a), v4, v6);
    return [...key].join('.');
  };
  assert.equal(k('192.0.2.1', 32, 64), k('192.0.2.1', 32, 64));
  assert.notEqual(k('192.0.2.1', 32, 64), k('192.0.2.2', 32, 64));
  assert.equal(k('192.0.2.1', 24, 64), k('192.0.2.200', 24, 64));
  assert.notEqual(k('192.0.2.1', 24, 64), k('192.0.3.1', 24, 64));
  assert.equal(k('2001:db8:1:2:aaaa::1', 32, 64), k('2001:db8:1:2:ffff::9', 32, 64));
  assert.notEqual(k('2001:db8:1:2::1', 32, 64), k('2001:db8:1:3::1', 32, 64));
  assert.equal(k('2001:db8:1:2::1', 32, 48), k('2001:db8:1:3::1', 32, 48));
  assert.notEqual(k('2001:db8::1', 32, 128), k('2001:db8::2', 32, 128));
  assert.equal(k('2001:db8::1:2', 32, 127), k('2001:db8::1:3', 32, 127));
  // No IPv6 key collides with an IPv4 key (parse/ip unmaps ::ffff:a.b.c.d).
  assert.notEqual(k('::ffff:0:c000:201', 32, 128), k('192.0.2.1', 32, 128));
});

test('property: the allocation-free IPv6 reader agrees with parse/ip for every canonical address', () => {
  fc.assert(
    fc.property(fc.ipV6(), (text) => {
      const a = parseIp(text);
      if (a === undefined || !a.includes(':')) return; // invalid, or IPv4-mapped (unmapped to IPv4)
      const g = new Uint16Array(8);
      v6Groups(a, g);
      const b = ipBytes(a);
      const want = Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!);
      assert.deepEqual([...g], want, a);
    }),
    { numRuns: 2000 },
  );
  for (const t of ['::', '::1', '1::', '2001:db8::', 'fe80::1:2', '1:2:3:4:5:6:7:8', '1:0:0:2::3', '::ffff:0:102:304']) {
    const a = parseIp(t)!;
    const g = new Uint16Array(8);
    v6Groups(a, g);
    const b = ipBytes(a);
    assert.deepEqual([...g], Array.from({ length: 8 }, (_, i) => (b[2 * i]! << 8) | b[2 * i + 1]!), t);
  }
});
