// Recognises a log line that reached us twice. Exim's default `syslog_duplication = true` sends
// every line bound for both its main and reject log to syslog twice (same pid, same text, which
// carries Exim's own timestamp); rsyslog forwarding to two collectors, or a duplicating relay, does
// the same for any daemon. Counting both copies would double a user's typos (docs/counting.md).
import { createHash } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import type { LogEvent } from '../types.js';

export interface DuplicateOptions {
  /**
   * Lines of one host, program and pid with the same text this close in event time (ms, inclusive)
   * are one line. Default 500: copies carry the same timestamp (Exim writes both within
   * microseconds; a relay keeps the original time), so with 1 s syslog timestamps this means "the
   * same second", with journald's microseconds "within half a second"; a process repeating a text a
   * second later is a new line. 0 turns the check off.
   */
  readonly duplicateWindowMs?: number;
  /** Recent line fingerprints remembered (LRU). Default 10 000. */
  readonly maxDuplicates?: number;
}

export class DuplicateFilter {
  private readonly window: number;
  /** fingerprint → event time of the copy that counted. */
  private readonly seen: LRUCache<string, number>;
  /** Copies recognised and not counted. */
  duplicates = 0;

  constructor(o: DuplicateOptions = {}) {
    this.window = o.duplicateWindowMs ?? 500;
    this.seen = new LRUCache<string, number>({ max: o.maxDuplicates ?? 10_000 });
  }

  /**
   * Whether `e` repeats a line seen within the window; otherwise remembers it. The window is
   * anchored at the copy that counted (a later copy does not extend it), so one process repeating
   * a line every half second still counts about once a second.
   */
  isDuplicate(e: LogEvent): boolean {
    // Without a pid nothing says the two lines came from one process: two smtpd processes may log
    // the same text in the same second for two real attempts. Real copies (Exim, journald, a
    // relay) carry the pid, so a line without one is always counted.
    if (this.window <= 0 || e.pid === undefined) return false;
    const key = fingerprint(e);
    const first = this.seen.get(key);
    if (first !== undefined && Math.abs(e.time - first) <= this.window) {
      this.duplicates++;
      return true;
    }
    this.seen.set(key, e.time);
    return false;
  }
}

/**
 * A fixed-size digest of host, program, pid and text: the text is attacker-influenced and up to
 * 64 KiB, so it is not kept as a key. 128 bits of SHA-256 make a chance collision (which would drop
 * a line) negligible and a chosen one impractical.
 */
function fingerprint(e: LogEvent): string {
  return createHash('sha256')
    .update(`${e.host}\0${e.program}\0${e.pid ?? ''}\0`)
    .update(e.message)
    .digest('base64')
    .slice(0, 22);
}
