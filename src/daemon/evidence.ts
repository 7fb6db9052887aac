// What a ban line and `mailjail bans` show as evidence: how many matched lines an address had,
// its first and last matched line. Bounded: an LRU of recent offenders, so a spray of distinct
// addresses cannot grow it; its loss only shortens the evidence, never changes a decision.
import { LRUCache } from 'lru-cache';
import type { Match } from '../types.js';

export interface Evidence {
  count: number;
  first: number;
  firstLine: string;
  last: number;
  lastLine: string;
  ruleId: string;
}

const MAX_LINE = 300;
/**
 * The line, clipped, as a string of its own: a message is a slice of the chunk its source read
 * (64 KiB for files), and up to 65,536 kept slices would keep as many chunks alive. Prepending a
 * character and slicing it off makes V8 copy the text (as the rules stage does for captures).
 */
const clip = (s: string): string => ` ${s.length > MAX_LINE ? `${s.slice(0, MAX_LINE)}…` : s}`.slice(1);

export class EvidenceLog {
  private readonly recent: LRUCache<string, Evidence>;
  /** Evidence frozen at ban time, by ban target (cleared when the ban is gone). */
  private readonly byTarget = new Map<string, Evidence>();

  constructor(private readonly windowMs: number, max = 65_536) {
    this.recent = new LRUCache({ max });
  }

  note(m: Match): void {
    const line = clip(m.event.message);
    const t = m.event.time;
    const e = this.recent.get(m.ip);
    if (!e || t - e.last > this.windowMs) {
      this.recent.set(m.ip, { count: 1, first: t, firstLine: line, last: t, lastLine: line, ruleId: m.ruleId });
      return;
    }
    e.count++;
    e.last = t;
    e.lastLine = line;
    e.ruleId = m.ruleId;
  }

  /** Evidence for a ban of `target` triggered by `m` (or by an operator when no match). */
  freeze(target: string, m: Match | undefined): Evidence | undefined {
    const e = m ? this.recent.get(m.ip) : undefined;
    if (!e) {
      this.byTarget.delete(target);
      return undefined;
    }
    const copy = { ...e };
    this.byTarget.set(target, copy);
    this.recent.delete(m!.ip); // the next offence starts a fresh count
    return copy;
  }

  forTarget(target: string): Evidence | undefined {
    return this.byTarget.get(target);
  }

  /** Keeps evidence only for targets still banned. */
  retain(active: ReadonlySet<string>): void {
    for (const k of this.byTarget.keys()) if (!active.has(k)) this.byTarget.delete(k);
  }
}
