// What the kernel backends share beyond the FirewallBackend interface: a status probe (used to
// detect a set deleted behind our back and to warn when a set fills up) and the loop that
// attributes a failed batch to the one line that broke it, so one bad entry never sinks a batch.
import type { ApplyReport, BanDecision, FirewallBackend } from '../types.js';
import { codeOf, FW_CODES } from './exec.js';
import type { Item } from './targets.js';

export interface FirewallStatus {
  /** Every set / table we need exists. */
  readonly present: boolean;
  /** The INPUT hook (iptables jump / nft base chain) is in place. */
  readonly hooked: boolean;
  /** Entries per family (ipset: kernel count, which may include expired entries not yet collected). */
  readonly entries: { readonly v4: number; readonly v6: number };
  /**
   * Entries per family over all sets (nftables keeps one set per prefix length, where `entries`
   * is the fullest one); absent when it equals `entries`.
   */
  readonly held?: { readonly v4: number; readonly v6: number };
  /** Capacity per set. */
  readonly maxelem: number;
}

/** A backend that can say what state the kernel is in. */
export interface KernelFirewall extends FirewallBackend {
  status(): Promise<FirewallStatus>;
}

export function hasStatus(b: FirewallBackend): b is KernelFirewall {
  return typeof (b as Partial<KernelFirewall>).status === 'function';
}

export interface Attributed {
  readonly ok: Item[];
  readonly failed: { item: Item; error: Error }[];
}

/**
 * Runs `attempt` over the items; when it fails naming the index of the item that broke it, that
 * item is set aside as failed and the rest is tried again (the tools' input is idempotent, so
 * lines already applied are harmless to repeat). `companions` picks further items (after the failed
 * one) that share its fate, e.g. every later add to a set that is full.
 */
export async function runAttributed(
  items: Item[],
  attempt: (items: Item[]) => Promise<void>,
  failingIndex: (e: unknown, items: Item[]) => number | undefined,
  companions: (e: unknown, failedAt: number, rest: Item[]) => Item[] = () => [],
  maxRounds = 32,
): Promise<Attributed> {
  const failed: { item: Item; error: Error }[] = [];
  let rest = items;
  for (let round = 0; rest.length > 0; round++) {
    try {
      await attempt(rest);
      return { ok: rest, failed };
    } catch (e) {
      const idx = round < maxRounds ? failingIndex(e, rest) : undefined;
      const bad = idx === undefined ? undefined : rest[idx];
      if (bad === undefined || idx === undefined) {
        for (const item of rest) failed.push({ item, error: e as Error });
        return { ok: [], failed };
      }
      const drop = new Set<Item>([bad, ...companions(e, idx, rest)]);
      for (const item of drop) failed.push({ item, error: e as Error });
      rest = rest.filter((i) => !drop.has(i));
    }
  }
  return { ok: [], failed };
}

/** Builds the ApplyReport: every decision of an ok item counts as applied. */
export function report(ok: readonly Item[], failed: readonly { item: Item; error: Error }[], refused: readonly { decision: BanDecision; error: Error }[], skipped = 0): ApplyReport {
  let applied = skipped;
  for (const i of ok) applied += i.all.length;
  const f: { decision: BanDecision; error: Error }[] = [...refused];
  for (const { item, error } of failed) for (const d of item.all) f.push({ decision: d, error });
  return { applied, failed: f };
}

/** True for errors that retrying cannot fix (the decision is reported and dropped from the queue). */
export function isPermanent(e: unknown): boolean {
  const c = codeOf(e);
  return c === FW_CODES.TARGET || c === FW_CODES.OVERLAP;
}
