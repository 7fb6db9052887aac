// Ban propagation through a real redis-server: one collector (ClusterPublisher) → two enforcers
// (ClusterEnforcer → firewall backend). Prints
//  - latency from the collector's decision to the entry being in each enforcer's set (p50/p99),
//    one decision at a time (an idle cluster: what an admin sees for a single attacker);
//  - decisions/s end to end for a burst (publish N, until both enforcers applied all N).
// Backend: ipset in two throw-away network namespaces when root (the real kernel path:
// `ipset restore`), else the dry-run backend. Usage:
//   node dist/bench/cluster-latency.js [--single 300] [--burst 20000] [--backend ipset|dry-run]
import { spawnSync } from 'node:child_process';
import { pino } from 'pino';
import { ClusterEnforcer } from '../src/cluster/enforcer.js';
import { ClusterPublisher } from '../src/cluster/publisher.js';
import { REDIS_DEFAULTS, type RedisConfig } from '../src/cluster/config.js';
import { resolveFirewallConfig } from '../src/firewall/config.js';
import { DryRunBackend } from '../src/firewall/dryrun.js';
import { IpsetBackend } from '../src/firewall/ipset.js';
import type { KernelFirewall } from '../src/firewall/backend.js';
import type { BanDecision, Ip } from '../src/types.js';
import { RedisServer } from '../test/cluster/redis-server.js';
import { addNetns, delNetns, kernelSkipReason } from '../test/firewall/netns.js';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const arg = (name: string, dflt: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? (process.argv[i + 1] ?? dflt) : dflt;
};
const SINGLE = Number(arg('single', '300'));
const BURST = Number(arg('burst', '20000'));
const wantIpset = arg('backend', process.getuid?.() === 0 ? 'ipset' : 'dry-run') === 'ipset';
const skip = wantIpset ? kernelSkipReason(['ipset', 'iptables', 'ip6tables']) : undefined;
const useIpset = wantIpset && !skip;
if (wantIpset && skip) console.log(`ipset not usable (${skip}); using the dry-run backend`);

const log = pino({ level: 'silent' });
const pct = (xs: number[], p: number): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};
const ipOf = (i: number): Ip => `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` as Ip;

async function main(): Promise<void> {
  const srv = await RedisServer.start();
  const namespaces: string[] = [];
  // Entries are signed and verified as in production (redis.signingKeyFile).
  const signingKeyFile = join(mkdtempSync(join(tmpdir(), 'mj-bench-key-')), 'cluster.key');
  writeFileSync(signingKeyFile, 'bench-cluster-key-0123456789abcdefghijklmnop\n', { mode: 0o600 });
  const cfg: RedisConfig = { ...REDIS_DEFAULTS, url: srv.url, node: 'collector', backoffBaseMs: 50, backoffMaxMs: 1000, streamMaxLen: 1_000_000, maxQueue: 1_000_000, signingKeyFile };
  const applied = [new Map<string, number>(), new Map<string, number>()];
  const enforcers: ClusterEnforcer[] = [];
  try {
    for (let k = 0; k < 2; k++) {
      let fw: KernelFirewall;
      if (useIpset) {
        const ns = addNetns('bench');
        namespaces.push(ns);
        fw = new IpsetBackend(resolveFirewallConfig({ backend: 'ipset', prefix: 'mjbench', netns: ns, maxelem: 1 << 20 }));
      } else fw = new DryRunBackend(resolveFirewallConfig({ backend: 'dry-run', maxelem: 1 << 20 }));
      await fw.ensure();
      const mine = applied[k]!;
      const e = new ClusterEnforcer(cfg, log, {
        stateDir: mkdtempSync(join(tmpdir(), 'mj-bench-')),
        blockMs: 1000,
        apply: async (b: readonly BanDecision[]) => {
          const r = await fw.apply(b);
          if (r.failed.length) throw r.failed[0]!.error;
        },
        onApplied: (w, t) => mine.set(w.target, t),
      });
      e.start();
      enforcers.push(e);
    }
    const pub = new ClusterPublisher(cfg, log);
    const wait = async (cond: () => boolean): Promise<void> => {
      while (!cond()) await new Promise((r) => setImmediate(r));
    };
    await wait(() => pub.stats().connected && enforcers.every((e) => e.stats().snapshots === 1));
    const until = Date.now() + 3600_000;
    // 1. Single decisions.
    const lat: number[] = [];
    for (let i = 0; i < SINGLE; i++) {
      const t = ipOf(i + 1);
      const t0 = Date.now();
      pub.publish([{ action: 'ban', target: t, until, level: 0, policy: 'auth', ruleId: 'bench', evidence: [] }]);
      await wait(() => applied[0]!.has(t) && applied[1]!.has(t));
      lat.push(applied[0]!.get(t)! - t0, applied[1]!.get(t)! - t0);
    }
    // 2. Burst.
    const base = 1 << 16;
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < BURST; i++) pub.publish([{ action: 'ban', target: ipOf(base + i), until, level: 0, policy: 'auth', ruleId: 'bench', evidence: [] }]);
    const last = ipOf(base + BURST - 1);
    await wait(() => applied[0]!.has(last) && applied[1]!.has(last));
    const secs = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log(`backend: ${useIpset ? 'ipset (two network namespaces)' : 'dry-run'}; redis-server ${spawnSync('redis-server', ['--version'], { encoding: 'utf8' }).stdout.match(/v=(\S+)/)?.[1]}; node ${process.version}`);
    console.log(`single decisions: ${SINGLE} × 2 enforcers, decision → in the set: p50 ${pct(lat, 50)} ms, p99 ${pct(lat, 99)} ms, max ${Math.max(...lat)} ms`);
    console.log(`burst: ${BURST} decisions → both enforcers in ${secs.toFixed(2)} s = ${Math.round(BURST / secs).toLocaleString('en')} decisions/s`);
    await pub.close();
  } finally {
    for (const e of enforcers) await e.stop();
    for (const ns of namespaces) delNetns(ns);
    await srv.destroy();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
