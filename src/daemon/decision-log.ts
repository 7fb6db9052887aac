// One log line per decision: a ban with its evidence (frozen at the match that triggered it), an
// unban with its reason. Used by the pipeline, the control handlers and shared counting alike.
import type { Logger } from 'pino';
import { formatDuration } from '../lib/duration.js';
import type { BanDecision, Match } from '../types.js';
import type { EvidenceLog } from './evidence.js';

export class DecisionLog {
  constructor(private readonly log: Logger, private readonly evidence: EvidenceLog, private readonly now: () => number) {}

  /** `m`: the match that triggered a ban (undefined for operator and shared bans). */
  write(d: BanDecision, m: Match | undefined): void {
    if (d.action === 'ban') {
      const ev = this.evidence.freeze(d.target, m);
      this.log.info({
        event: 'ban', target: d.target, policy: d.policy, banLevel: d.level, until: new Date(d.until).toISOString(),
        rule: d.ruleId, count: ev?.count ?? 0,
        ...(ev ? { first: ev.firstLine, firstTime: new Date(ev.first).toISOString(), last: ev.lastLine } : {}),
        ...(m ? { source: m.event.origin.name ?? m.event.origin.kind, host: m.event.host, ...(m.user !== undefined ? { user: m.user } : {}) } : {}),
      }, `ban ${d.target} for ${formatDuration(d.until - this.now())} (policy ${d.policy}, level ${d.level}, ${ev?.count ?? 0} × ${d.ruleId})`);
    } else {
      this.log.info({ event: 'unban', target: d.target, policy: d.policy, reason: d.reason }, `unban ${d.target} (${d.reason})`);
    }
  }
}
