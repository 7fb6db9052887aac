import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { cidrContains, parseAddressOrNetwork, parseCidr, parseIp, prefixOf } from '../../src/parse/ip.js';

test('IPv4 is accepted as a plain dotted quad only', () => {
  assert.equal(parseIp('192.0.2.1'), '192.0.2.1');
  assert.equal(parseIp('[192.0.2.1]'), '192.0.2.1');
  for (const bad of ['256.1.1.1', '1.2.3', '01.2.3.4', '1.2.3.4 ', '', '1.2.3.4.5', 'a.b.c.d']) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

test('IPv6 is canonical (RFC 5952) and IPv4-mapped addresses are unmapped', () => {
  const cases: [string, string][] = [
    ['2001:DB8::1', '2001:db8::1'],
    ['2001:0db8:0000:0000:0000:0000:0000:0001', '2001:db8::1'],
    ['2001:db8:0:0:1:0:0:1', '2001:db8::1:0:0:1'],
    ['2001:db8:0:1:1:1:1:1', '2001:db8:0:1:1:1:1:1'],
    ['::ffff:1.2.3.4', '1.2.3.4'],
    ['::FFFF:1.2.3.4', '1.2.3.4'],
    ['::ffff:0102:0304', '1.2.3.4'],
    ['IPv6:2001:db8::5', '2001:db8::5'],
    ['64:ff9b::1.2.3.4', '64:ff9b::102:304'],
    ['::1', '::1'],
    ['::', '::'],
    ['fe80::', 'fe80::'],
  ];
  for (const [i, o] of cases) assert.equal(parseIp(i), o, i);
  for (const bad of ['2001:db8::1::1', '2001:db8::g', 'fe80::1%eth0', ':::', '1:2:3:4:5:6:7:8:9', '12345::1', '::ffff:1.2.3']) {
    assert.equal(parseIp(bad), undefined, bad);
  }
});

test('prefixes and containment', () => {
  assert.equal(prefixOf(parseIp('2001:db8:1:2:3:4:5:6')!, 64), '2001:db8:1:2::/64');
  assert.equal(prefixOf(parseIp('192.0.2.77')!, 24), '192.0.2.0/24');
  assert.equal(parseCidr('10.1.2.3/8'), '10.0.0.0/8');
  assert.equal(parseCidr('2001:db8::1'), '2001:db8::1/128');
  assert.equal(parseCidr('10.0.0.0/33'), undefined);
  assert.ok(cidrContains(parseCidr('10.0.0.0/8')!, parseIp('10.9.9.9')!));
  assert.ok(!cidrContains(parseCidr('10.0.0.0/8')!, parseIp('11.0.0.1')!));
  assert.ok(!cidrContains(parseCidr('::/0')!, parseIp('1.2.3.4')!));
});

test('property: never throws, and canonical output is a fixed point', () => {
  fc.assert(fc.property(fc.string(), (s) => { const r = parseIp(s); if (r) assert.equal(parseIp(r), r); }), { numRuns: 2000 });
  fc.assert(fc.property(fc.ipV6(), (s) => { const r = parseIp(s); assert.ok(r); assert.equal(parseIp(r), r); }), { numRuns: 2000 });
  fc.assert(fc.property(fc.ipV4(), (s) => { assert.equal(parseIp(s), s); }), { numRuns: 500 });
});

test('a ban target has one spelling: a full-length network is the bare address, others the canonical CIDR', () => {
  assert.equal(parseAddressOrNetwork('192.0.2.1'), '192.0.2.1');
  assert.equal(parseAddressOrNetwork('192.0.2.1/32'), '192.0.2.1');
  assert.equal(parseAddressOrNetwork('2001:DB8::1/128'), '2001:db8::1');
  assert.equal(parseAddressOrNetwork('[::ffff:192.0.2.7]'), '192.0.2.7');
  assert.equal(parseAddressOrNetwork('192.0.2.77/24'), '192.0.2.0/24');
  assert.equal(parseAddressOrNetwork('2001:db8:1:2::5/64'), '2001:db8:1:2::/64');
  for (const bad of ['', 'x', '192.0.2.1/33', '2001:db8::/129', '192.0.2.1/']) assert.equal(parseAddressOrNetwork(bad), undefined, bad);
});
