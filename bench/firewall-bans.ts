// Benchmark: 10,000 bans applied in batches (one `ipset restore` / `nft -f` per batch) versus one
// process per address (what fail2ban does; timed over 500 and extrapolated), for ipset and
// nftables, inside a throw-away network namespace. Also times start-up reconcile of 10k bans.
// Run as root: node dist/bench/firewall-bans.js
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { resolveFirewallConfig } from '../src/firewall/config.js';
import { makeRunner } from '../src/firewall/exec.js';
import { IpsetBackend } from '../src/firewall/ipset.js';
import { NftBackend } from '../src/firewall/nft.js';
import { reconcile } from '../src/firewall/reconcile.js';
import type { KernelFirewall } from '../src/firewall/backend.js';
import type { BanDecision, Ip } from '../src/types.js';

const N = 10_000;
const SAMPLE = 500;

/** N distinct addresses: 80 % IPv4 (10.0.0.0/8), 20 % IPv6 (2001:db8::/32). */
function addresses(n: number, salt: number): Ip[] {
  const out: Ip[] = [];
  for (let i = 0; i < n; i++) {
    out.push((i % 5 === 4 ? `2001:db8:${salt.toString(16)}:${i.toString(16)}::1` : `10.${salt}.${(i >> 8) & 255}.${i & 255}`) as Ip);
  }
  return out;
}

function bans(ips: readonly Ip[], until: number): BanDecision[] {
  return ips.map((target) => ({ action: 'ban', target, until, level: 0, policy: 'bench', ruleId: 'bench', evidence: [] }));
}

async function time(fn: () => Promise<unknown>): Promise<number> {
  const t0 = process.hrtime.bigint();
  await fn();
  return Number(process.hrtime.bigint() - t0) / 1e6;
}

interface Row { label: string; ipset: string; nftables: string }

async function measure(kind: 'ipset' | 'nftables', ns: string): Promise<Map<string, string>> {
  const cfg = resolveFirewallConfig({ backend: kind, prefix: 'mjbench', netns: ns, maxelem: 262_144 });
  const b: KernelFirewall = kind === 'ipset' ? new IpsetBackend(cfg) : new NftBackend(cfg);
  const out = new Map<string, string>();
  const until = Date.now() + 3_600_000;
  await b.ensure();
  const fmt = (ms: number): string => `${ms.toFixed(0)} ms (${Math.round((N / ms) * 1000).toLocaleString('en-US')}/s)`;

  // One batch of 10k.
  let ms = await time(async () => { const r = await b.apply(bans(addresses(N, 1), until)); if (r.failed.length) throw r.failed[0]!.error; });
  out.set('10k bans, 1 batch of 10,000', fmt(ms));
  // Batches of 100 (what a busy daemon flushes every few ms).
  const ips = addresses(N, 2);
  ms = await time(async () => { for (let i = 0; i < N; i += 100) await b.apply(bans(ips.slice(i, i + 100), until)); });
  out.set('10k bans, 100 batches of 100', fmt(ms));
  // One process per address, over SAMPLE, extrapolated to N.
  const run = makeRunner({ netns: ns });
  const one = addresses(SAMPLE, 3);
  ms = await time(async () => {
    for (const ip of one) {
      const v6 = ip.includes(':');
      if (kind === 'ipset') await run('ipset', ['add', v6 ? cfg.set6 : cfg.set4, ip, 'timeout', '3600', '-exist']);
      else await run('nft', ['add', 'element', 'inet', cfg.table, v6 ? 'v6' : 'v4', `{ ${ip} timeout 3600s }`]);
    }
  });
  out.set(`10k bans, 1 exec per address (×${N / SAMPLE} from ${SAMPLE})`, fmt(ms * (N / SAMPLE)));
  // Start-up: reconcile a 10k ledger into an empty set, then again with nothing to do.
  await b.stop({ purge: true });
  await b.ensure();
  const ledger = new Map(addresses(N, 4).map((ip) => [ip as string, until]));
  ms = await time(() => reconcile(b, ledger));
  out.set('reconcile 10k ledger → empty kernel', `${ms.toFixed(0)} ms`);
  ms = await time(() => reconcile(b, ledger));
  out.set('reconcile 10k ledger → already in sync', `${ms.toFixed(0)} ms`);
  ms = await time(() => b.list());
  out.set('list() of 10k entries', `${ms.toFixed(0)} ms`);
  await b.stop({ purge: true });
  return out;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) { console.error('firewall-bans: needs root (network namespaces); skipped'); return; }
  const results: Partial<Record<'ipset' | 'nftables', Map<string, string>>> = {};
  for (const kind of ['ipset', 'nftables'] as const) {
    const tool = kind === 'ipset' ? 'ipset' : 'nft';
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) { console.error(`${tool} not installed; skipping ${kind}`); continue; }
    const ns = `mjbench-${randomBytes(4).toString('hex')}`;
    execFileSync('ip', ['netns', 'add', ns]);
    try {
      results[kind] = await measure(kind, ns);
    } finally {
      spawnSync('ip', ['netns', 'del', ns]);
    }
  }
  const labels = [...new Set([...(results.ipset?.keys() ?? []), ...(results.nftables?.keys() ?? [])])];
  const rows: Row[] = labels.map((label) => ({ label, ipset: results.ipset?.get(label) ?? '-', nftables: results.nftables?.get(label) ?? '-' }));
  const w0 = Math.max(...rows.map((r) => r.label.length), 4), w1 = Math.max(...rows.map((r) => r.ipset.length), 5);
  console.log(`firewall-bans: ${N.toLocaleString('en-US')} bans (80 % IPv4, 20 % IPv6), inside a network namespace, node ${process.version}`);
  console.log(`${'case'.padEnd(w0)} | ${'ipset'.padEnd(w1)} | nftables`);
  console.log(`${'-'.repeat(w0)}-|-${'-'.repeat(w1)}-|-${'-'.repeat(24)}`);
  for (const r of rows) console.log(`${r.label.padEnd(w0)} | ${r.ipset.padEnd(w1)} | ${r.nftables}`);
}

main().catch((e: unknown) => { console.error(e); process.exitCode = 1; });
