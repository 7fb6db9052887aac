// The control socket's commands on the running daemon: status, bans, and the operator's ban and
// unban, which take the same ledger → firewall (→ cluster) path as a rule's ban and wait until the
// firewall has applied them. (Reload is reload.ts.)
import type { ClusterPublisher } from '../cluster/publisher.js';
import type { Decider } from '../state/decider.js';
import type { Cidr, Ip } from '../types.js';
import { MailjailError } from '../types.js';
import type { BanEntry, BanResult, StatusResult, UnbanResult } from '../control/protocol.js';
import { MANUAL_POLICY_NAME } from './config.js';
import type { DecisionLog } from './decision-log.js';
import type { EvidenceLog } from './evidence.js';
import type { FirewallSink } from './firewall-sink.js';
import type { InForce } from './in-force.js';
import type { Pipeline } from './pipeline.js';
import { sourceStats, type Supervisor } from './supervisor.js';

export interface ControlParts {
  readonly version: string;
  readonly inForce: InForce;
  readonly decider: Decider;
  readonly sink: FirewallSink;
  readonly publisher: ClusterPublisher | undefined;
  readonly evidence: EvidenceLog;
  readonly decisions: DecisionLog;
  readonly pipeline: Pipeline;
  readonly supervisor: Supervisor;
  readonly now: () => number;
}

export class ControlCommands {
  private readonly startedAt: number;

  constructor(private readonly p: ControlParts) {
    this.startedAt = p.now();
  }

  async status(): Promise<StatusResult> {
    const { decider, sink, inForce: { config } } = this.p;
    const now = this.p.now();
    const active = decider.activeBans(now);
    const s = decider.stats();
    const counters = this.p.pipeline.counters;
    return {
      version: this.p.version,
      pid: process.pid,
      startedAt: this.startedAt,
      configFiles: config.files,
      firewall: sink.backendName,
      sources: [...this.p.supervisor.runners.values()].map((r) => {
        const stats = sourceStats(r.current);
        return {
          name: r.name, type: r.cfg.type, state: r.state, lines: r.lines,
          ...(r.lastError !== undefined && r.state === 'restarting' ? { lastError: r.lastError } : {}),
          ...(stats ? { stats } : {}),
        };
      }),
      policies: config.policies.map((p) => ({
        name: p.name, maxretry: p.maxretry, findtime: p.findtime, bantime: p.bantime, bansActive: active.filter((b) => b.policy === p.name).length,
      })),
      counters: {
        lines: counters.lines,
        parseErrors: counters.parseErrors,
        matches: counters.matches,
        counted: s.counted,
        tracked: s.tracked,
        evictions: s.evictions,
        bans: s.bans,
        operatorBans: s.operatorBans,
        unbans: s.unbans,
        bansActive: active.length,
        allowlistedHits: s.allowlistedHits,
        firewallApplied: sink.stats().applied,
        firewallFailed: sink.stats().failed,
        firewallPending: sink.pending,
      },
    };
  }

  async bans(): Promise<readonly BanEntry[]> {
    return this.p.decider.activeBans(this.p.now()).map((b) => {
      const ev = this.p.evidence.forTarget(b.target);
      return {
        target: b.target, policy: b.policy, until: b.until, level: b.level, ruleId: b.ruleId,
        evidence: ev ? { count: ev.count, firstLine: ev.firstLine, lastLine: ev.lastLine } : { count: 0 },
      };
    });
  }

  async ban(args: { target: Ip | Cidr; policy?: string; durationMs?: number }): Promise<BanResult> {
    const policies = this.p.inForce.config.policies;
    if (args.policy !== undefined && args.policy !== MANUAL_POLICY_NAME && !policies.some((p) => p.name === args.policy)) {
      throw new MailjailError('MJ_CTL_UNKNOWN_POLICY', `unknown policy "${args.policy}"; known: ${[...policies.map((p) => p.name), MANUAL_POLICY_NAME].join(', ')}`);
    }
    const ds = this.p.decider.ban({
      target: args.target, now: this.p.now(),
      ...(args.policy !== undefined ? { policy: args.policy } : {}),
      ...(args.durationMs !== undefined ? { bantime: args.durationMs } : {}),
    });
    for (const d of ds) this.p.decisions.write(d, undefined);
    this.p.publisher?.publish(ds);
    await this.p.sink.push(ds);
    if (!(await this.p.sink.settled(ds, 10_000))) {
      throw new MailjailError('MJ_CTL_FW_PENDING', 'the ban is recorded but the firewall has not applied it yet (it keeps retrying; see the log)');
    }
    const d = ds[0]!;
    if (d.action !== 'ban') throw new MailjailError('MJ_CTL_INTERNAL', 'state returned no ban');
    return { target: d.target, policy: d.policy, until: d.until, level: d.level };
  }

  async unban(args: { target: Ip | Cidr }): Promise<UnbanResult> {
    const ds = this.p.decider.unban({ target: args.target, now: this.p.now() });
    for (const d of ds) this.p.decisions.write(d, undefined);
    this.p.publisher?.publish(ds);
    await this.p.sink.push(ds);
    if (!(await this.p.sink.settled(ds, 10_000))) {
      throw new MailjailError('MJ_CTL_FW_PENDING', 'the unban is recorded but the firewall has not applied it yet (it keeps retrying; see the log)');
    }
    return { target: args.target, removed: ds.some((d) => d.action === 'unban' && d.policy !== undefined) };
  }
}
