// What the decider writes to the ban ledger and gets back on restore. Plain JSON-able data.
import type { Cidr, Ip } from '../types.js';

/** How far a source had been counted: file/stdin line, journald cursor, and the event time. */
export interface Position {
  readonly line?: number;
  readonly cursor?: string;
  readonly time: number;
}

/** Counted-through position per source (`kind:name`). */
export type Through = Readonly<Record<string, Position>>;

export interface BanRecord {
  readonly policy: string;
  readonly target: Ip | Cidr;
  /** ms since epoch: when the ban was decided (event time in replay). */
  readonly since: number;
  readonly until: number;
  readonly level: number;
  readonly ruleId: string;
}

export type LedgerEntry =
  | ({ readonly t: 'ban'; readonly through?: Through } & BanRecord)
  | { readonly t: 'unban'; readonly target: Ip | Cidr; readonly policy?: string; readonly at: number; readonly reason: 'operator' | 'expired' | 'reconcile' }
  /** A checkpoint: everything up to `through` has been counted (written on orderly shutdown). */
  | { readonly t: 'mark'; readonly through: Through };

/** What a restart needs: bans (active and past, for escalation history) and where counting stopped. */
export interface LedgerState {
  /** Every ban still relevant: active ones and past ones inside the history window. Oldest first. */
  readonly bans: readonly BanRecord[];
  readonly through: Through;
}

/**
 * Where the decider writes before it hands decisions on. Must be durable when it returns, and
 * throw, having recorded none of the entries, when it cannot write them (full disk).
 */
export interface LedgerSink {
  record(entries: readonly LedgerEntry[]): void;
}
