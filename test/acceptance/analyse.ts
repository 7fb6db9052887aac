// Runs captured real log lines through our own parse → rules → state stages in-process and
// attributes every counted attempt to the address (or IPv6 /64) it was counted for, so the suite
// can compare "attempts the clients made" with "attempts mailjail counted", and list the lines
// that mention an attacker but that no rule took.
import { parseRecord } from '../../src/parse/index.js';
import { parseIp } from '../../src/parse/ip.js';
import { loadRulePack } from '../../src/rules/pack.js';
import { Decider, keyOf } from '../../src/state/decider.js';
import { defaultPolicy } from '../../src/daemon/config.js';
import type { Policy } from '../../src/state/policy.js';
import type { LogEvent, Match, RawRecord } from '../../src/types.js';

export interface Analysis {
  /** key (address or IPv6 /64) → attempts counted by the Decider. */
  readonly counted: Map<string, number>;
  readonly matches: { readonly line: string; readonly m: Match; readonly counted: number }[];
  /** Every parsed line (program + message), for the miss report. */
  readonly events: { readonly line: string; readonly ev: LogEvent }[];
  readonly parseErrors: number;
}

/** Counting-only policy: the default one with a maxretry nothing reaches, so no ban hides a count. */
export const COUNT_POLICY: Policy = { ...defaultPolicy(), name: 'count-only', maxretry: 1000, findtime: 3_600_000 };

export function analyse(text: string, rulesDir?: string): Analysis {
  const engine = loadRulePack(rulesDir);
  const decider = new Decider({ policies: [COUNT_POLICY] });
  const counted = new Map<string, number>();
  const matches: Analysis['matches'] = [];
  const events: Analysis['events'] = [];
  let parseErrors = 0;
  const now = Date.now();
  let n = 0;
  for (const line of text.split('\n')) {
    if (!line.trim()) continue;
    const rec: RawRecord = { kind: 'line', text: line, origin: { kind: 'file', name: 'capture', line: ++n } };
    const r = parseRecord(rec, { format: 'auto', now });
    if (!('event' in r)) { parseErrors++; continue; }
    events.push({ line, ev: r.event });
    const m = engine.match(r.event);
    if (!m) continue;
    const before = decider.stats().counted;
    decider.observe(m, m.event.time);
    const delta = decider.stats().counted - before;
    matches.push({ line, m, counted: delta });
    if (delta) {
      const k = keyOf(m.ip, COUNT_POLICY);
      counted.set(k, (counted.get(k) ?? 0) + delta);
    }
  }
  return { counted, matches, events, parseErrors };
}

/** The key our default policy counts an address under (the address, or its IPv6 /64). */
export function keyFor(ip: string): string {
  const a = parseIp(ip);
  if (!a) throw new Error(`not an address: ${ip}`);
  return keyOf(a, COUNT_POLICY);
}

/** Lines that look like an authentication failure. */
export const FAILURE_WORDS = /authentication failed|auth failed|password mismatch|unknown user|sasl|login failed|invalid/i;
