// The daemon's handle on the firewall stage: the firewall's own ResilientFirewall does queueing,
// retries, recovery and reconcile; this adds what the daemon needs on top — latency and counter
// metrics, log lines for its events, and "wait until these decisions are in the kernel" for
// operator commands. The state stage never waits on the kernel.
import type { Logger } from 'pino';
import { ResilientFirewall, type FirewallEvent } from '../firewall/index.js';
import { checkTarget } from '../firewall/targets.js';
import type { BanDecision, FirewallBackend } from '../types.js';
import type { Counter } from 'prom-client';
import type { Metrics } from './metrics.js';
import { RateLimitedLog } from './rate-limit.js';

/** What the kernel must hold (target → until ms), for start-up reconcile, recovery and repair. */
export type KernelBans = () => ReadonlyMap<string, number>;

export interface FirewallSinkOptions {
  readonly checkIntervalMs?: number;
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
}

export class FirewallSink {
  readonly fw: ResilientFirewall;
  private readonly warn: RateLimitedLog;
  private seen = { applied: 0, failures: 0, rejected: 0, repairs: 0 };
  /** Entries put back into the kernel after it lost them (flushed set, recreated set). */
  private readonly repairs: Counter<'backend'>;
  /** Given at start(): the firewall reconciles with nothing before it is started. */
  private kernelBans: KernelBans = () => new Map();

  constructor(backend: FirewallBackend, private readonly metrics: Metrics, private readonly log: Logger, opts: FirewallSinkOptions = {}) {
    this.warn = new RateLimitedLog(log, { intervalMs: 60_000 });
    this.repairs = metrics.counter('mailjail_firewall_repairs_total', 'Ban entries re-applied because the kernel had lost them (set flushed or recreated), by backend', ['backend']);
    this.fw = new ResilientFirewall(backend, {
      activeBans: () => this.kernelBans(),
      onEvent: (e) => this.onEvent(e),
      ...(opts.checkIntervalMs !== undefined ? { checkIntervalMs: opts.checkIntervalMs } : {}),
      ...(opts.baseDelayMs !== undefined ? { baseDelayMs: opts.baseDelayMs } : {}),
      ...(opts.maxDelayMs !== undefined ? { maxDelayMs: opts.maxDelayMs } : {}),
    });
  }

  get backendName(): string {
    return this.fw.name;
  }

  get pending(): number {
    return this.fw.stats().pending;
  }

  stats(): { applied: number; failed: number; pending: number } {
    const s = this.fw.stats();
    return { applied: s.applied, failed: s.failures + s.rejected, pending: s.pending };
  }

  /**
   * healthcheck + ensure + reconcile with `kernelBans` (the ledger's bans, and the cluster's applied
   * here); throws when the firewall cannot be set up. Taking them here rather than at construction
   * lets the cluster enforcer, which applies through this sink, be built after it.
   */
  async start(kernelBans: KernelBans): Promise<void> {
    this.kernelBans = kernelBans;
    const rep = await this.fw.start();
    if (rep) {
      this.log.info({ added: rep.added, updated: rep.updated, removed: rep.removed, kept: rep.kept, failed: rep.failed.length },
        'firewall reconciled with the ledger');
    }
    this.syncCounters();
  }

  /** Hands decisions on; failures are retried by the firewall stage. Never throws. */
  async push(decisions: readonly BanDecision[]): Promise<void> {
    if (decisions.length === 0) return;
    const t0 = process.hrtime.bigint();
    try {
      await this.fw.apply(decisions);
    } catch (e) {
      this.warn.warn('apply', { err: (e as Error).message }, 'firewall apply failed; will retry');
    }
    this.metrics.firewallLatency.observe({ backend: this.fw.name }, Number(process.hrtime.bigint() - t0) / 1e9);
    this.syncCounters();
  }

  /** Resolves true once none of `decisions` waits in the firewall queue, false after `timeoutMs`. */
  async settled(decisions: readonly BanDecision[], timeoutMs: number): Promise<boolean> {
    const keys = new Set(decisions.map((d) => checkTarget(d.target)?.key ?? String(d.target)));
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const waiting = this.fw.pending().some((d) => keys.has(checkTarget(d.target)?.key ?? String(d.target)));
      if (!waiting) return true;
      if (Date.now() >= deadline) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Shutdown: tries to empty the queue, then stops timers. Sets and hooks stay (bans persist). */
  async close(timeoutMs: number): Promise<number> {
    const left = await this.fw.drain(timeoutMs);
    this.fw.close();
    this.syncCounters();
    return left;
  }

  /** Feeds the firewall stage's own counters into Prometheus (deltas). */
  syncCounters(): void {
    const s = this.fw.stats();
    const b = { backend: this.fw.name };
    if (s.applied > this.seen.applied) this.metrics.bansApplied.inc(b, s.applied - this.seen.applied);
    const failed = s.failures + s.rejected;
    const seenFailed = this.seen.failures + this.seen.rejected;
    if (failed > seenFailed) this.metrics.bansFailed.inc(b, failed - seenFailed);
    if (s.repairs > this.seen.repairs) this.repairs.inc(b, s.repairs - this.seen.repairs);
    this.seen = { applied: s.applied, failures: s.failures, rejected: s.rejected, repairs: s.repairs };
  }

  private onEvent(e: FirewallEvent): void {
    switch (e.type) {
      case 'failure':
        this.warn.warn('fw-failure', { err: e.error.message, code: (e.error as { code?: string }).code, pending: e.pending }, 'firewall failure; decisions kept and retried');
        break;
      case 'retry':
        this.log.debug({ attempt: e.attempt, delayMs: e.delayMs, pending: e.pending }, 'firewall retry scheduled');
        break;
      case 'rejected':
        this.log.error({ target: String(e.decision.target), action: e.decision.action, err: e.error.message }, 'firewall refused a decision for good');
        break;
      case 'recovered':
        this.log.warn({ reason: e.reason, ...(e.reconcile ? { added: e.reconcile.added, removed: e.reconcile.removed } : {}) }, 'firewall sets/hooks recreated and refilled');
        this.syncCounters();
        break;
      case 'repaired':
        // Not rate-limited: each one means someone emptied our sets, and says how much was lost.
        this.log.warn({ missing: e.missing, v4: e.v4, v6: e.v6, sample: e.sample },
          `${e.missing} active ban(s) were missing from the kernel (set flushed behind our back?): re-applied with their remaining time`);
        this.syncCounters();
        break;
      case 'near-full':
        this.warn.warn(`near-full ${e.family}`, { family: e.family, entries: e.entries, maxelem: e.maxelem }, 'ban set is over 80 % full: raise firewall.maxelem');
        break;
    }
  }
}
