// Cluster mode (docs/cluster.md), wired to the local stages: the publisher sends our decisions to
// Redis, the enforcer applies Redis decisions to our firewall (vetoed by our allowlist), and the
// shared counter adds our attempts to cluster-wide counts and bans when one crosses maxretry.
// Each is built from parts that already exist (see start.ts for the order); none is built when
// the config has no `redis` section.
import type { Logger } from 'pino';
import type { ClusterRole } from '../cluster/config.js';
import { ClusterEnforcer } from '../cluster/enforcer.js';
import { ClusterPublisher } from '../cluster/publisher.js';
import { SharedCounter, type SharedPolicy } from '../cluster/shared-counter.js';
import type { Allowlist } from '../state/allowlist.js';
import type { CountedAttempt, Decider } from '../state/decider.js';
import type { BanDecision, Cidr, Ip } from '../types.js';
import { MailjailError } from '../types.js';
import type { ResolvedFirewallConfig } from '../firewall/config.js';
import type { MailjailConfig } from './config.js';
import type { DecisionLog } from './decision-log.js';
import type { FirewallSink, KernelBans } from './firewall-sink.js';
import type { InForce } from './in-force.js';
import type { Metrics } from './metrics.js';
import type { RateLimitedLog } from './rate-limit.js';

const roleOf = (c: MailjailConfig): ClusterRole => c.role ?? 'both';

/** Whether this daemon reads its sources (a pure enforcer in a cluster does not). */
export function readsSources(c: MailjailConfig): boolean {
  return !(c.redis && roleOf(c) === 'enforcer');
}

/** The firewall this daemon drives: a pure collector decides and publishes, it does not touch its own kernel. */
export function localFirewall(c: MailjailConfig): ResolvedFirewallConfig {
  return c.redis && roleOf(c) === 'collector' ? { ...c.firewall, backend: 'dry-run' as const } : c.firewall;
}

/** Whether attempts are counted cluster-wide (collectors with redis.sharedCounting). */
export function countsShared(c: MailjailConfig): boolean {
  return Boolean(c.redis?.sharedCounting) && roleOf(c) !== 'enforcer';
}

/**
 * Policy thresholds for shared counting (config durations are ms). A policy with `distinctUsers`
 * is left out: the user names are not shared, so it is counted per collector only.
 */
export function sharedPolicies(c: MailjailConfig): Map<string, SharedPolicy> {
  return new Map(c.policies.filter((p) => p.distinctUsers === undefined).map((p) => [p.name, { findtimeMs: p.findtime, maxretry: p.maxretry }]));
}

/**
 * The decider reports counted attempts to one hook given at its construction; the shared counter
 * is built later (it bans through the decider), so it subscribes here. Nothing is counted before
 * sources run, which is after every subscriber is in place.
 */
export class CountedAttempts {
  private readonly subscribers: ((e: CountedAttempt) => void)[] = [];

  readonly emit = (e: CountedAttempt): void => {
    for (const s of this.subscribers) s(e);
  };

  subscribe(s: (e: CountedAttempt) => void): void {
    this.subscribers.push(s);
  }
}

/** Collector side: our decisions out to Redis; after a lost queue it re-publishes our active bans. */
export function makePublisher(c: MailjailConfig, log: Logger, decider: Decider, now: () => number): ClusterPublisher | undefined {
  if (!c.redis || roleOf(c) === 'enforcer') return undefined;
  return new ClusterPublisher(c.redis, log, {
    activeBans: () => decider.activeBans(now()).map((b) => ({ action: 'ban' as const, target: b.target, until: b.until, level: b.level, policy: b.policy, ruleId: b.ruleId, evidence: [] })),
  });
}

/** Enforcer side: Redis decisions into our firewall through the same sink, vetoed by our allowlist. */
export function makeEnforcer(
  c: MailjailConfig,
  log: Logger,
  p: { sink: FirewallSink; allow: Allowlist; decider: Decider; now: () => number },
): ClusterEnforcer | undefined {
  if (!c.redis || roleOf(c) === 'collector') return undefined;
  return new ClusterEnforcer(c.redis, log, {
    stateDir: c.state.dir,
    skipOwn: roleOf(c) === 'both',
    apply: (b) => applyCluster(p.sink, log, b),
    refuse: (t) => {
      const hit = t.includes('/') ? p.allow.overlaps(t as Cidr) : p.allow.contains(t as Ip);
      return hit ? 'allowlisted on this host' : undefined;
    },
    isLocalBan: (t) => p.decider.activeBans(p.now()).some((b) => b.target === t),
  });
}

