// The per-batch path, and nothing else: records → parse → rules → state → firewall (and the
// cluster, when there is one). Everything around it — start-up order, supervision, reload, the
// control handlers, housekeeping — lives in its own file beside this one (see docs/daemon.md).
import { parseRecord } from '../parse/index.js';
import type { ClusterPublisher } from '../cluster/publisher.js';
import type { Decider } from '../state/decider.js';
import type { BanDecision, Match, RawRecord } from '../types.js';
import type { DecisionLog } from './decision-log.js';
import type { EvidenceLog } from './evidence.js';
import type { FirewallSink } from './firewall-sink.js';
import type { LedgerMetrics } from './housekeeping.js';
import type { InForce } from './in-force.js';
import type { Metrics } from './metrics.js';
import type { RateLimitedLog } from './rate-limit.js';

export interface PipelineParts {
  readonly inForce: InForce;
  readonly decider: Decider;
  readonly sink: FirewallSink;
  readonly publisher: ClusterPublisher | undefined;
  readonly evidence: EvidenceLog;
  readonly decisions: DecisionLog;
  readonly ledgerMetrics: LedgerMetrics;
  readonly metrics: Metrics;
  readonly warnings: RateLimitedLog;
  readonly now: () => number;
}

export class Pipeline {
  /** Totals since start, for `status`. */
  readonly counters = { lines: 0, parseErrors: 0, matches: 0 };

  constructor(private readonly p: PipelineParts) {}

  /**
   * sources → parse → rules → state → firewall, for one batch. The batch's matches go to the
   * decider together (observeBatch: one ledger write + fdatasync for all its bans). When the
   * ledger cannot be written (full disk), none of the batch's bans is applied or listed; the
   * matches stay counted, so each offender is decided again at its next line (docs/daemon.md).
   */
  onBatch(batch: readonly RawRecord[], source: string): void {
    const { metrics, decider } = this.p;
    const now = this.p.now();
    const engine = this.p.inForce.engine;
    metrics.linesReceived.inc({ source }, batch.length);
    this.counters.lines += batch.length;
    const ctx = { format: 'auto' as const, now };
    const ms: Match[] = [];
    const at: number[] = [];
    for (const rec of batch) {
      const r = parseRecord(rec, ctx);
      if (!('event' in r)) {
        this.counters.parseErrors++;
        metrics.parseErrors.inc({ source });
        continue;
      }
      const m = engine.match(r.event);
      if (!m) continue;
      this.counters.matches++;
      metrics.matches.inc({ rule: m.ruleId, class: m.class });
      ms.push(m);
      // Live clock: wall time. A journal entry carries journald's own receive time, so a look-back
      // after a restart counts old entries at their real time, never later than now; syslog
      // senders' clocks are not trusted.
      at.push(rec.kind === 'journal' ? Math.min(now, m.event.time) : now);
    }
    if (ms.length === 0) return;
    let ds: readonly BanDecision[] = [];
    try {
      ds = decider.observeBatch(ms, (_m, i) => at[i]!).decisions;
    } catch (e) {
      // Not durable, so not applied: the decider has undone the batch's bans (see above).
      this.p.ledgerMetrics.sync();
      this.p.warnings.error('observe', { err: (e as Error).message, matches: ms.length }, 'state stage failed on a batch: its bans are not applied and are decided again at the offenders\' next lines');
    }
    // Evidence in line order: a ban's evidence is frozen at the match that triggered it (the last
    // of its decision's evidence), before the lines after it in the batch are noted.
    const byMatch = new Map<Match, BanDecision[]>();
    for (const d of ds) {
      const m = d.action === 'ban' ? d.evidence[d.evidence.length - 1] : undefined;
      if (!m) continue;
      const list = byMatch.get(m);
      if (list) list.push(d); else byMatch.set(m, [d]);
    }
    for (const m of ms) {
      this.p.evidence.note(m);
      for (const d of byMatch.get(m) ?? []) this.p.decisions.write(d, m);
    }
    if (ds.length > 0) {
      void this.p.sink.push(ds);
      this.p.publisher?.publish(ds);
    }
  }
}
