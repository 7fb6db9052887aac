// Pure pieces of the firewall stage: target validation, config, tool-output parsers, the batch
// scripts, error classification and the reconcile diff.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import fc from 'fast-check';
import { resolveFirewallConfig } from '../../src/firewall/config.js';
import { classify, FW_CODES, makeRunner } from '../../src/firewall/exec.js';
import { IpsetBackend, parseIpsetHeader, parseIpsetSave, restoreLine } from '../../src/firewall/ipset.js';
import { NftBackend, parseNftJson } from '../../src/firewall/nft.js';
import { diff } from '../../src/firewall/reconcile.js';
import { checkTarget, keyOf, MAX_TIMEOUT_S, prepare, timeoutFor } from '../../src/firewall/targets.js';
import type { Ip, MailjailError } from '../../src/types.js';
import { ban, unban } from './conformance.js';

test('checkTarget accepts canonical Ip/Cidr only', () => {
  assert.deepEqual(checkTarget('192.0.2.1'), { key: '192.0.2.1', family: 4, net: false });
  assert.deepEqual(checkTarget('192.0.2.1/32'), { key: '192.0.2.1', family: 4, net: false });
  assert.deepEqual(checkTarget('2001:db8::/64'), { key: '2001:db8::/64', family: 6, net: true });
  for (const bad of ['192.0.2.1 ', '192.0.2.01', '2001:DB8::1', '::ffff:192.0.2.1', '10.0.0.1/24', '0.0.0.0/0', '10.0.0.0/7', '::/0',
    '2001:db8::/15', '1.2.3.4;id', '1.2.3.4\nflush', '-exist', '', 'a'.repeat(100)]) {
    assert.equal(checkTarget(bad), undefined, bad);
  }
  assert.equal(checkTarget(42), undefined);
});

test('checkTarget: any string either is refused or is a plain address/prefix with no other characters', () => {
  fc.assert(fc.property(fc.string({ maxLength: 50 }), (s) => {
    const t = checkTarget(s);
    if (t) assert.match(t.key, /^[0-9a-f.:]+(\/\d{1,3})?$/);
  }), { numRuns: 2000 });
});

test('timeoutFor: whole seconds, 0 for permanent or too long, undefined when over', () => {
  assert.equal(timeoutFor(10_500, 10_000), 1);
  assert.equal(timeoutFor(12_000, 10_000), 2);
  assert.equal(timeoutFor(0, 10_000), 0);
  assert.equal(timeoutFor(Infinity, 10_000), 0);
  assert.equal(timeoutFor(10_000 + (MAX_TIMEOUT_S + 5) * 1000, 10_000), 0);
  assert.equal(timeoutFor(9_000, 10_000), undefined);
});

test('prepare coalesces per target (last wins) and refuses invalid ones', () => {
  const { items, refused } = prepare([ban('192.0.2.1' as Ip, 5), ban('bogus' as Ip, 5), unban('192.0.2.1' as Ip), ban('192.0.2.2' as Ip, 5)]);
  assert.deepEqual(items.map((i) => [i.target.key, i.decision.action, i.all.length]), [['192.0.2.1', 'unban', 2], ['192.0.2.2', 'ban', 1]]);
  assert.equal(refused.length, 1);
  assert.equal((refused[0]!.error as MailjailError).code, FW_CODES.TARGET);
});

test('prepare merges bans of one target to the latest end; an unban resets', () => {
  const { items } = prepare([ban('192.0.2.1' as Ip, 9000), ban('192.0.2.1' as Ip, 5000), ban('192.0.2.2' as Ip, 5000), unban('192.0.2.2' as Ip), ban('192.0.2.2' as Ip, 3000),
    ban('192.0.2.3' as Ip, 0), ban('192.0.2.3' as Ip, 5000)]);
  assert.deepEqual(items.map((i) => [i.target.key, i.decision.action, i.decision.action === 'ban' ? i.decision.until : -1]),
    [['192.0.2.1', 'ban', 9000], ['192.0.2.2', 'ban', 3000], ['192.0.2.3', 'ban', 0]]);
});

test('config: defaults, derived names and refusals', () => {
  const c = resolveFirewallConfig();
  assert.equal(c.backend, 'ipset');
  assert.equal(c.set4, 'mailjail-v4');
  assert.equal(c.set6, 'mailjail-v6');
  assert.equal(c.chain, 'MAILJAIL');
  assert.equal(c.table, 'mailjail');
  assert.deepEqual(c.ports, [25, 110, 143, 465, 587, 993, 995, 4190]);
  assert.equal(c.maxelem, 65536);
  assert.equal(resolveFirewallConfig({ ports: 'all' }).ports, 'all');
  for (const bad of [{ prefix: 'x y' }, { prefix: '-exist' }, { chain: 'A'.repeat(30) }, { ports: [] }, { ports: [0] }, { ports: Array.from({ length: 16 }, (_, i) => i + 1) },
    { maxelem: 1 }, { backend: 'pf' }, { netns: 'a b' }] as const) {
    assert.throws(() => resolveFirewallConfig(bad as never), (e: MailjailError) => e.code === 'MJ_FW_CONFIG');
  }
});

