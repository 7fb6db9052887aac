// BanDecision ⇄ Redis stream fields. Whatever comes back from Redis is untrusted input (anyone who
// can write to the Redis instance can write the stream), so decoding re-validates every field the
// way parse/ip does for log lines: a target that is not a canonical address or network, a network
// wider than the configured limit (redis.widestNetwork, default /16 IPv4, /32 IPv6; never wider
// than /8 and /16), an absurd expiry or odd names are refused, never applied. The signature
// (signing.ts) is checked before decode.
import { isIpv6, parseCidr, parseIp } from '../parse/ip.js';
import type { BanDecision, Cidr, Ip } from '../types.js';
import type { WidestNetwork } from './config.js';

/** One stream entry as mailjail writes it (all values are strings on the wire). */
export interface WireDecision {
  readonly action: 'ban' | 'unban';
  readonly target: Ip | Cidr;
  /** ms since epoch (ban only). */
  readonly until?: number;
  readonly level?: number;
  readonly policy?: string;
  readonly ruleId?: string;
  readonly reason?: 'operator' | 'expired' | 'reconcile';
  /** Node name of the collector that decided. */
  readonly node: string;
  /** When the collector handed it on (ms since epoch): for latency figures. */
  readonly at: number;
}

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,127}$/;
const REASONS = new Set(['operator', 'expired', 'reconcile']);
/** No ban from the wire may last longer than this (10 years); a bigger number is garbage or hostile. */
const MAX_FUTURE_MS = 10 * 365 * 86_400_000;
/** The hard floor, whatever the config says (and the limit for the local position file). */
const FLOOR: WidestNetwork = { v4: 8, v6: 16 };

/** Why an entry is refused; `tooWide`: a valid network wider than the limit (counted apart). */
export interface Refusal {
  readonly error: string;
  readonly tooWide?: true;
}

/** Flat field list for XADD (unsigned: the publisher appends the signature). */
export function encode(d: BanDecision, node: string, at: number): string[] {
  const f = ['v', '1', 'a', d.action, 't', String(d.target), 'n', node, 'at', String(at)];
  if (d.action === 'ban') f.push('u', String(d.until), 'l', String(d.level), 'p', d.policy, 'r', d.ruleId);
  else {
    f.push('why', d.reason);
    if (d.policy !== undefined) f.push('p', d.policy);
  }
  return f;
}

/** A target from Redis → canonical Ip/Cidr, or an error text. Exported for the snapshot path. */
export function checkWireTarget(raw: string, widest: WidestNetwork = FLOOR): { ok: Ip | Cidr } | Refusal {
  if (raw.length === 0 || raw.length > 64) return { error: 'target length out of range' };
  if (raw.includes('/')) {
    const c = parseCidr(raw);
    if (!c || c !== raw) return { error: `not a canonical network: ${JSON.stringify(raw)}` };
    const len = Number(c.slice(c.lastIndexOf('/') + 1));
    const v6 = isIpv6(c);
    const min = Math.max(v6 ? widest.v6 : widest.v4, v6 ? FLOOR.v6 : FLOOR.v4);
    if (len < min) return { error: `network ${c} is wider than /${min} (redis.widestNetwork)`, tooWide: true };
    return { ok: c };
  }
  const ip = parseIp(raw);
  if (!ip || ip !== raw) return { error: `not a canonical address: ${JSON.stringify(raw)}` };
  return { ok: ip };
}

/** An expiry from Redis: integer ms, in the future by at most 10 years (past ones are "expired"). */
export function checkUntil(raw: string | undefined, now: number): number | undefined {
  if (raw === undefined || !/^\d{1,16}$/.test(raw)) return undefined;
  const u = Number(raw);
  return Number.isSafeInteger(u) && u <= now + MAX_FUTURE_MS ? u : undefined;
}

/** Stream entry fields (flat [k, v, k, v, ...]) → a validated decision or the reason it is refused. */
export function decode(fields: readonly string[], now: number, widest: WidestNetwork = FLOOR): { ok: WireDecision } | Refusal {
  if (fields.length > 40 || fields.length % 2 !== 0) return { error: 'malformed entry' };
  const m = new Map<string, string>();
  for (let i = 0; i < fields.length; i += 2) {
    const k = fields[i]!;
    if (m.has(k)) return { error: `duplicate field ${JSON.stringify(k.slice(0, 20))}` };
    m.set(k, fields[i + 1]!);
  }
  if (m.get('v') !== '1') return { error: 'unknown entry version' };
  const t = checkWireTarget(m.get('t') ?? '', widest);
  if ('error' in t) return t;
  const node = m.get('n') ?? '';
  if (!NAME.test(node)) return { error: 'bad node name' };
  const atRaw = m.get('at') ?? '';
  const at = /^\d{1,16}$/.test(atRaw) ? Number(atRaw) : NaN;
  if (!Number.isSafeInteger(at)) return { error: 'bad time' };
  const a = m.get('a');
  if (a === 'ban') {
    const until = checkUntil(m.get('u'), now);
    if (until === undefined) return { error: 'bad expiry' };
    const lraw = m.get('l') ?? '';
    const level = /^\d{1,4}$/.test(lraw) ? Number(lraw) : NaN;
    if (!Number.isInteger(level)) return { error: 'bad level' };
    const policy = m.get('p') ?? '';
    const ruleId = m.get('r') ?? '';
    if (!NAME.test(policy) || !NAME.test(ruleId)) return { error: 'bad policy or rule name' };
    return { ok: { action: 'ban', target: t.ok, until, level, policy, ruleId, node, at } };
  }
  if (a === 'unban') {
    const reason = m.get('why') ?? '';
    if (!REASONS.has(reason)) return { error: 'bad unban reason' };
    const policy = m.get('p');
    if (policy !== undefined && !NAME.test(policy)) return { error: 'bad policy name' };
    return { ok: { action: 'unban', target: t.ok, reason: reason as 'operator', node, at, ...(policy !== undefined ? { policy } : {}) } };
  }
  return { error: 'unknown action' };
}

/** The decision to hand to the local firewall (evidence stays with the collector). */
export function toDecision(w: WireDecision): BanDecision {
  if (w.action === 'ban') {
    return { action: 'ban', target: w.target, until: w.until!, level: w.level ?? 0, policy: w.policy ?? 'cluster', ruleId: w.ruleId ?? 'cluster', evidence: [] };
  }
  return { action: 'unban', target: w.target, reason: w.reason ?? 'operator', ...(w.policy !== undefined ? { policy: w.policy } : {}) };
}

/** Stream ids "ms-seq" compared numerically. */
export function compareIds(a: string, b: string): number {
  const [am = 0, as = 0] = a.split('-').map(Number);
  const [bm = 0, bs = 0] = b.split('-').map(Number);
  return am !== bm ? am - bm : as - bs;
}
