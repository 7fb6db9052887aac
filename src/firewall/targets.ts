// Defensive re-validation of ban targets right before they become command input, and the one
// canonical key form shared by apply(), list() and reconcile. Types say "Ip | Cidr", but a cast
// somewhere upstream must still never put arbitrary text into `ipset restore` or `nft -f`.
import { parseCidr, parseIp, splitCidr } from '../parse/ip.js';
import type { BanDecision, Cidr, Ip } from '../types.js';
import { FirewallError, FW_CODES } from './exec.js';

export interface Target {
  /** Canonical key: a bare address for a host (/32, /128), `addr/len` for a network. */
  readonly key: string;
  readonly family: 4 | 6;
  /** True for a network (prefix shorter than the address). */
  readonly net: boolean;
}

/** Shortest prefixes we accept: a typo must not ban a continent, nor 0.0.0.0/0 lock out the world. */
export const MIN_PREFIX = { 4: 8, 6: 16 } as const;

/** Validates a ban target; returns undefined for anything not an exact canonical Ip or Cidr. */
export function checkTarget(t: unknown): Target | undefined {
  if (typeof t !== 'string' || t.length > 64) return undefined;
  if (!t.includes('/')) {
    const ip = parseIp(t);
    if (ip === undefined || ip !== t) return undefined;
    return { key: ip, family: ip.includes(':') ? 6 : 4, net: false };
  }
  const c = parseCidr(t);
  if (c === undefined || c !== t) return undefined; // host bits set, or not canonical
  const { addr, len } = splitCidr(c);
  const family = addr.includes(':') ? 6 : 4;
  const max = family === 6 ? 128 : 32;
  if (len === max) return { key: addr, family, net: false };
  if (len < MIN_PREFIX[family]) return undefined;
  return { key: c, family, net: true };
}

/** Like checkTarget, but throws MJ_FW_TARGET (the text is quoted JSON-escaped, never raw). */
export function requireTarget(t: unknown): Target {
  const r = checkTarget(t);
  if (!r) throw new FirewallError(FW_CODES.TARGET, `refusing invalid ban target ${JSON.stringify(String(t).slice(0, 80))}`, '(none)', '');
  return r;
}

/** Canonical key of a target as printed by a tool (`1.2.3.4`, `10.0.0.0/24`, `2001:db8::/64`). */
export function keyOf(text: string): string | undefined {
  const c = parseCidr(text);
  if (c === undefined) return undefined;
  const { addr, len } = splitCidr(c);
  return len === (addr.includes(':') ? 128 : 32) ? addr : c;
}

/** Address and prefix length of a key (a bare address has the full length). */
export function splitKey(key: string): { addr: string; len: number } {
  const i = key.indexOf('/');
  if (i < 0) return { addr: key, len: key.includes(':') ? 128 : 32 };
  return { addr: key.slice(0, i), len: Number(key.slice(i + 1)) };
}

/** Canonical key for a ledger target (Ip or Cidr), or undefined if invalid. */
export function ledgerKey(t: Ip | Cidr | string): string | undefined {
  return checkTarget(t)?.key;
}

/** ipset's largest per-entry timeout (seconds); longer bans are stored without a timeout. */
export const MAX_TIMEOUT_S = 2_147_483;

/**
 * Kernel timeout in whole seconds for a ban that lasts until `until` (ms since epoch):
 * 0 = no timeout (permanent, or longer than the kernel can hold; the ledger unbans it later),
 * undefined = already over, nothing to add.
 */
export function timeoutFor(until: number, now: number): number | undefined {
  if (until === 0 || !Number.isFinite(until)) return 0;
  const s = Math.ceil((until - now) / 1000);
  if (s <= 0) return undefined;
  return s > MAX_TIMEOUT_S ? 0 : s;
}

export interface Item {
  /** The decision that decides the end state (the batch's decisions for this target, merged). */
  decision: BanDecision;
  readonly target: Target;
  /** Every decision of the batch for this target, in order (all are reported together). */
  readonly all: BanDecision[];
}

/** The later of two ban ends (0 = no end wins). */
export function laterUntil(a: number, b: number): number {
  return a === 0 || b === 0 || !Number.isFinite(a) || !Number.isFinite(b) ? 0 : Math.max(a, b);
}

/**
 * Merges a decision into the one already pending for the same target: an unban, or a ban after
 * an unban, replaces it; a ban after a ban keeps the later end. Several policies may ban one
 * address (and the kernel holds one entry for it): the longest ban must win, not the last one.
 */
export function merge(prev: BanDecision | undefined, d: BanDecision): BanDecision {
  if (!prev || prev.action !== 'ban' || d.action !== 'ban') return d;
  const until = laterUntil(prev.until, d.until);
  return until === d.until ? d : { ...d, until };
}

/**
 * Splits a batch into valid items, one per target in first-seen order (see merge(): same end
 * state, fewer lines), and refused decisions whose target is not a valid Ip/Cidr.
 */
export function prepare(batch: readonly BanDecision[], opts: { ipv6?: boolean } = {}): { items: Item[]; refused: { decision: BanDecision; error: Error }[] } {
  const byKey = new Map<string, Item>();
  const refused: { decision: BanDecision; error: Error }[] = [];
  for (const d of batch) {
    let t: Target;
    try { t = requireTarget(d.target); } catch (e) { refused.push({ decision: d, error: e as Error }); continue; }
    if (t.family === 6 && opts.ipv6 === false) {
      refused.push({ decision: d, error: new FirewallError(FW_CODES.TARGET, `IPv6 is disabled in the firewall config: ${t.key}`, '(none)', '') });
      continue;
    }
    const prev = byKey.get(t.key);
    if (prev) { prev.decision = merge(prev.decision, d); prev.all.push(d); }
    else byKey.set(t.key, { decision: d, target: t, all: [d] });
  }
  return { items: [...byKey.values()], refused };
}