test('parseIpsetSave / parseIpsetHeader read ipset output', () => {
  const save = 'create s hash:net family inet hashsize 1024 maxelem 100 timeout 0 bucketsize 12 initval 0x1\nadd s 192.0.2.1 timeout 30\nadd s 10.0.0.0/24 timeout 0\nadd s 203.0.113.0/32 timeout 5\n';
  assert.deepEqual([...parseIpsetSave(save, 1000)], [['192.0.2.1', 31_000], ['10.0.0.0/24', 0], ['203.0.113.0', 6000]]);
  const h = parseIpsetHeader('Name: s\nType: hash:net\nRevision: 7\nHeader: family inet hashsize 1024 maxelem 100 timeout 0 bucketsize 12\nSize in memory: 456\nReferences: 1\nNumber of entries: 7\n');
  assert.deepEqual(h, { type: 'hash:net', maxelem: 100, timeout: true, entries: 7 });
  assert.equal(keyOf('2001:0db8::1/128'), '2001:db8::1');
});

test('restoreLine and the nft batch script', () => {
  const { items } = prepare([ban('192.0.2.1' as Ip, 61_000), unban('2001:db8::1' as Ip), ban('2001:db8:1::/64' as Ip, 0)]);
  assert.deepEqual(items.map((i) => restoreLine('s', i, 1000)), ['add s 192.0.2.1 timeout 60', 'del s 2001:db8::1', 'add s 2001:db8:1::/64 timeout 0']);
  const nft = new NftBackend(resolveFirewallConfig({ backend: 'nftables', prefix: 'mj' }), { now: () => 1000 });
  assert.equal(nft.batchScript(items, false), [
    'add element inet mj v4 { 192.0.2.1 }', 'delete element inet mj v4 { 192.0.2.1 }', 'add element inet mj v4 { 192.0.2.1 timeout 60s }',
    'add element inet mj v6 { 2001:db8::1 }', 'delete element inet mj v6 { 2001:db8::1 }',
    'add element inet mj v6n64 { 2001:db8:1::/64 }', 'delete element inet mj v6n64 { 2001:db8:1::/64 }', 'add element inet mj v6n64 { 2001:db8:1::/64 }',
  ].join('\n') + '\n');
  const ens = nft.ensureScript(['v6n64', 'v4n24']);
  assert.match(ens, /tcp dport \{ 25, 110, 143, 465, 587, 993, 995, 4190 \} ip saddr @v4 drop/);
  assert.match(ens, /add set inet mj v4n24 \{ type ipv4_addr; flags interval, timeout; size 65536; \}/);
  assert.match(ens, /ip6 saddr @v6n64 drop/);
});

test('parseNftJson reads our sets (hosts, prefixes, timeouts), the hook and the rules', () => {
  const j = '{"nftables": [{"metainfo": {}}, {"table": {"family": "inet", "name": "mj"}}, {"set": {"name": "v4n24", "elem": [{"elem": {"val": {"prefix": {"addr": "10.0.0.0", "len": 24}}, "timeout": 200, "expires": 199}}, {"prefix": {"addr": "10.1.0.0", "len": 24}}]}},' +
    '{"set": {"name": "v4", "elem": ["192.0.2.1", {"elem": {"val": "192.0.2.2", "timeout": 9, "expires": 3}}]}}, {"set": {"name": "other", "elem": ["192.0.2.9"]}},' +
    '{"chain": {"family": "inet", "table": "mj", "name": "input", "hook": "input", "prio": -10}}, {"rule": {"chain": "input", "expr": [{"match": {"op": "==", "right": "@v4"}}, {"drop": null}]}}]}';
  const t = parseNftJson(j);
  assert.deepEqual([...t.sets], [
    ['v4n24', [{ key: '10.0.0.0/24', expiresS: 199 }, { key: '10.1.0.0/24', expiresS: undefined }]],
    ['v4', [{ key: '192.0.2.1', expiresS: undefined }, { key: '192.0.2.2', expiresS: 3 }]],
  ]);
  assert.equal(t.hooked, true);
  assert.deepEqual([...t.referenced], ['v4']);
});

