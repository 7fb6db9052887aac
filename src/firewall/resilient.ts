// The wrapper the daemon talks to: queues decisions, retries failures with exponential backoff,
// counts them, and never drops a decision it could still apply (a refused target is reported,
// not retried). It also watches the kernel: a set or hook that vanished is recreated and refilled
// from the ledger (which the state stage owns: we only read it through `activeBans`), entries that
// vanished from a set still in place (`ipset flush`, `nft flush set`) are put back, and a set
// reaching 80 % of its capacity is reported before it overflows.
import type { ApplyReport, BanDecision, Cidr, FirewallBackend, Ip } from '../types.js';
import { hasStatus, isPermanent, type FirewallStatus } from './backend.js';
import { codeOf, FW_CODES } from './exec.js';
import { reconcile, type ReconcileReport } from './reconcile.js';
import { checkTarget, laterUntil, ledgerKey, merge } from './targets.js';

/** An expected entry ending sooner than this is not reported missing (the kernel counts whole seconds). */
const EXPIRY_GRACE_MS = 2000;

export type FirewallEvent =
  | { readonly type: 'failure'; readonly error: Error; readonly pending: number }
  | { readonly type: 'retry'; readonly attempt: number; readonly delayMs: number; readonly pending: number }
  | { readonly type: 'rejected'; readonly decision: BanDecision; readonly error: Error }
  | { readonly type: 'recovered'; readonly reason: string; readonly reconcile: ReconcileReport | undefined }
  /** Active bans found missing from sets that are still in place, and re-applied (their remaining time). */
  | { readonly type: 'repaired'; readonly missing: number; readonly v4: number; readonly v6: number; readonly sample: readonly string[] }
  | { readonly type: 'near-full'; readonly family: 'v4' | 'v6'; readonly entries: number; readonly maxelem: number };

export interface ResilientOptions {
  /**
   * The ledger's active bans as (target, until ms) pairs, read on start and after a set was lost.
   * A target may appear once per policy: the latest end wins.
   */
  readonly activeBans?: () => Iterable<readonly [string, number]>;
  readonly onEvent?: (e: FirewallEvent) => void;
  /** First retry delay (default 250 ms), doubled per failed attempt up to maxDelayMs (default 30 s). */
  readonly baseDelayMs?: number;
  readonly maxDelayMs?: number;
  /** How often start() schedules check() (default 30 s; 0 = never, the caller calls check()). */
  readonly checkIntervalMs?: number;
  /**
   * Every check compares entry counts with the active bans and lists the sets in full when a
   * family holds fewer than expected; every `fullCheckEvery`-th check (default 10) lists them in
   * full anyway, which also finds entries deleted one by one while others were added.
   */
  readonly fullCheckEvery?: number;
  /** Fill ratio that raises 'near-full' (default 0.8). */
  readonly warnRatio?: number;
}

export interface FirewallStats {
  /** Decisions applied. */
  applied: number;
  /** Failed apply attempts (each may cover many decisions). */
  failures: number;
  retries: number;
  /** Times the sets/hooks were recreated and refilled. */
  recoveries: number;
  /** Entries put back because the kernel had lost them (refilled sets and content checks). */
  repairs: number;
  /** Decisions refused for good (invalid target, overlap), reported through 'rejected'. */
  rejected: number;
  /** Decisions waiting in the queue. */
  pending: number;
  lastError: string | undefined;
}

export class ResilientFirewall implements FirewallBackend {
  readonly name: string;
  private readonly queue = new Map<string, BanDecision>();
  /**
   * The end of the ban each target is meant to have in the kernel (0 = none): what start/repair
   * reconciled plus every ban since. A ban never shortens a longer one still running (another
   * policy's); only an unban lifts it. Bounded by the active bans; expired ones are pruned.
   */
  private readonly banned = new Map<string, number>();
  private chain: Promise<unknown> = Promise.resolve();
  private attempt = 0;
  private retryTimer: NodeJS.Timeout | undefined;
  private checkTimer: NodeJS.Timeout | undefined;
  private needRecover = false;
  private checking = false;
  private checks = 0;
  private closed = false;
  private readonly s: FirewallStats = { applied: 0, failures: 0, retries: 0, recoveries: 0, repairs: 0, rejected: 0, pending: 0, lastError: undefined };