/** Enforcer → local firewall, through the same sink as our own decisions; resolves once applied. */
async function applyCluster(sink: FirewallSink, log: Logger, batch: readonly BanDecision[]): Promise<void> {
  for (const d of batch) log.info({ event: `cluster-${d.action}`, target: d.target, ...(d.action === 'ban' ? { until: new Date(d.until).toISOString(), policy: d.policy } : {}) }, `cluster ${d.action} ${d.target}`);
  await sink.push(batch);
  if (!(await sink.settled(batch, 30_000))) throw new MailjailError('MJ_CLUSTER_FW_PENDING', 'the local firewall has not applied the cluster decisions yet');
}

/**
 * What the kernel must hold: the ledger's active bans and the cluster bans applied here (so that
 * reconcile and recovery keep them), the later expiry where both hold a target.
 */
export function kernelBans(decider: Decider, enforcer: ClusterEnforcer | undefined, now: () => number): KernelBans {
  return () => {
    const m = new Map<string, number>(decider.activeBans(now()).map((b) => [b.target, b.until]));
    for (const [t, u] of enforcer?.activeBans() ?? []) if ((m.get(t) ?? 0) < u) m.set(t, u);
    return m;
  };
}

export interface SharedBanParts {
  readonly inForce: InForce;
  readonly decider: Decider;
  readonly sink: FirewallSink;
  readonly publisher: ClusterPublisher | undefined;
  readonly decisions: DecisionLog;
  readonly log: Logger;
  readonly warnings: RateLimitedLog;
  readonly now: () => number;
}

/**
 * Shared counting: the counter, subscribed to the decider's counted attempts. When the cluster-wide
 * count of (policy, key) reaches maxretry with an attempt this collector counted, it is banned
 * through the state stage like any ban (ledger, escalation), unless the local count got there too
 * (same attempt) and it is banned already.
 */
export function makeSharedCounter(c: MailjailConfig, log: Logger, counted: CountedAttempts, p: SharedBanParts): SharedCounter | undefined {
  if (!c.redis || !countsShared(c)) return undefined;
  const counter = new SharedCounter(c.redis, log, sharedPolicies(c), (policy, key, ruleId, count) => sharedBan(p, policy, key, ruleId, count));
  counted.subscribe((e) => counter.note(e));
  return counter;
}

function sharedBan(p: SharedBanParts, policy: string, key: Ip | Cidr, ruleId: string, count: number): void {
  if (p.inForce.stopping) return;
  const now = p.now();
  if (p.decider.activeBans(now).some((b) => b.target === key)) return;
  let ds: BanDecision[];
  try {
    ds = p.decider.ban({ target: key, now, policy, ruleId });
  } catch (e) {
    p.warnings.warn(`shared ${key}`, { target: key, err: (e as Error).message }, 'shared count reached maxretry but the ban was refused');
    return;
  }
  p.log.info({ target: key, policy, sharedCount: count }, `shared count of ${key} reached ${count} across collectors`);
  for (const d of ds) p.decisions.write(d, undefined);
  void p.sink.push(ds);
  p.publisher?.publish(ds);
}

/** Redis link figures as one gauge (published, queued, dropped, applied, refused, reconnects, connected...). */
export function registerClusterGauge(metrics: Metrics, links: { publisher?: ClusterPublisher | undefined; enforcer?: ClusterEnforcer | undefined; counter?: SharedCounter | undefined }): void {
  if (!links.publisher && !links.enforcer && !links.counter) return;
  metrics.gauge('mailjail_cluster_stat', 'Redis cluster link figures (published, queued, dropped, applied, refused, reconnects, connected, ...), by link', ['link', 'stat'], (g) => {
    g.reset();
    for (const [link, st] of [['publisher', links.publisher?.stats()], ['enforcer', links.enforcer?.stats()], ['counter', links.counter?.stats()]] as const) {
      for (const [k, v] of Object.entries(st ?? {})) {
        if (typeof v === 'number' || typeof v === 'boolean') g.set({ link, stat: k }, Number(v));
      }
    }
  });
}
