import { test } from 'node:test';
import assert from 'node:assert/strict';
import { networkInterfaces } from 'node:os';
import { Allowlist, loadAllowlist, selfAddresses } from '../../src/state/allowlist.js';
import { parseCidr, parseIp } from '../../src/parse/ip.js';
import type { Cidr } from '../../src/types.js';
import { ip } from './helpers.js';

test('allowlist: CIDRs of both families, containment by prefix sets, overlap with a ban prefix', () => {
  const a = new Allowlist(['10.0.0.0/8', '192.0.2.7', '2001:db8:5::/48', '2001:db8:9::1'].map((c) => parseCidr(c)!));
  assert.ok(a.contains(ip('10.200.3.4')));
  assert.ok(a.contains(ip('192.0.2.7')));
  assert.ok(!a.contains(ip('192.0.2.8')));
  assert.ok(a.contains(ip('2001:db8:5:ffff::1')));
  assert.ok(!a.contains(ip('2001:db8:6::1')));
  assert.ok(a.contains(ip('2001:db8:9::1')));
  assert.ok(a.overlaps(parseCidr('2001:db8:9::/64')!), 'a /64 holding an allowlisted address');
  assert.ok(a.overlaps(parseCidr('10.1.0.0/16')!), 'a network inside an allowlisted one');
  assert.ok(!a.overlaps(parseCidr('2001:db8:a::/64')!));
});

test('allowlist: host names resolve at load (all addresses), self and loopback are added, bad entries are refused', async () => {
  const resolve = async (h: string): Promise<string[]> => {
    if (h === 'backup-mx.example.net') return ['198.51.100.25', '2001:db8:25::25'];
    throw new Error('ENOTFOUND');
  };
  const a = await loadAllowlist({ entries: ['backup-mx.example.net', '203.0.113.0/24'] }, resolve);
  assert.ok(a.contains(ip('198.51.100.25')));
  assert.ok(a.contains(ip('2001:db8:25::25')));
  assert.ok(!a.contains(ip('198.51.100.26')));
  assert.ok(a.contains(ip('127.0.0.53')));
  assert.ok(a.contains(ip('::1')));
  for (const list of Object.values(networkInterfaces())) for (const n of list ?? []) {
    const own = parseIp(n.address.split('%')[0]!);
    if (own) assert.ok(a.contains(own), `own address ${n.address}`);
  }
  await assert.rejects(loadAllowlist({ entries: ['nowhere.invalid'] }, resolve), /MJ_STATE_ALLOW_DNS/);
  await assert.rejects(loadAllowlist({ entries: ['10.0.0.0/33'] }, resolve), /MJ_STATE_ALLOW_ENTRY/);
  await assert.rejects(loadAllowlist({ entries: ['$(reboot)'] }, resolve), /MJ_STATE_ALLOW_ENTRY/);
  const bare = await loadAllowlist({ entries: [], self: false });
  assert.ok(!bare.contains(ip('127.0.0.1')));
  assert.ok(selfAddresses().includes('127.0.0.0/8' as Cidr));
});

test('allowlist: the system resolver is used by default (localhost from /etc/hosts)', async () => {
  const a = await loadAllowlist({ entries: ['localhost'], self: false });
  assert.ok(a.contains(ip('127.0.0.1')) || a.contains(ip('::1')));
});