  constructor(readonly backend: FirewallBackend, private readonly opts: ResilientOptions = {}) {
    this.name = backend.name;
  }

  private emit(e: FirewallEvent): void {
    try { this.opts.onEvent?.(e); } catch { /* a logging fault must not break the sink */ }
  }

  /** Checks the tools, creates sets and hooks, reconciles with the ledger, starts the periodic check. */
  async start(): Promise<ReconcileReport | undefined> {
    await this.backend.healthcheck();
    await this.backend.ensure();
    const rep = this.opts.activeBans ? await this.reconcileLedger() : undefined;
    const every = this.opts.checkIntervalMs ?? 30_000;
    if (every > 0 && !this.checkTimer) {
      this.checkTimer = setInterval(() => {
        if (this.checking) return; // a slow check (loaded host, large sets) never piles up behind itself
        this.checking = true;
        this.check().catch((e: unknown) => this.fail(e as Error)).finally(() => { this.checking = false; });
      }, every);
      this.checkTimer.unref();
    }
    return rep;
  }

  healthcheck(): Promise<void> { return this.backend.healthcheck(); }
  ensure(): Promise<void> { return this.backend.ensure(); }
  list(): Promise<ReadonlyMap<string, number>> { return this.backend.list(); }

  async stop(opts: { purge?: boolean } = {}): Promise<void> {
    this.close();
    await this.backend.stop(opts);
  }

