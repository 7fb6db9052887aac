// The periodic tick: expire state, refresh gauges, keep the evidence of live bans only, feed the
// firewall's and the ledger's failure counts into metrics, and log what the decider noticed
// (allowlisted offenders, auth-server outages: weak lines of many addresses, or a host's server-error lines).
import type { Logger } from 'pino';
import type { Decider } from '../state/decider.js';
import type { Ledger } from '../state/ledger.js';
import type { EvidenceLog } from './evidence.js';
import type { FirewallSink } from './firewall-sink.js';
import type { InForce } from './in-force.js';
import type { Metrics } from './metrics.js';
import type { RateLimitedLog } from './rate-limit.js';

/** Ledger failures (appends, compactions) into metrics; a failed compaction is logged (rate-limited). */
export class LedgerMetrics {
  /** Failure counts already exported. */
  private seen = { write: 0, compaction: 0 };

  constructor(private readonly ledger: Ledger, private readonly metrics: Metrics, private readonly warnings: RateLimitedLog) {}

  sync(): void {
    const l = this.ledger;
    if (l.writeFailures > this.seen.write) this.metrics.ledgerWriteFailures.inc(l.writeFailures - this.seen.write);
    if (l.compactionFailures > this.seen.compaction) {
      this.metrics.ledgerCompactionFailures.inc(l.compactionFailures - this.seen.compaction);
      this.warnings.warn('ledger-compaction', { err: l.lastCompactionError, failures: l.compactionFailures }, 'ledger compaction failed: the old ledger is kept and appended to; compaction is tried again later');
    }
    this.seen = { write: l.writeFailures, compaction: l.compactionFailures };
  }
}

export interface HousekeepingParts {
  readonly inForce: InForce;
  readonly decider: Decider;
  readonly evidence: EvidenceLog;
  readonly sink: FirewallSink;
  readonly ledgerMetrics: LedgerMetrics;
  readonly metrics: Metrics;
  readonly log: Logger;
  readonly warnings: RateLimitedLog;
  readonly now: () => number;
}

export class Housekeeping {
  private timer: NodeJS.Timeout | undefined;
  private lastEvictions = 0;

  constructor(private readonly p: HousekeepingParts) {}

  /** Runs once now, then every `everyMs`. */
  start(everyMs: number): void {
    this.timer = setInterval(() => this.tick(), everyMs);
    this.timer.unref?.();
    this.tick();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  tick(): void {
    const { decider, metrics } = this.p;
    const now = this.p.now();
    decider.sweep(now);
    const s = decider.stats();
    metrics.trackedAddresses.set(s.tracked);
    if (s.evictions > this.lastEvictions) metrics.evictions.inc(s.evictions - this.lastEvictions);
    this.lastEvictions = s.evictions;
    const active = decider.activeBans(now);
    const perPolicy = new Map<string, number>();
    for (const p of this.p.inForce.config.policies) perPolicy.set(p.name, 0);
    for (const b of active) perPolicy.set(b.policy, (perPolicy.get(b.policy) ?? 0) + 1);
    metrics.bansActive.reset();
    for (const [policy, n] of perPolicy) metrics.bansActive.set({ policy }, n);
    this.p.evidence.retain(new Set(active.map((b) => b.target)));
    this.p.sink.syncCounters();
    this.p.ledgerMetrics.sync();
    metrics.authOutageHosts.set(s.outageHosts);
    for (const e of decider.drainEvents()) {
      if (e.kind === 'allowlisted') {
        this.p.warnings.info(`allow ${e.ip}`, { ip: e.ip, policy: e.policy }, `${e.ip} is allowlisted: counted, never banned`);
        continue;
      }
      if (e.state === 'start') metrics.authOutages.inc({ cause: e.cause ?? 'weak' });
      if (e.cause === 'server-error') {
        this.p.log.warn({ outage: e.state, host: e.host, ...(e.outage ? { excused: e.outage.excused, errors: e.outage.errors } : {}) }, e.state === 'start'
          ? 'the auth back end of this host fails (server-error line): its failures are not counted until it recovers'
          : 'auth back-end outage over');
      } else {
        this.p.log.warn({ outage: e.state }, e.state === 'start'
          ? 'many addresses fail with "connection lost to authentication server": looks like an auth-server outage, weak lines are not counted'
          : 'auth-server outage over');
      }
    }
  }
}
