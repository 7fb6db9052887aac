// Runs the shared conformance suite against every backend. Kernel backends run in a namespace
// created here and deleted afterwards; they skip loudly where that is impossible.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DryRunBackend } from '../../src/firewall/dryrun.js';
import { resolveFirewallConfig, type FirewallConfig } from '../../src/firewall/config.js';
import { IpsetBackend } from '../../src/firewall/ipset.js';
import { NftBackend } from '../../src/firewall/nft.js';
import type { KernelFirewall } from '../../src/firewall/backend.js';
import { conformance } from './conformance.js';
import { addNetns, delNetns, kernelSkipReason, nsExec } from './netns.js';

let seq = 0;

test('conformance: dry-run', async (t) => {
  await conformance(t, {
    sharedKernel: false,
    make: (cfg: FirewallConfig = {}) => new DryRunBackend(resolveFirewallConfig({ prefix: `mjt${++seq}`, ...cfg, backend: 'dry-run' })),
    sabotage: async (b) => { (b as DryRunBackend).simulateLoss(); },
    flush: async (b) => { (b as DryRunBackend).simulateFlush(); },
    snapshot: async (b) => JSON.stringify([await b.status(), (b as DryRunBackend).log]),
  });
});

test('conformance: ipset + iptables (in a network namespace)', async (t) => {
  const skip = kernelSkipReason(['ipset', 'iptables', 'ip6tables']);
  if (skip) { console.warn(`SKIPPED ipset conformance: ${skip}`); t.skip(skip); return; }
  const ns = addNetns('ipset-');
  try {
    await conformance(t, {
      sharedKernel: true,
      make: (cfg: FirewallConfig = {}) => new IpsetBackend(resolveFirewallConfig({ prefix: `mjt${++seq}`, ...cfg, backend: 'ipset', netns: ns })),
      sabotage: async (b: KernelFirewall) => {
        const c = (b as IpsetBackend)['cfg'];
        for (const ipt of ['iptables', 'ip6tables']) nsExec(ns, ipt, ['-w', '-F', c.chain]);
        nsExec(ns, 'ipset', ['destroy', c.set4]);
        nsExec(ns, 'ipset', ['destroy', c.set6]);
      },
      flush: async (b: KernelFirewall) => {
        const c = (b as IpsetBackend)['cfg'];
        nsExec(ns, 'ipset', ['flush', c.set4]);
        nsExec(ns, 'ipset', ['flush', c.set6]);
      },
      snapshot: async (b: KernelFirewall) => {
        const c = (b as IpsetBackend)['cfg'];
        const sets = c.ipv6 ? [c.set4, c.set6] : [c.set4];
        return [nsExec(ns, 'iptables', ['-S']), nsExec(ns, 'ip6tables', ['-S']),
          ...sets.map((set) => nsExec(ns, 'ipset', ['list', '-t', set]).replace(/^(Size in memory|initval).*$/gm, ''))].join('\n');
      },
    });
  } finally {
    delNetns(ns);
  }
});

test('conformance: nftables (in a network namespace)', async (t) => {
  const skip = kernelSkipReason(['nft']);
  if (skip) { console.warn(`SKIPPED nftables conformance: ${skip}`); t.skip(skip); return; }
  const ns = addNetns('nft-');
  try {
    await conformance(t, {
      sharedKernel: true,
      make: (cfg: FirewallConfig = {}) => new NftBackend(resolveFirewallConfig({ prefix: `mjt${++seq}`, ...cfg, backend: 'nftables', netns: ns })),
      sabotage: async (b: KernelFirewall) => { nsExec(ns, 'nft', ['delete', 'table', 'inet', (b as NftBackend)['cfg'].table]); },
      flush: async (b: KernelFirewall) => {
        const table = (b as NftBackend)['cfg'].table;
        const sets = [...nsExec(ns, 'nft', ['-t', 'list', 'table', 'inet', table]).matchAll(/^\s*set (\S+) \{/gm)].map((m) => m[1]!);
        assert.ok(sets.length >= 2, `sets of ${table}: ${sets.join(',')}`);
        for (const set of sets) nsExec(ns, 'nft', ['flush', 'set', 'inet', table, set]);
      },
      snapshot: async () => nsExec(ns, 'nft', ['-t', 'list', 'ruleset']), // -t: without set contents
    });
  } finally {
    delNetns(ns);
  }
});
