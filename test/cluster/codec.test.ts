import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { decode, encode } from '../../src/cluster/codec.js';
import { ban, unban } from './helpers.js';

const NOW = 1_800_000_000_000;
const wire = (o: Record<string, string>): string[] => Object.entries(o).flat();
const good = { v: '1', a: 'ban', t: '192.0.2.7', n: 'c1', at: String(NOW), u: String(NOW + 3600_000), l: '0', p: 'auth', r: 'postfix-sasl' };

test('encode → decode round trip (ban, unban, v6 prefix)', () => {
  for (const d of [ban('192.0.2.7', NOW + 1000), ban('2001:db8:1::/64', NOW + 5000), unban('198.51.100.9')]) {
    const r = decode(encode(d, 'mx-1', NOW), NOW);
    assert.ok('ok' in r, JSON.stringify(r));
    assert.equal(r.ok.target, d.target);
    assert.equal(r.ok.action, d.action);
    assert.equal(r.ok.node, 'mx-1');
    if (d.action === 'ban') assert.equal(r.ok.until, d.until);
  }
});

test('hostile or malformed entries are refused', () => {
  const bad: Record<string, string>[] = [
    { ...good, t: '0.0.0.0/0' }, // would block the world
    { ...good, t: '10.0.0.0/7' },
    { ...good, t: '::/0' },
    { ...good, t: '2001:db8::/15' },
    { ...good, t: '10.0.0.1/8' }, // host bits set: not canonical
    { ...good, t: '192.0.2.7; iptables -F' },
    { ...good, t: '192.0.2.7 -exist' },
    { ...good, t: '-A INPUT' },
    { ...good, t: '::ffff:192.0.2.7' }, // non-canonical (mapped)
    { ...good, t: '2001:DB8::1' }, // non-canonical case
    { ...good, t: '192.0.2.07' },
    { ...good, t: '' },
    { ...good, u: String(NOW + 20 * 365 * 86_400_000) },
    { ...good, u: '1e20' },
    { ...good, u: '-5' },
    { ...good, l: 'x' },
    { ...good, p: 'a b' },
    { ...good, r: '$(reboot)' },
    { ...good, n: '' },
    { ...good, v: '2' },
    { ...good, a: 'flush' },
    { ...good, a: 'unban' }, // no reason
  ];
  for (const b of bad) assert.ok('error' in decode(wire(b), NOW), JSON.stringify(b));
  assert.ok('error' in decode([...wire(good), 't', '192.0.2.8'], NOW), 'duplicate field');
  assert.ok('error' in decode(['v'], NOW), 'odd field count');
  assert.ok('ok' in decode(wire(good), NOW));
});

test('network width: the configured limit (default /16 v4, /32 v6) and a hard floor of /8 and /16', () => {
  const d = { v4: 16, v6: 32 };
  const width = (t: string, w = d) => decode(wire({ ...good, t }), NOW, w);
  for (const t of ['10.0.0.0/8', '10.0.0.0/15', '2001::/16', '2001:db8::/31']) {
    const r = width(t);
    assert.ok('error' in r && r.tooWide === true && /wider than \/(16|32)/.test(r.error), `${t}: ${JSON.stringify(r)}`);
  }
  for (const t of ['10.1.0.0/16', '192.0.2.0/24', '2001:db8::/32', '2001:db8:1::/64']) assert.ok('ok' in width(t), t);
  assert.ok('error' in width('192.0.2.0/24', { v4: 25, v6: 64 }), 'a tighter limit refuses a /24');
  // The floor holds whatever a config says.
  assert.ok('error' in width('10.0.0.0/7', { v4: 0, v6: 0 }));
  assert.ok('error' in width('::/0', { v4: 0, v6: 0 }));
});

test('decode never throws and only lets canonical targets through (property)', () => {
  fc.assert(fc.property(fc.array(fc.string({ maxLength: 40 }), { maxLength: 30 }), fc.string({ maxLength: 50 }), (junk, t) => {
    const r = decode([...wire({ ...good, t }), ...junk], NOW);
    if ('ok' in r) assert.equal(r.ok.target, t);
  }));
});
