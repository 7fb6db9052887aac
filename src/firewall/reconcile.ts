// Start-up (and recovery) reconciliation: make the kernel hold exactly the ledger's active bans
// by applying only the difference through the ordinary apply() path. Adds (and timeout updates)
// go first, deletions after, so there is never a moment where a still-banned address is missing.
import type { BanDecision, Cidr, FirewallBackend, Ip } from '../types.js';
import { checkTarget, laterUntil, timeoutFor } from './targets.js';

export interface ReconcileReport {
  readonly added: number;
  readonly updated: number;
  readonly removed: number;
  readonly kept: number;
  /** Ledger targets that are not valid Ip/Cidr values (never sent to the kernel). */
  readonly invalid: readonly string[];
  readonly failed: readonly { readonly decision: BanDecision; readonly error: Error }[];
}

export interface ReconcileOptions {
  readonly now?: number;
  /** Expiries closer than this are taken as equal (the kernel counts whole seconds). Default 5 s. */
  readonly toleranceMs?: number;
}

/** Whether the kernel's expiry `have` is close enough to the ledger's `until`. */
function sameExpiry(until: number, have: number, now: number, tol: number): boolean {
  const t = timeoutFor(until, now);
  if (t === 0) return have === 0;
  if (have === 0) return false;
  return Math.abs(have - until) <= tol;
}

/**
 * The decisions that turn `kernel` into `ledger` ((target, until ms) pairs, 0 = no end; a target
 * listed more than once, e.g. banned by two policies, keeps its latest end):
 * `ban` for missing entries and differing expiries, `unban` (reason 'reconcile') for entries the ledger does not hold.
 */
export function diff(ledger: Iterable<readonly [string, number]>, kernel: ReadonlyMap<string, number>, now: number, toleranceMs = 5000): {
  adds: BanDecision[]; updates: BanDecision[]; removes: BanDecision[]; kept: number; invalid: string[];
} {
  const want = new Map<string, number>();
  const invalid: string[] = [];
  for (const [target, until] of ledger) {
    const t = checkTarget(target);
    if (!t) { invalid.push(target); continue; }
    if (timeoutFor(until, now) === undefined) continue; // already over: not wanted in the kernel
    const prev = want.get(t.key);
    want.set(t.key, prev === undefined ? until : laterUntil(prev, until));
  }
  const ban = (key: string, until: number): BanDecision => ({
    action: 'ban', target: key as Ip | Cidr, until, level: 0, policy: 'reconcile', ruleId: 'reconcile', evidence: [],
  });
  const adds: BanDecision[] = [];
  const updates: BanDecision[] = [];
  const removes: BanDecision[] = [];
  let kept = 0;
  for (const [key, until] of want) {
    const have = kernel.get(key);
    if (have === undefined) adds.push(ban(key, until));
    else if (!sameExpiry(until, have, now, toleranceMs)) updates.push(ban(key, until));
    else kept++;
  }
  for (const key of kernel.keys()) {
    if (!want.has(key)) removes.push({ action: 'unban', target: key as Ip | Cidr, reason: 'reconcile', policy: 'reconcile' });
  }
  return { adds, updates, removes, kept, invalid };
}

/** Compares the ledger with backend.list() and applies only the difference (adds before deletes). */
export async function reconcile(backend: FirewallBackend, ledger: Iterable<readonly [string, number]>, opts: ReconcileOptions = {}): Promise<ReconcileReport> {
  const now = opts.now ?? Date.now();
  const kernel = await backend.list();
  const d = diff(ledger, kernel, now, opts.toleranceMs);
  const failed: { decision: BanDecision; error: Error }[] = [];
  const upserts = [...d.adds, ...d.updates];
  if (upserts.length > 0) failed.push(...(await backend.apply(upserts)).failed);
  if (d.removes.length > 0) failed.push(...(await backend.apply(d.removes)).failed);
  return { added: d.adds.length, updated: d.updates.length, removed: d.removes.length, kept: d.kept, invalid: d.invalid, failed };
}
