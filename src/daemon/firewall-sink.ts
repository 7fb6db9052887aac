// The queue between state and the firewall: decisions are batched (one apply() per burst),
// applied in order, and retried with backoff when the backend fails — never dropped. The state
// stage never waits on the kernel; only operator commands await their own decisions.
import type { Logger } from 'pino';
import type { BanDecision, FirewallBackend } from '../types.js';
import type { Metrics } from './metrics.js';
import { RateLimitedLog } from './rate-limit.js';

export interface FirewallSinkOptions {
  /** Wait this long after the first queued decision to gather a batch (ms). */
  readonly batchDelayMs?: number;
  readonly maxBatch?: number;
  /** Retry backoff: first delay and cap (ms). */
  readonly retryBaseMs?: number;
  readonly retryMaxMs?: number;
  readonly now?: () => number;
}

interface Pending {
  readonly d: BanDecision;
  readonly done: () => void;
}

export class FirewallSink {
  private queue: Pending[] = [];
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private failures = 0;
  private closed = false;
  private readonly warn: RateLimitedLog;
  private readonly now: () => number;
  /** Decisions applied / failed (attempts) over the lifetime. */
  readonly stats = { applied: 0, failed: 0, batches: 0, skippedExpired: 0 };

  constructor(
    private backend: FirewallBackend,
    private readonly metrics: Metrics,
    private readonly log: Logger,
    private readonly opts: FirewallSinkOptions = {},
  ) {
    this.warn = new RateLimitedLog(log, { intervalMs: 60_000 });
    this.now = opts.now ?? Date.now;
  }

  get backendName(): string {
    return this.backend.name;
  }

  get pending(): number {
    return this.queue.length;
  }

  /** Queues decisions; the promise resolves once they are applied (it waits through retries). */
  push(decisions: readonly BanDecision[]): Promise<void> {
    if (decisions.length === 0) return Promise.resolve();
    const all = decisions.map((d) => new Promise<void>((done) => this.queue.push({ d, done })));
    this.schedule(this.opts.batchDelayMs ?? 20);
    return Promise.all(all).then(() => undefined);
  }

  /** Applies everything queued now; resolves when the queue is empty or `timeoutMs` passed (false). */
  async flush(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length > 0 || this.running) {
      if (Date.now() >= deadline) return false;
      if (this.timer) {
        clearTimeout(this.timer);
        this.timer = undefined;
      }
      if (!this.running) this.running = this.run();
      await Promise.race([this.running, new Promise((r) => setTimeout(r, Math.max(1, deadline - Date.now())))]);
      if (this.queue.length > 0 && this.failures > 0) await new Promise((r) => setTimeout(r, Math.min(200, Math.max(1, deadline - Date.now()))));
    }
    return true;
  }

  /** Stops scheduling (pending decisions stay in the ledger and are re-applied at next start). */
  close(): void {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private schedule(delay: number): void {
    if (this.closed || this.timer || this.running) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.running = this.run();
    }, delay);
    this.timer.unref?.();
  }

  private async run(): Promise<void> {
    try {
      while (this.queue.length > 0) {
        const now = this.now();
        const batch = this.queue.splice(0, this.opts.maxBatch ?? 5000);
        // A ban whose time is already over needs no kernel entry (e.g. a retry after a long outage).
        const live = batch.filter((p) => p.d.action !== 'ban' || p.d.until > now);
        for (const p of batch) if (!live.includes(p)) { this.stats.skippedExpired++; p.done(); }
        if (live.length === 0) continue;
        const name = this.backend.name;
        const t0 = process.hrtime.bigint();
        let failed: Set<BanDecision>;
        let error: Error | undefined;
        try {
          const report = await this.backend.apply(live.map((p) => p.d));
          failed = new Set(report.failed.map((f) => f.decision));
          error = report.failed[0]?.error;
        } catch (e) {
          failed = new Set(live.map((p) => p.d));
          error = e as Error;
        }
        this.metrics.firewallLatency.observe({ backend: name }, Number(process.hrtime.bigint() - t0) / 1e9);
        this.stats.batches++;
        const retry: Pending[] = [];
        for (const p of live) {
          if (failed.has(p.d)) {
            retry.push(p);
            this.stats.failed++;
            this.metrics.bansFailed.inc({ backend: name, action: p.d.action });
          } else {
            this.stats.applied++;
            this.metrics.bansApplied.inc({ backend: name, action: p.d.action });
            p.done();
          }
        }
        if (retry.length > 0) {
          // Back in front, in order: a later unban must not overtake the ban it lifts.
          this.queue.unshift(...retry);
          this.failures++;
          const delay = Math.min(this.opts.retryMaxMs ?? 30_000, (this.opts.retryBaseMs ?? 500) * 2 ** Math.min(this.failures - 1, 16));
          this.warn.warn('firewall-apply', { backend: name, failed: retry.length, retryInMs: delay, err: error?.message }, 'firewall apply failed; will retry');
          if (this.closed) return;
          await new Promise((r) => setTimeout(r, delay).unref?.());
          if (this.closed) return;
        } else {
          this.failures = 0;
        }
      }
    } finally {
      this.running = undefined;
    }
  }
}
