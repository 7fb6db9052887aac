// Policies: which matches count, how many within which window, and how long the ban lasts.
// Several run at once (like fail2ban jails), each with its own counters, bans and history.
import { MailjailError, POLICY_CLASSES } from '../types.js';
import type { Match, RuleClass, Service } from '../types.js';

/**
 * One policy, as config produces it and the decider runs it. Durations are milliseconds throughout;
 * the defaults of every field live in the config schema (daemon/config-schema.ts, POLICY_DEFAULTS).
 */
export interface Policy {
  readonly name: string;
  /** Rule classes that count, e.g. ['auth']. */
  readonly classes: readonly RuleClass[];
  /** Services that count; undefined = all services. */
  readonly services?: readonly Service[];
  /** Attempts within `findtime` that trigger a ban (1..1000). */
  readonly maxretry: number;
  /** Window length (ms). The window is closed: an attempt exactly `findtime` old still counts. */
  readonly findtime: number;
  /** First ban length (ms). */
  readonly bantime: number;
  /**
   * Repeat offenders: bantime × factor^level, capped at maxBantime (ms), where level = number of
   * earlier bans of the same target by this policy that started within `window` (ms).
   */
  readonly escalation?: { readonly factor: number; readonly maxBantime: number; readonly window: number };
  /** `bans` bans (this one included) within `window` (ms) → ban for at least `bantime` (ms). */
  readonly recidive?: { readonly bans: number; readonly window: number; readonly bantime: number };
  /** Count and ban IPv4 per this prefix and IPv6 per this prefix. */
  readonly ipv4Prefix: number;
  readonly ipv6Prefix: number;
  /**
   * Optional: the last `maxretry` attempts in the window must also name at least this many distinct
   * user names (lines without a user name count as distinct: the log cannot prove them the same).
   */
  readonly distinctUsers?: number;
}

function bad(p: Policy, what: string): never {
  throw new MailjailError('MJ_STATE_POLICY', `policy "${p.name}": ${what}`);
}

const posInt = (x: unknown): boolean => typeof x === 'number' && Number.isInteger(x) && x > 0;
const posNum = (x: unknown): boolean => typeof x === 'number' && Number.isFinite(x) && x > 0;

/** Throws MJ_STATE_POLICY naming the first bad field. */
export function validatePolicy(p: Policy): void {
  if (typeof p.name !== 'string' || !/^[A-Za-z0-9_.-]{1,64}$/.test(p.name)) bad(p, 'name must be 1-64 of [A-Za-z0-9_.-]');
  if (!Array.isArray(p.classes) || p.classes.length === 0 || p.classes.some((c) => !(POLICY_CLASSES as readonly string[]).includes(c))) bad(p, `classes must be a non-empty list of ${POLICY_CLASSES.join('|')}`);
  if (p.services !== undefined && (!Array.isArray(p.services) || p.services.length === 0)) bad(p, 'services must be a non-empty list or absent');
  if (!posInt(p.maxretry) || p.maxretry > 1000) bad(p, 'maxretry must be an integer 1..1000');
  if (!posNum(p.findtime)) bad(p, 'findtime must be > 0 ms');
  if (!posNum(p.bantime)) bad(p, 'bantime must be > 0 ms');
  if (!Number.isInteger(p.ipv4Prefix) || p.ipv4Prefix < 8 || p.ipv4Prefix > 32) bad(p, 'ipv4Prefix must be 8..32');
  if (!Number.isInteger(p.ipv6Prefix) || p.ipv6Prefix < 16 || p.ipv6Prefix > 128) bad(p, 'ipv6Prefix must be 16..128');
  if (p.escalation) {
    const e = p.escalation;
    if (!posNum(e.factor) || e.factor < 1) bad(p, 'escalation.factor must be >= 1');
    if (!posNum(e.maxBantime) || e.maxBantime < p.bantime) bad(p, 'escalation.maxBantime must be >= bantime');
    if (!posNum(e.window)) bad(p, 'escalation.window must be > 0 ms');
  }
  if (p.recidive) {
    const r = p.recidive;
    if (!posInt(r.bans) || r.bans < 2) bad(p, 'recidive.bans must be an integer >= 2');
    if (!posNum(r.window) || !posNum(r.bantime)) bad(p, 'recidive.window and recidive.bantime must be > 0 ms');
  }
  if (p.distinctUsers !== undefined && (!posInt(p.distinctUsers) || p.distinctUsers > p.maxretry)) bad(p, 'distinctUsers must be 1..maxretry');
}

/** Whether this policy counts the match at all (class and service filter). */
export function policyCounts(p: Policy, m: Match): boolean {
  return p.classes.includes(m.class) && (p.services === undefined || p.services.includes(m.service));
}

/** How far back (ms) ban history matters for escalation and recidive. */
export function historyWindow(p: Policy): number {
  return Math.max(p.escalation?.window ?? 0, p.recidive?.window ?? 0);
}

/**
 * Ban length (ms) for a ban with `previous` earlier bans within the escalation window and
 * `recent` earlier bans within the recidive window.
 */
export function banMs(p: Policy, previous: number, recent: number): number {
  let ms = p.bantime;
  if (p.escalation && previous > 0) ms = Math.min(p.bantime * Math.pow(p.escalation.factor, previous), p.escalation.maxBantime);
  if (p.recidive && recent + 1 >= p.recidive.bans) ms = Math.max(ms, p.recidive.bantime);
  return ms;
}

/** The longest ban (ms) a policy can give: its bantime, escalation's cap or recidive's ban. */
export function maxBanMs(p: Policy): number {
  return Math.max(p.bantime, p.escalation?.maxBantime ?? 0, p.recidive?.bantime ?? 0);
}

/** The ledger must keep past bans at least this long (ms) for these policies' history. */
export function historyMsFor(policies: readonly Policy[]): number {
  return Math.max(0, ...policies.map(historyWindow));
}
