// Policies: which matches count, how many within which window, and how long the ban lasts.
// Several run at once (like fail2ban jails), each with its own counters, bans and history.
import { MailjailError, RULE_CLASSES } from '../types.js';
import type { Match, RuleClass, Service } from '../types.js';

export interface Policy {
  readonly name: string;
  /** Rule classes that count, e.g. ['auth']. */
  readonly classes: readonly RuleClass[];
  /** Services that count; undefined = all services. */
  readonly services?: readonly Service[];
  /** Attempts within `findtime` that trigger a ban (1..1000). */
  readonly maxretry: number;
  /** Window length in seconds. The window is closed: an attempt exactly `findtime` s old still counts. */
  readonly findtime: number;
  /** First ban length in seconds. */
  readonly bantime: number;
  /**
   * Repeat offenders: bantime × factor^level, capped at maxBantime (s), where level = number of earlier
   * bans of the same target by this policy that started within `window` s (default 30 days).
   */
  readonly escalation?: { readonly factor: number; readonly maxBantime: number; readonly window?: number };
  /** `bans` bans (this one included) within `window` s → ban for at least `bantime` s. */
  readonly recidive?: { readonly bans: number; readonly window: number; readonly bantime: number };
  /** Count and ban IPv4 per this prefix (default 32) and IPv6 per this prefix (default 64). */
  readonly ipv4Prefix: number;
  readonly ipv6Prefix: number;
  /**
   * Optional: the last `maxretry` attempts in the window must also name at least this many distinct
   * user names (lines without a user name count as distinct: the log cannot prove them the same).
   */
  readonly distinctUsers?: number;
}

export const DEFAULT_ESCALATION_WINDOW = 30 * 86400;

export const DEFAULT_POLICY: Policy = Object.freeze({
  name: 'mail-auth',
  classes: Object.freeze(['auth'] as const),
  maxretry: 5,
  findtime: 600,
  bantime: 3600,
  escalation: Object.freeze({ factor: 2, maxBantime: 7 * 86400 }),
  ipv4Prefix: 32,
  ipv6Prefix: 64,
});

function bad(p: Policy, what: string): never {
  throw new MailjailError('MJ_STATE_POLICY', `policy "${p.name}": ${what}`);
}

const posInt = (x: unknown): boolean => typeof x === 'number' && Number.isInteger(x) && x > 0;
const posNum = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x) && x > 0;

/** Throws MJ_STATE_POLICY naming the first bad field. */
export function validatePolicy(p: Policy): void {
  if (typeof p.name !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(p.name)) bad(p, 'name must be 1-64 of [A-Za-z0-9_.-]');
  if (!Array.isArray(p.classes) || p.classes.length === 0 || p.classes.some((c) => !RULE_CLASSES.includes(c))) bad(p, `classes must be a non-empty list of ${RULE_CLASSES.join('|')}`);
  if (p.services !== undefined && (!Array.isArray(p.services) || p.services.length === 0)) bad(p, 'services must be a non-empty list or absent');
  if (!posInt(p.maxretry) || p.maxretry > 1000) bad(p, 'maxretry must be an integer 1..1000');
  if (!posNum(p.findtime)) bad(p, 'findtime must be > 0 seconds');
  if (!posNum(p.bantime)) bad(p, 'bantime must be > 0 seconds');
  if (!Number.isInteger(p.ipv4Prefix) || p.ipv4Prefix < 8 || p.ipv4Prefix > 32) bad(p, 'ipv4Prefix must be 8..32');
  if (!Number.isInteger(p.ipv6Prefix) || p.ipv6Prefix < 16 || p.ipv6Prefix > 128) bad(p, 'ipv6Prefix must be 16..128');
  if (p.escalation) {
    const e = p.escalation;
    if (!posNum(e.factor) || e.factor < 1) bad(p, 'escalation.factor must be >= 1');
    if (!posNum(e.maxBantime) || e.maxBantime < p.bantime) bad(p, 'escalation.maxBantime must be >= bantime');
    if (e.window !== undefined && !posNum(e.window)) bad(p, 'escalation.window must be > 0 seconds');
  }
  if (p.recidive) {
    const r = p.recidive;
    if (!posInt(r.bans) || r.bans < 2) bad(p, 'recidive.bans must be an integer >= 2');
    if (!posNum(r.window) || !posNum(r.bantime)) bad(p, 'recidive.window and recidive.bantime must be > 0 seconds');
  }
  if (p.distinctUsers !== undefined && (!posInt(p.distinctUsers) || p.distinctUsers > p.maxretry)) bad(p, 'distinctUsers must be 1..maxretry');
}

/** Whether this policy counts the match at all (class and service filter). */
export function policyCounts(p: Policy, m: Match): boolean {
  return p.classes.includes(m.class) && (p.services === undefined || p.services.includes(m.service));
}

/** How far back (s) ban history matters for escalation and recidive. */
export function historyWindow(p: Policy): number {
  return Math.max(p.escalation ? (p.escalation.window ?? DEFAULT_ESCALATION_WINDOW) : 0, p.recidive?.window ?? 0);
}

/**
 * Ban length in seconds for a ban with `previous` earlier bans within the escalation window and
 * `recent` earlier bans within the recidive window.
 */
export function banSeconds(p: Policy, previous: number, recent: number): number {
  let s = p.bantime;
  if (p.escalation && previous > 0) s = Math.min(p.bantime * Math.pow(p.escalation.factor, previous), p.escalation.maxBantime);
  if (p.recidive && recent + 1 >= p.recidive.bans) s = Math.max(s, p.recidive.bantime);
  return s;
}

/** The ledger must keep past bans at least this long (ms) for these policies' history. */
export function historyMsFor(policies: readonly Policy[]): number {
  return Math.max(0, ...policies.map(historyWindow)) * 1000;
}
