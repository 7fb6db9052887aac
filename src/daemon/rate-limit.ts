// Rate-limited warnings: a botnet or a broken peer can make the same warning fire thousands of
// times a second; the admin needs the first one, then a count. One instance per concern.
import type { Logger } from 'pino';

export interface RateLimitOptions {
  /** At most one line per key per interval (ms). */
  readonly intervalMs: number;
  /** Keys remembered at most (oldest forgotten first) — keys may be attacker-chosen. */
  readonly maxKeys?: number;
  readonly now?: () => number;
}

interface Slot {
  last: number;
  suppressed: number;
}

export class RateLimitedLog {
  private readonly slots = new Map<string, Slot>();
  private readonly maxKeys: number;
  private readonly now: () => number;
  /** Lines not written because of the limit, over the lifetime. */
  suppressedTotal = 0;

  constructor(private readonly log: Logger, private readonly opts: RateLimitOptions) {
    this.maxKeys = opts.maxKeys ?? 1000;
    this.now = opts.now ?? Date.now;
  }

  warn(key: string, obj: Record<string, unknown>, msg: string): boolean {
    return this.emit('warn', key, obj, msg);
  }

  info(key: string, obj: Record<string, unknown>, msg: string): boolean {
    return this.emit('info', key, obj, msg);
  }

  error(key: string, obj: Record<string, unknown>, msg: string): boolean {
    return this.emit('error', key, obj, msg);
  }

  /** Returns true when the line was written. */
  private emit(level: 'info' | 'warn' | 'error', key: string, obj: Record<string, unknown>, msg: string): boolean {
    const t = this.now();
    const slot = this.slots.get(key);
    if (slot && t - slot.last < this.opts.intervalMs) {
      slot.suppressed++;
      this.suppressedTotal++;
      return false;
    }
    const suppressed = slot?.suppressed ?? 0;
    this.slots.delete(key); // re-insert: Map order is our LRU order
    this.slots.set(key, { last: t, suppressed: 0 });
    if (this.slots.size > this.maxKeys) this.slots.delete(this.slots.keys().next().value!);
    this.log[level](suppressed > 0 ? { ...obj, suppressed } : obj, suppressed > 0 ? `${msg} (${suppressed} similar suppressed)` : msg);
    return true;
  }
}
