// Turns matched lines into attempts, so that each login attempt counts once however many lines
// the daemons log for it (see docs/counting.md). Shared by all policies: it answers "how many new
// attempts does this line add", never "is this address banned".
import { LRUCache } from 'lru-cache';
import type { Ip, Match } from '../types.js';
import { DuplicateFilter } from './duplicates.js';
import type { DuplicateOptions } from './duplicates.js';

/** The side Dovecot's auth process takes in a pair; a later login summary may absorb its credits. */
export const AUTH_PROCESS_SIDE = 'auth-process';

export interface DedupeOptions extends DuplicateOptions {
  /** Lines of two sides of one pair group this close in time (ms) are one attempt. Default 30 s. */
  readonly pairWindowMs?: number;
  /** A login summary absorbs unpaired auth-process lines of its address this old at most (ms). Default 5 min. */
  readonly summaryWindowMs?: number;
  /** Weak lines from this many distinct addresses ... */
  readonly outageAddresses?: number;
  /** ... within this many ms mean an outage on our side. Defaults 3 and 60 s. */
  readonly outageWindowMs?: number;
  /** Sessions remembered (LRU). Default 20 000 (sessions only matter for the minutes a login lasts). */
  readonly maxSessions?: number;
  /** Addresses with unpaired lines remembered (LRU). Default 20 000. */
  readonly maxUnpaired?: number;
}

interface Unpaired {
  readonly group: string;
  readonly side: string;
  readonly time: number;
}

export interface DedupeStats {
  /** Lines that added nothing (second side of a pair, session lines already counted). */
  absorbed: number;
  sessionsEvicted: number;
  outages: number;
  /** Exact copies of a line already seen (Exim's syslog_duplication, two collectors): not counted. */
  duplicates: number;
}

export class Deduper {
  private readonly pairWindow: number;
  private readonly summaryWindow: number;
  private readonly outageAddresses: number;
  private readonly outageWindow: number;
  /** ip + NUL + session → attempts counted for that session. */
  private readonly sessions: LRUCache<string, number>;
  /** ip → unpaired lines, oldest first (LRU-bounded: O(1) eviction, unlike a Map used as a FIFO). */
  private readonly unpaired: LRUCache<Ip, Unpaired[]>;
  /**
   * The most recent distinct addresses with a weak line and its time, newest first, at most
   * `outageAddresses` of them: there is an outage exactly when all of them are inside the window.
   */
  private readonly weakRecent: { ip: Ip; time: number }[] = [];
  private outageNow = false;
  private readonly copies: DuplicateFilter;
  private readonly counts = { absorbed: 0, sessionsEvicted: 0, outages: 0 };

  constructor(o: DedupeOptions = {}) {
    this.pairWindow = o.pairWindowMs ?? 30_000;
    this.summaryWindow = o.summaryWindowMs ?? 300_000;
    this.outageAddresses = o.outageAddresses ?? 3;
    this.outageWindow = o.outageWindowMs ?? 60_000;
    this.copies = new DuplicateFilter(o);
    this.unpaired = new LRUCache<Ip, Unpaired[]>({ max: o.maxUnpaired ?? 20_000 });
    this.sessions = new LRUCache<string, number>({
      max: o.maxSessions ?? 20_000,
      dispose: (_v, _k, reason) => {
        if (reason === 'evict') this.counts.sessionsEvicted++;
      },
    });
  }

  get stats(): DedupeStats {
    return { ...this.counts, duplicates: this.copies.duplicates };
  }

  /**
   * Whether this line is a second copy of one already seen (same host, program, pid and text within
   * `duplicateWindowMs` of event time): it is the same attempt and adds nothing.
   */
  duplicate(m: Match): boolean {
    return this.copies.isDuplicate(m.event);
  }

  /** New attempts this line adds (0 when it repeats an attempt already counted). */
  credit(m: Match, now: number): number {
    const a = m.attempt;
    let n = 1;
    if (a.session !== undefined) {
      const key = `${m.ip}\0${a.session}`;
      let counted = this.sessions.get(key) ?? 0;
      if (a.total !== undefined) {
        const total = Math.max(0, Math.floor(a.total));
        // Older Dovecot logs its driver lines without the session id: they were counted as
        // unpaired auth-process credits of this address; the summary covers them.
        if (counted < total) counted += this.absorbAuthProcess(m.ip, now, total - counted);
        n = Math.max(0, total - counted);
        this.sessions.set(key, Math.max(counted, total));
      } else {
        this.sessions.set(key, counted + 1);
      }
    } else if (a.total !== undefined) {
      // A summary without a session id: the only record of its N attempts, apart from any
      // unpaired auth-process lines of the address it covers.
      const total = Math.max(0, Math.floor(a.total));
      n = total - this.absorbAuthProcess(m.ip, now, total);
    }
    if (n > 0 && a.pair !== undefined && a.total === undefined) n = this.pair(m.ip, a.pair.group, a.pair.side, now);
    if (n === 0) this.counts.absorbed++;
    return n;
  }

  /**
   * Says whether an outage (many addresses failing weakly at once) is in progress. Only weak lines
   * that nothing explains are recorded (`record`): an address with definite failures of its own is
   * an attacker meeting Dovecot's auth penalty, and several of them at once are an attack wave, not
   * an outage.
   */
  weakOutage(ip: Ip, now: number, record: boolean): boolean {
    const r = this.weakRecent;
    if (record) {
      const i = r.findIndex((e) => e.ip === ip);
      if (i >= 0) r.splice(i, 1);
      r.unshift({ ip, time: now });
      if (r.length > this.outageAddresses) r.length = this.outageAddresses;
    }
    const outage = r.length >= this.outageAddresses && now - r[r.length - 1]!.time <= this.outageWindow;
    if (outage && !this.outageNow) this.counts.outages++;
    this.outageNow = outage;
    return outage;
  }

  get outage(): boolean {
    return this.outageNow;
  }

  /** 1 if this line starts an attempt, 0 if it is the other side of one counted within the window. */
  private pair(ip: Ip, group: string, side: string, now: number): number {
    const list = this.prune(ip, now);
    const i = list.findIndex((u) => u.group === group && u.side !== side && Math.abs(now - u.time) <= this.pairWindow);
    if (i >= 0) {
      list.splice(i, 1); // an emptied list stays cached: lru-cache's delete of its last entry is O(max)
      return 0;
    }
    list.push({ group, side, time: now });
    if (list.length === 1) this.unpaired.set(ip, list);
    return 1;
  }

  /** Consumes up to `want` unpaired auth-process credits of `ip`, oldest first; returns how many. */
  private absorbAuthProcess(ip: Ip, now: number, want: number): number {
    const list = this.prune(ip, now);
    let got = 0;
    for (let i = 0; i < list.length && got < want; ) {
      if (list[i]!.side === AUTH_PROCESS_SIDE && list[i]!.time <= now) {
        list.splice(i, 1);
        got++;
      } else i++;
    }
    return got;
  }

  /** The address's unpaired lines still young enough to pair or be absorbed. */
  private prune(ip: Ip, now: number): Unpaired[] {
    const list = this.unpaired.get(ip);
    if (!list) return [];
    const keep = Math.max(this.pairWindow, this.summaryWindow);
    while (list.length > 0 && now - list[0]!.time > keep) list.shift();
    return list;
  }
}
