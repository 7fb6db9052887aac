// Outages of our own auth back end, told by `server-error` lines (docs/counting.md). While a host's
// back end fails, every client of that host fails too and the logs read like wrong passwords: those
// failures are not the clients' fault, so state counts nothing from that host until it is quiet again.
import { LRUCache } from 'lru-cache';
import type { Ip } from '../types.js';

export interface OutageOptions {
  /** An outage of a host ends this long (ms) after its last server-error line. Default 60 s. */
  readonly outageHoldMs?: number;
  /**
   * A failure of an address this close (ms, either side) to a server-error line of the same address
   * is that attempt's client-facing line and adds 0, whatever the host. Default 5 s: the MTA logs
   * its line as soon as the auth process answers; a wider window would excuse the next guesses of
   * an attacker whose one attempt met a failing back end.
   */
  readonly serverErrorPairMs?: number;
  /** Addresses with a recent server-error line remembered (LRU). Default 20 000. */
  readonly maxServerErrorAddresses?: number;
}

/**
 * One outage of one host. `end` is when counting resumes: the last server-error line + the hold, or
 * the back end's first verdict after it.
 */
export interface Outage {
  readonly host: string;
  readonly start: number;
  readonly end: number;
  /** Server-error lines seen during it. */
  readonly errors: number;
  /** Failure lines it made count nothing. */
  readonly excused: number;
}

interface Open {
  start: number;
  last: number;
  errors: number;
  excused: number;
}

export class OutageDetector {
  private readonly hold: number;
  private readonly pairMs: number;
  /** host → its outage in progress. Few entries: one per mail host whose back end fails now. */
  private readonly open = new Map<string, Open>();
  /** ip → time of its last server-error line. */
  private readonly lastError: LRUCache<Ip, number>;
  /** Outages started, over all hosts. */
  started = 0;

  constructor(o: OutageOptions = {}) {
    this.hold = o.outageHoldMs ?? 60_000;
    this.pairMs = o.serverErrorPairMs ?? 5_000;
    this.lastError = new LRUCache<Ip, number>({ max: o.maxServerErrorAddresses ?? 20_000 });
  }

  /** Records a server-error line; returns true when it starts an outage of its host. */
  serverError(host: string, ip: Ip, now: number): boolean {
    this.lastError.set(ip, Math.max(now, this.lastError.get(ip) ?? now));
    const o = this.open.get(host);
    if (o && now - o.last <= this.hold) {
      o.last = Math.max(o.last, now);
      o.errors++;
      return false;
    }
    this.open.set(host, { start: now, last: now, errors: 1, excused: 0 });
    this.started++;
    return true;
  }

  /**
   * Whether a failure line of `ip` from `host` at `now` is excused: its host is in an outage, or the
   * same address had a server-error line within the pairing window (the same attempt). Counts the
   * excused line into the host's outage.
   */
  excuses(host: string, ip: Ip, now: number): boolean {
    const o = this.open.get(host);
    if (o && now - o.last <= this.hold && now >= o.start) {
      o.excused++;
      return true;
    }
    const t = this.lastError.get(ip);
    if (t !== undefined && Math.abs(now - t) <= this.pairMs) {
      if (o) o.excused++;
      return true;
    }
    return false;
  }

  /**
   * The back end of `host` gave a verdict (Dovecot's auth process said "Password mismatch"): it can
   * read its passdb again, so its outage ends now. Returns the ended outage.
   */
  recovered(host: string, now: number): Outage | undefined {
    const o = this.open.get(host);
    if (!o || now < o.last) return undefined;
    this.open.delete(host);
    return { host, start: o.start, end: now, errors: o.errors, excused: o.excused };
  }

  /** Ends and returns the outages that have been quiet for the hold time at `now`. */
  expire(now: number): Outage[] {
    if (this.open.size === 0) return [];
    const out: Outage[] = [];
    for (const [host, o] of this.open) {
      if (now - o.last <= this.hold) continue;
      this.open.delete(host);
      out.push(close(host, o, this.hold));
    }
    return out;
  }

  /** Outages in progress, with the end they will have if no further server-error line comes. */
  current(): Outage[] {
    return [...this.open].map(([host, o]) => close(host, o, this.hold));
  }

  get active(): number {
    return this.open.size;
  }
}

function close(host: string, o: Open, hold: number): Outage {
  return { host, start: o.start, end: o.last + hold, errors: o.errors, excused: o.excused };
}