  /** Stops timers (queued decisions stay queued; see stats().pending). */
  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.checkTimer);
    this.retryTimer = undefined;
    this.checkTimer = undefined;
  }

  stats(): Readonly<FirewallStats> {
    return { ...this.s, pending: this.queue.size };
  }

  /** Decisions still waiting (oldest first). */
  pending(): BanDecision[] {
    return [...this.queue.values()];
  }

  /** Queues the batch and tries to apply everything queued. The report covers this attempt. */
  apply(batch: readonly BanDecision[]): Promise<ApplyReport> {
    const now = Date.now();
    for (const d of batch) {
      const key = checkTarget(d.target)?.key;
      if (key === undefined) {
        this.queue.set(`invalid:${++this.invalidSeq}`, d); // the backend refuses and reports it
        continue;
      }
      let next = merge(this.queue.get(key), d);
      if (next.action === 'ban') {
        const running = this.banned.get(key);
        if (running !== undefined && (running === 0 || running > now)) {
          const until = laterUntil(running, next.until);
          if (until !== next.until) next = { ...next, until };
        }
        this.banned.set(key, next.until);
      } else {
        this.banned.delete(key);
      }
      // Re-inserting moves the target behind older ones.
      this.queue.delete(key);
      this.queue.set(key, next);
    }
    if (this.banned.size > 4096 && this.banned.size > 2 * this.lastPruneSize) this.prune(now);
    return this.flush();
  }

  private lastPruneSize = 0;
  private invalidSeq = 0;

  private prune(now: number): void {
    for (const [k, until] of this.banned) if (until !== 0 && until <= now) this.banned.delete(k);
    this.lastPruneSize = this.banned.size;
  }

  /** Reconciles the kernel with the ledger and takes the ledger as the ban ends to keep. */
  private async reconcileLedger(): Promise<ReconcileReport | undefined> {
    if (!this.opts.activeBans) return undefined;
    const ledger = [...this.opts.activeBans()]; // read once: it may be a one-shot iterator
    const rep = await reconcile(this.backend, ledger);
    this.banned.clear();
    for (const [target, until] of ledger) {
      const key = ledgerKey(target);
      if (key === undefined) continue;
      const prev = this.banned.get(key);
      this.banned.set(key, prev === undefined ? until : laterUntil(prev, until));
    }
    // What the backend refuses for good (e.g. IPv6 with ipv6: false) is not meant to be in the kernel.
    for (const f of rep.failed) {
      if (f.decision.action === 'ban' && isPermanent(f.error)) this.banned.delete(ledgerKey(f.decision.target) ?? '');
    }
    return rep;
  }

  /** One apply attempt over the whole queue, serialised with any other. */
  flush(): Promise<ApplyReport> {
    return this.serial(() => this.flushOnce());
  }

  /** Runs `fn` after everything already started on the kernel (applies and repairs never interleave). */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private fail(e: Error): void {
    this.s.failures++;
    this.s.lastError = e.message;
    this.emit({ type: 'failure', error: e, pending: this.queue.size });
  }

  private async flushOnce(): Promise<ApplyReport> {
    if (this.queue.size === 0) return { applied: 0, failed: [] };
    if (this.needRecover) {
      try { await this.recover('a set was missing'); } catch (e) { this.fail(e as Error); this.scheduleRetry(); return { applied: 0, failed: [...this.queue.values()].map((decision) => ({ decision, error: e as Error })) }; }
    }
    const snapshot = [...this.queue.entries()];
    let rep: ApplyReport;
    try {
      rep = await this.backend.apply(snapshot.map(([, d]) => d));
    } catch (e) {
      rep = { applied: 0, failed: snapshot.map(([, decision]) => ({ decision, error: e as Error })) };
    }
    const failed = new Map(rep.failed.map((f) => [f.decision, f.error]));
    let retry: Error | undefined;
    for (const [key, d] of snapshot) {
      const err = failed.get(d);
      if (err !== undefined && !isPermanent(err)) {
        retry ??= err;
        if (codeOf(err) === FW_CODES.SET_MISSING) this.needRecover = true;
        continue;
      }
      if (this.queue.get(key) === d) this.queue.delete(key); // unless a newer decision replaced it meanwhile
      if (err !== undefined) {
        // Refused for good: not in the kernel, so the content check must not keep putting it back.
        if (d.action === 'ban' && this.banned.get(key) === d.until && !this.queue.has(key)) this.banned.delete(key);
        this.s.rejected++;
        this.emit({ type: 'rejected', decision: d, error: err });
      }
    }
    this.s.applied += rep.applied;
    if (retry) {
      this.fail(retry);
      this.scheduleRetry();
    } else {
      this.attempt = 0;
    }
    return rep;
  }

  private scheduleRetry(): void {
    if (this.retryTimer || this.closed) return;
    const base = this.opts.baseDelayMs ?? 250;
    const delayMs = Math.min(this.opts.maxDelayMs ?? 30_000, base * 2 ** this.attempt);
    this.attempt++;
    this.emit({ type: 'retry', attempt: this.attempt, delayMs, pending: this.queue.size });
    this.retryTimer = setTimeout(() => {
      this.retryTimer = undefined;
      this.s.retries++;
      this.flush().catch((e: unknown) => { this.fail(e as Error); this.scheduleRetry(); });
    }, delayMs);
    this.retryTimer.unref();
  }

  /** Recreates sets and hooks, then refills them from the ledger. */
  async recover(reason: string): Promise<ReconcileReport | undefined> {
    await this.backend.ensure();
    const rep = await this.reconcileLedger();
    this.needRecover = false;
    this.s.recoveries++;
    this.s.repairs += rep?.added ?? 0;
    this.emit({ type: 'recovered', reason, reconcile: rep });
    return rep;
  }

  /**
   * Looks at the kernel: recreates and refills what vanished (sets, hooks, or entries of sets still
   * in place), warns when a set is 80 % full. Returns the status seen (before any repair), or
   * undefined for backends without one.
   */
  async check(): Promise<FirewallStatus | undefined> {
    this.prune(Date.now());
    if (!hasStatus(this.backend)) return undefined;
    const st = await this.backend.status();
    if (!st.present || !st.hooked) {
      const what = !st.present ? 'sets/table missing' : 'hook missing';
      await this.serial(() => this.recover(`${what}: recreated and refilled`));
    } else {
      const full = ++this.checks % Math.max(1, this.opts.fullCheckEvery ?? 10) === 0;
      await this.serial(() => this.repairMissing(full ? undefined : st));
    }
    const ratio = this.opts.warnRatio ?? 0.8;
    for (const family of ['v4', 'v6'] as const) {
      const n = st.entries[family];
      if (n >= ratio * st.maxelem) this.emit({ type: 'near-full', family, entries: n, maxelem: st.maxelem });
    }
    return st;
  }

  /**
   * The bans the kernel must hold now, key → until: those handed to this firewall (reconciled or
   * applied since, and not refused) that the ledger still lists as active. Both sides are needed:
   * a ban the ledger has but the daemon has not handed on yet is on its way, and a ban handed on
   * that the ledger no longer lists is being lifted.
   */
  private expected(now: number): Map<string, number> {
    const out = new Map<string, number>();
    let ledger: Set<string> | undefined;
    if (this.opts.activeBans) {
      ledger = new Set();
      for (const [target] of this.opts.activeBans()) {
        // The state stage writes canonical keys: parse (costly at 10k+) only what is not one already.
        const key = this.banned.has(target) ? target : ledgerKey(target);
        if (key !== undefined) ledger.add(key);
      }
    }
    for (const [key, until] of this.banned) {
      // An entry about to end may already be gone from the kernel by its own timeout.
      if (until !== 0 && until - now < EXPIRY_GRACE_MS) continue;
      if (ledger && !ledger.has(key)) continue;
      out.set(key, until);
    }
    return out;
  }

  /**
   * Content check (runs serialised with applies, so nothing is in flight): every expected ban
   * missing from the kernel is queued again with its own end (the kernel gets the remaining time)
   * and applied through the ordinary path, so a failure is retried like any other. With `counts`
   * (the status just read) the sets are listed only when a family holds fewer entries than
   * expected: listing and parsing 10,000 entries takes 0.1–0.5 s of CPU (docs/firewall.md).
   */
  private async repairMissing(counts?: FirewallStatus): Promise<number> {
    const now = Date.now();
    const want = this.expected(now);
    if (want.size === 0) return 0;
    if (counts) {
      let v6 = 0;
      for (const key of want.keys()) if (key.includes(':')) v6++;
      const held = counts.held ?? counts.entries;
      if (held.v4 >= want.size - v6 && held.v6 >= v6) return 0;
    }
    const kernel = await this.backend.list();
    const missing: BanDecision[] = [];
    let v6 = 0;
    for (const [key, until] of want) {
      if (kernel.has(key) || this.queue.has(key)) continue; // present, or still waiting to go in
      if (key.includes(':')) v6++;
      missing.push({ action: 'ban', target: key as Ip | Cidr, until, level: 0, policy: 'repair', ruleId: 'repair', evidence: [] });
    }
    if (missing.length === 0) return 0;
    for (const d of missing) this.queue.set(String(d.target), d);
    this.s.repairs += missing.length;
    this.emit({ type: 'repaired', missing: missing.length, v4: missing.length - v6, v6, sample: missing.slice(0, 5).map((d) => String(d.target)) });
    await this.flushOnce();
    return missing.length;
  }

  /** Tries until the queue is empty or `timeoutMs` passed (shutdown). Returns what is still pending. */
  async drain(timeoutMs = 5000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    let delay = 50;
    while (this.queue.size > 0 && Date.now() < deadline) {
      await this.flush();
      if (this.queue.size === 0) break;
      await new Promise((r) => setTimeout(r, Math.min(delay, Math.max(0, deadline - Date.now()))));
      delay = Math.min(delay * 2, 1000);
    }
    return this.queue.size;
  }
}
