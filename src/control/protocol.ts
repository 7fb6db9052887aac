// The control protocol between `mailjail <command>` and the running daemon: one JSON object per
// line each way over a Unix socket. Every message carries `v` so that a CLI from a newer package
// talking to an older daemon (or the reverse, during an upgrade) gets a clear error, not garbage.
import type { Cidr, Ip } from '../types.js';

export const PROTOCOL_VERSION = 1;
/** Longest request or response line accepted (a bans list of 1M entries is streamed by `bans --json` in pages later; 64 MiB is ample now). */
export const MAX_REQUEST_BYTES = 64 * 1024;
export const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;

export interface ControlRequest {
  readonly v: number;
  readonly id: number;
  readonly cmd: string;
  readonly args?: Readonly<Record<string, unknown>>;
}

export interface ControlErrorBody {
  readonly code: string;
  readonly message: string;
}

export type ControlResponse =
  | { readonly v: number; readonly id: number; readonly ok: true; readonly result: unknown }
  | { readonly v: number; readonly id: number; readonly ok: false; readonly error: ControlErrorBody };

// --- typed commands --------------------------------------------------------------------------

export interface SourceStatus {
  readonly name: string;
  readonly type: string;
  /** "running", "restarting", "stopped", "failed". */
  readonly state: string;
  readonly lines: number;
  readonly lastError?: string;
  /** Numbers the source reports about itself (syslog: received, denied, oversize, dropped...; journald: entries, filtered...). */
  readonly stats?: Readonly<Record<string, number>>;
}

export interface PolicyStatus {
  readonly name: string;
  readonly maxretry: number;
  readonly findtime: number;
  readonly bantime: number;
  readonly bansActive: number;
}

export interface StatusResult {
  readonly version: string;
  readonly pid: number;
  readonly startedAt: number;
  readonly configFiles: readonly string[];
  readonly firewall: string;
  readonly sources: readonly SourceStatus[];
  readonly policies: readonly PolicyStatus[];
  /** Counters by name (lines, parseErrors, matches, tracked, evictions, bansApplied, bansFailed...). */
  readonly counters: Readonly<Record<string, number>>;
}

export interface BanEntry {
  readonly target: string;
  readonly policy: string;
  /** ms since epoch. */
  readonly until: number;
  readonly level: number;
  readonly ruleId: string;
  readonly evidence: {
    readonly count: number;
    readonly firstLine?: string;
    readonly lastLine?: string;
  };
}

export interface BanArgs {
  readonly target: Ip | Cidr;
  readonly policy?: string;
  /** Ban duration in ms; default: the policy's bantime (with escalation). */
  readonly durationMs?: number;
}

export interface BanResult {
  readonly target: string;
  readonly policy: string;
  readonly until: number;
  readonly level: number;
}

export interface UnbanResult {
  readonly target: string;
  /** False when no active ban matched (the request is still applied to the firewall). */
  readonly removed: boolean;
}

export interface ReloadResult {
  readonly files: readonly string[];
}

/** What the daemon implements behind the socket. Throw MailjailError for a refusal the operator should read. */
export interface ControlHandlers {
  status(): Promise<StatusResult>;
  bans(): Promise<readonly BanEntry[]>;
  ban(args: BanArgs): Promise<BanResult>;
  unban(args: { readonly target: Ip | Cidr }): Promise<UnbanResult>;
  reload(): Promise<ReloadResult>;
}
