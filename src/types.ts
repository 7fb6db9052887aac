// Stage-boundary types. Every stage imports from here and from nowhere upstream of itself:
//   sources → RawRecord → parse → LogEvent → rules → Match → state → BanDecision → firewall
// Each stage is a folder under src/ (plus cluster/ for Redis, control/ for the socket, cli/, and
// lib/ for shared helpers). src/daemon/ wires them, one job per file: pipeline.ts is the per-batch
// path (records → parse → match → decide → sink); start.ts the start-up order (and shutdown);
// supervisor.ts runs and restarts sources; reload.ts swaps config, rules and sources (new built
// before old stopped); control-handlers.ts answers the control socket; cluster-wiring.ts connects
// the Redis links; housekeeping.ts is the periodic tick; daemon.ts the facade the CLI holds.

/** A validated, canonical IP address. Minted only by `parse/ip.ts` (IPv4 dotted quad, IPv6 RFC 5952, ::ffff: unmapped). */
export type Ip = string & { readonly __brand: 'Ip' };

/** A validated network in canonical `addr/len` form (host bits zero). Minted only by `parse/ip.ts`. */
export type Cidr = string & { readonly __brand: 'Cidr' };

export type OriginKind = 'journald' | 'syslog-udp' | 'syslog-tcp' | 'syslog-tls' | 'file' | 'stdin' | 'control';

/** Where a record came from: enough to name the file:line or peer in an error, and to resume. */
export interface Origin {
  readonly kind: OriginKind;
  /** Source name from config (e.g. "journal", "collector-tcp") or the file path. */
  readonly name?: string;
  /** Sending peer for network sources, as "addr:port". */
  readonly peer?: string;
  /** journald cursor of this entry. */
  readonly cursor?: string;
  /** 1-based line number for files and stdin. */
  readonly line?: number;
}

/**
 * Fields of one journald entry, as `sd_journal` or `journalctl -o json|export` give them.
 * Values are strings; binary or over-long values the reader could not decode are left out.
 */
export interface JournalFields {
  readonly MESSAGE?: string;
  readonly SYSLOG_IDENTIFIER?: string;
  readonly SYSLOG_PID?: string;
  readonly SYSLOG_TIMESTAMP?: string;
  readonly _COMM?: string;
  readonly _PID?: string;
  readonly _HOSTNAME?: string;
  readonly _SYSTEMD_UNIT?: string;
  readonly __REALTIME_TIMESTAMP?: string;
  readonly __CURSOR?: string;
  readonly [field: string]: string | undefined;
}

/** What a source hands on: either a text line still to be parsed, or a structured journal entry. */
export type RawRecord =
  | { readonly kind: 'line'; readonly text: string; readonly origin: Origin; /** receive time, ms since epoch */ readonly received?: number }
  | { readonly kind: 'journal'; readonly fields: JournalFields; readonly origin: Origin };

/** One log message after parsing, whatever form it arrived in. */
export interface LogEvent {
  /** Event time in ms since the Unix epoch (from the message, or the receive time when it has none). */
  readonly time: number;
  /** Host name as the message names it ("" when unknown). */
  readonly host: string;
  /** Program / syslog tag without the pid, e.g. "postfix/smtpd", "dovecot" ("" when none). */
  readonly program: string;
  readonly pid?: number;
  /** The message text after the syslog header. */
  readonly message: string;
  readonly origin: Origin;
}

/**
 * Rule classes: the one list rule files are checked against.
 * `reject-temp`: a temporary (4xx) refusal the client caused; no default policy counts it (docs/rules-mta.md).
 * `server-error`: our own auth back end failed for this client's attempt (passdb unreadable, LDAP/SQL
 * down, saslauthd unreachable). Never counted against the client; state takes it as evidence of an
 * outage of its host (docs/counting.md, src/state/outage.ts).
 */