test('classify maps tool errors to stable codes', () => {
  assert.equal(classify('ipset v7.17: Error in line 3: Hash is full, cannot add more elements'), FW_CODES.SET_FULL);
  assert.equal(classify('Error: Could not process rule: Too many open files in system'), FW_CODES.SET_FULL);
  assert.equal(classify('ipset v7.17: The set with the given name does not exist'), FW_CODES.SET_MISSING);
  assert.equal(classify('/dev/stdin:1:22-25: Error: No such file or directory\nadd element inet mj v4 { 1.2.3.4 }'), FW_CODES.SET_MISSING);
  assert.equal(classify('ipset v7.17: Kernel error received: Operation not permitted'), FW_CODES.PERM);
  assert.equal(classify('ipset v7.17: Cannot open session to kernel.'), FW_CODES.KERNEL);
  assert.equal(classify('iptables v1.8.9 (nf_tables): Could not fetch rule set generation id: Invalid argument'), FW_CODES.EXEC);
  assert.equal(classify('Error: interval overlaps with an existing one'), FW_CODES.OVERLAP);
});

test('the runner reports a missing binary as MJ_FW_MISSING and a failure with command and stderr', async () => {
  const run = makeRunner();
  await assert.rejects(run('mailjail-no-such-binary', ['x']), (e: MailjailError) => e.code === FW_CODES.MISSING && /mailjail-no-such-binary/.test(e.message));
  await assert.rejects(run(process.execPath, ['-e', 'process.stderr.write("bad thing"); process.exit(3)']), (e: MailjailError) =>
    e.code === FW_CODES.EXEC && e.message.includes('exit 3') && e.message.includes('bad thing'));
  const ok = await run(process.execPath, ['-e', 'process.stdin.pipe(process.stdout)'], 'a; rm -rf / $(x)\n');
  assert.equal(ok.stdout, 'a; rm -rf / $(x)\n'); // stdin is data, never a shell
});

test('reconcile diff: adds, updates, removes, keeps; skips over and invalid', () => {
  const now = 1_000_000;
  const kernel = new Map([['192.0.2.1', now + 60_000], ['192.0.2.2', now + 60_000], ['192.0.2.3', 0], ['192.0.2.4', now + 5000]]);
  const ledger = new Map([['192.0.2.1', now + 61_000], ['192.0.2.2', now + 600_000], ['192.0.2.3', 0], ['2001:db8::/64', now + 5000], ['198.51.100.1', now - 1], ['junk', now + 5]]);
  const d = diff(ledger, kernel, now);
  assert.deepEqual(d.adds.map((x) => x.target), ['2001:db8::/64']);
  assert.deepEqual(d.updates.map((x) => x.target), ['192.0.2.2']);
  assert.deepEqual(d.removes.map((x) => x.target), ['192.0.2.4']);
  assert.equal(d.kept, 2);
  assert.deepEqual(d.invalid, ['junk']);
});

test('hostile targets never reach a command: exactly one process per batch, argv fixed, stdin only validated lines', async () => {
  const hostile = ['192.0.2.1; rm -rf /', '$(reboot)', '192.0.2.1\nflush', '-exist', '10.0.0.1/24', '0.0.0.0/0', 'add mailjail-v4 0.0.0.0/1'];
  const until = 1_000_000 + 60_000;
  for (const backend of ['ipset', 'nftables'] as const) {
    const calls: { file: string; args: readonly string[]; input: string | undefined }[] = [];
    const run = async (file: string, args: readonly string[], input?: string): Promise<{ stdout: string; stderr: string }> => {
      calls.push({ file, args, input });
      return { stdout: '', stderr: '' };
    };
    const cfg = resolveFirewallConfig({ backend });
    const b = backend === 'ipset' ? new IpsetBackend(cfg, { run, now: () => 1_000_000 }) : new NftBackend(cfg, { run, now: () => 1_000_000 });
    const rep = await b.apply([...hostile.map((h) => ban(h as Ip, until)), ban('192.0.2.2' as Ip, until)]);
    assert.equal(rep.applied, 1);
    assert.equal(rep.failed.length, hostile.length);
    assert.equal(calls.length, 1, backend);
    const c = calls[0]!;
    if (backend === 'ipset') {
      assert.deepEqual([c.file, ...c.args], ['ipset', 'restore', '-exist']);
      assert.equal(c.input, 'add mailjail-v4 192.0.2.2 timeout 60\n');
    } else {
      assert.deepEqual([c.file, ...c.args], ['nft', '-f', '-']);
      assert.equal(c.input, 'add element inet mailjail v4 { 192.0.2.2 }\ndelete element inet mailjail v4 { 192.0.2.2 }\nadd element inet mailjail v4 { 192.0.2.2 timeout 60s }\n');
    }
  }
});
