// Dry-run backend: keeps the would-be kernel state in memory (with the same per-entry timeouts
// and the same validation) and records, in ipset-restore syntax, what it would have run.
// Used by `check`, by `--dry-run` and by tests; it passes the same conformance suite as the real ones.
import type { ApplyReport, BanDecision } from '../types.js';
import { resolveFirewallConfig, type ResolvedFirewallConfig } from './config.js';
import { FirewallError, FW_CODES } from './exec.js';
import { report, type FirewallStatus, type KernelFirewall } from './backend.js';
import type { BackendOptions } from './ipset.js';
import { prepare, timeoutFor, type Item } from './targets.js';

export class DryRunBackend implements KernelFirewall {
  readonly name = 'dry-run';
  /**
   * The lines it would have run, in order (`create ...`, `add <set> <key> timeout N`, `del ...`);
   * the oldest half is dropped past 100,000 lines (a long `--dry-run` must stay bounded).
   */
  readonly log: string[] = [];
  /** Lines dropped from the front of `log`. */
  logDropped = 0;
  private readonly now: () => number;
  private readonly cfg: ResolvedFirewallConfig;
  private present = false;
  private hooked = false;
  private readonly entries = new Map<string, number>(); // key → expiry ms (0 = none)

  constructor(cfg: ResolvedFirewallConfig = resolveFirewallConfig({ backend: 'dry-run' }), opts: Pick<BackendOptions, 'now'> = {}) {
    this.cfg = cfg;
    this.now = opts.now ?? Date.now;
  }

  private set(item: Item): string {
    return item.target.family === 4 ? this.cfg.set4 : this.cfg.set6;
  }

  private record(...lines: string[]): void {
    this.log.push(...lines);
    if (this.log.length > 100_000) {
      const n = this.log.length >> 1;
      this.log.splice(0, n);
      this.logDropped += n;
    }
  }

  private expire(): void {
    const now = this.now();
    for (const [k, exp] of this.entries) if (exp !== 0 && exp <= now) this.entries.delete(k);
  }

  async healthcheck(): Promise<void> {}

  async ensure(): Promise<void> {
    if (!this.present) this.record(`create ${this.cfg.set4} hash:net family inet timeout 0 maxelem ${this.cfg.maxelem}`, `create ${this.cfg.set6} hash:net family inet6 timeout 0 maxelem ${this.cfg.maxelem}`);
    if (!this.hooked) this.record(`hook INPUT -> ${this.cfg.chain}`);
    this.present = true;
    this.hooked = true;
  }

  async apply(batch: readonly BanDecision[]): Promise<ApplyReport> {
    const { items, refused } = prepare(batch, { ipv6: this.cfg.ipv6 });
    if (!this.present) {
      const err = new FirewallError(FW_CODES.SET_MISSING, `set ${this.cfg.set4} does not exist (dry-run: ensure() not called)`, 'dry-run', '');
      return report([], items.map((item) => ({ item, error: err })), refused);
    }
    this.expire();
    const now = this.now();
    const ok: Item[] = [];
    const failed: { item: Item; error: Error }[] = [];
    // Entries per family, counted once per batch and kept up to date (not recounted per ban).
    let v6 = 0;
    for (const k of this.entries.keys()) if (k.includes(':')) v6++;
    const size = { 4: this.entries.size - v6, 6: v6 };
    for (const item of items) {
      const d = item.decision;
      const key = item.target.key;
      if (d.action === 'unban') {
        if (this.entries.delete(key)) size[item.target.family]--;
        this.record(`del ${this.set(item)} ${key}`);
      } else {
        const t = timeoutFor(d.until, now);
        if (t !== undefined) {
          const isNew = !this.entries.has(key);
          if (isNew && size[item.target.family] >= this.cfg.maxelem) {
            failed.push({ item, error: new FirewallError(FW_CODES.SET_FULL, `set ${this.set(item)} is full (${this.cfg.maxelem})`, 'dry-run', '') });
            continue;
          }
          this.entries.set(key, t === 0 ? 0 : now + t * 1000);
          if (isNew) size[item.target.family]++;
          this.record(`add ${this.set(item)} ${key} timeout ${t}`);
        }
      }
      ok.push(item);
    }
    return report(ok, failed, refused);
  }

  async list(): Promise<ReadonlyMap<string, number>> {
    if (!this.present) throw new FirewallError(FW_CODES.SET_MISSING, `set ${this.cfg.set4} does not exist`, 'dry-run', '');
    this.expire();
    return new Map(this.entries);
  }

  async status(): Promise<FirewallStatus> {
    this.expire();
    let v6 = 0;
    for (const k of this.entries.keys()) if (k.includes(':')) v6++;
    return { present: this.present, hooked: this.hooked, entries: { v4: this.entries.size - v6, v6 }, maxelem: this.cfg.maxelem };
  }

  async stop(opts: { purge?: boolean } = {}): Promise<void> {
    this.hooked = false;
    this.record(`unhook INPUT -> ${this.cfg.chain}`);
    if (opts.purge) {
      this.present = false;
      this.entries.clear();
      this.record(`destroy ${this.cfg.set4}`, `destroy ${this.cfg.set6}`);
    }
  }

  /** Test hook: behave as if someone emptied the sets behind our back (`ipset flush`), keeping them. */
  simulateFlush(): void {
    this.entries.clear();
  }

  /** Test hook: behave as if someone destroyed the sets behind our back. */
  simulateLoss(): void {
    this.present = false;
    this.hooked = false;
    this.entries.clear();
  }
}