export const RULE_CLASSES = ['auth', 'probe', 'reject', 'reject-temp', 'server-error'] as const;
export type RuleClass = (typeof RULE_CLASSES)[number];
/** The classes a policy may count: every class but `server-error`, which is never the client's fault. */
export const POLICY_CLASSES = ['auth', 'probe', 'reject', 'reject-temp'] as const satisfies readonly RuleClass[];
/** Services a rule can name: the one list rule files, policies and the config are checked against. */
export const SERVICES = ['smtp', 'imap', 'pop3', 'sieve', 'webmail', 'groupware', 'mail'] as const;
export type Service = (typeof SERVICES)[number];

/**
 * How one matched line relates to the attempt it reports, so that state counts each attempt once
 * (see docs/counting.md):
 *  - no `session`/`pair`: the line is one attempt on its own;
 *  - `session`: lines sharing the key belong to one login session; a line with `total` is the
 *    session's summary ("N attempts") and brings the session's count up to N, never beyond;
 *  - `pair`: the same attempt is logged by two programs (Postfix SASL and Dovecot's auth process);
 *    a line of one `side` and a line of another side for the same address within the pairing
 *    window are one attempt;
 *  - `weak`: the line may be an attacker or an outage on our side (Postfix "Connection lost to
 *    authentication server"); state counts it only when corroborated.
 *  - `verdict`: the auth back end itself checked the password (Dovecot's auth process: "Password
 *    mismatch", "unknown user"), so it can read its passdb: an outage of its host is over. Side
 *    `auth-process` of a pair implies it.
 */
export interface AttemptInfo {
  readonly session?: string;
  readonly total?: number;
  readonly pair?: { readonly group: string; readonly side: string };
  readonly weak?: true;
  readonly verdict?: true;
}

/** A rule's verdict on one log line. */
export interface Match {
  readonly ip: Ip;
  readonly ruleId: string;
  readonly service: Service;
  readonly class: RuleClass;
  /** User name the line names (attacker-controlled: for display and distinct-user counting only). */
  readonly user?: string;
  readonly attempt: AttemptInfo;
  readonly event: LogEvent;
}

/** Action for the firewall: a ban of an address or prefix until a time, or its removal. */
export type BanDecision =
  | {
      readonly action: 'ban';
      /** The banned address (Ip) or prefix (Cidr, e.g. an IPv6 /64). */
      readonly target: Ip | Cidr;
      /** ms since epoch. */
      readonly until: number;
      /** 0 for a first ban, +1 per escalation. */
      readonly level: number;
      readonly policy: string;
      readonly ruleId: string;
      readonly evidence: readonly Match[];
    }
  | {
      readonly action: 'unban';
      readonly target: Ip | Cidr;
      readonly policy?: string;
      readonly reason: 'operator' | 'expired' | 'reconcile';
    };

/** A source of raw records. Finite for files/replay, endless for live sources; stops on abort. */
export interface Source {
  readonly name: string;
  records(signal: AbortSignal): AsyncIterable<readonly RawRecord[]>;
  /** What the source counts about itself (received, denied, dropped...): its numeric fields are exported as metrics and shown by `status`. */
  stats?(): object;
}

export interface ApplyReport {
  readonly applied: number;
  readonly failed: readonly { readonly decision: BanDecision; readonly error: Error }[];
}

/** The firewall stage behind one interface; every backend passes the same conformance suite. */
export interface FirewallBackend {
  readonly name: string;
  healthcheck(): Promise<void>;
  /** Create sets/chains/hooks; idempotent. */
  ensure(): Promise<void>;
  apply(batch: readonly BanDecision[]): Promise<ApplyReport>;
  /** Active entries: target → expiry (ms since epoch, or 0 for no timeout). */
  list(): Promise<ReadonlyMap<string, number>>;
  /** Remove hooks (and the sets when `purge`). */
  stop(opts?: { purge?: boolean }): Promise<void>;
}

/** Error with a stable code (MJ_*), so tests and admins can tell faults apart. */
export class MailjailError extends Error {
  constructor(
    readonly code: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(`${code}: ${message}`, options);
    this.name = 'MailjailError';
  }
}
