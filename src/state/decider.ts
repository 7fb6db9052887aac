// The single writer of ban decisions. Pure and synchronous: matches in, decisions out; the clock is
// the caller's `now` (event time in replay, wall time live), so replay and live share every line.
// Each policy keeps its own bounded counters (SlotTable), active bans and ban history.
import { isIpv6, loadMaskedKey, parseAddressOrNetwork, parseCidr, prefixOf, splitCidr } from '../parse/ip.js';
import { MailjailError } from '../types.js';
import type { BanDecision, Cidr, Ip, Match } from '../types.js';
import type { Allowlist } from './allowlist.js';
import { AUTH_PROCESS_SIDE, Deduper } from './dedupe.js';
import type { DedupeOptions } from './dedupe.js';
import { OutageDetector } from './outage.js';
import type { Outage, OutageOptions } from './outage.js';
import { banMs, historyWindow, maxBanMs, policyCounts, validatePolicy } from './policy.js';
import type { Policy } from './policy.js';
import type { BanRecord, LedgerEntry, LedgerSink, LedgerState, Position, Through } from './records.js';
import { SlotTable, userHash } from './window.js';

/** Name of the policy operator bans fall under when they name none. */
export const MANUAL_POLICY = 'manual';

export interface DeciderOptions extends DedupeOptions, OutageOptions {
  readonly policies: readonly Policy[];
  readonly allowlist?: Allowlist;
  /** Tracked keys per policy (LRU bound). Default 1 000 000. */
  readonly maxTracked?: number;
  /**
   * Matches kept per tracked key as ban evidence (the last N counted ones). Default 1: only the
   * match that triggered the ban, because keeping lines per key costs memory the table is built to
   * avoid; `mailjail check` may ask for `maxretry` to show the lines behind each ban.
   */
  readonly keepEvidence?: number;
  /** Written (durably) before `observe`/`ban`/`unban` return their decisions. */
  readonly ledger?: LedgerSink;
  /** Told of every attempt counted, per policy (shared counting across collectors: docs/cluster.md). */
  readonly onCounted?: (e: CountedAttempt) => void;
}

/** What observing one match (or a batch) did. */
export interface Observation {
  /** Bans decided (usually none); each ban carries its evidence (the counted matches behind it). */
  readonly decisions: readonly BanDecision[];
  /**
   * New attempts counted: 0 for a line that repeats an attempt (pair, session), an ignored weak
   * line, or a line of an address already banned. Summed over the matches of a batch.
   */
  readonly attempts: number;
}

const NOTHING: Observation = Object.freeze({ decisions: Object.freeze([]) as readonly BanDecision[], attempts: 0 });

export interface CountedAttempt {
  readonly policy: string;
  readonly key: Ip | Cidr;
  readonly n: number;
  readonly ruleId: string;
}

export interface DeciderStats {
  /** Matches seen by `observe`. */
  matches: number;
  /** Matches no policy counts (class/service). */
  ignored: number;
  /** Matches at or before the restored counted-through position (already counted before a restart). */
  skippedReplayed: number;
  /** Lines that repeat an attempt already counted (pair's other side, session lines). */
  absorbed: number;
  /** Attempts added to counters (summed over policies). */
  counted: number;
  weakCounted: number;
  /** Weak lines not counted: fewer than two definite attempts in the window, or an outage in progress. */
  weakIgnored: number;
  /** Lines of addresses under an active ban of any policy (not counted). */
  whileBanned: number;
  /** Attempts of allowlisted addresses (counted here only, never banned). */
  allowlistedHits: number;
  bans: number;
  /** Bans decided but not recorded because the ledger could not be written: undone, decided again later. */
  bansUnpersisted: number;
  operatorBans: number;
  unbans: number;
  /** Keys currently tracked, over all policies. */
  tracked: number;
  /** Keys pushed out of a full table (their counts are lost). */
  evictions: number;
  /** Bytes held by the counting tables' typed arrays (fixed by the number of slots ever used). */
  tableBytes: number;
  sessionsEvicted: number;
  /** Exact copies of a line already seen, not counted (docs/counting.md). */
  duplicates: number;
  /** Outages detected: weak lines from many addresses at once, or a host's server-error lines. */
  outages: number;
  /** An outage is in progress (weak, or of any host). */
  outage: boolean;
  /** Server-error lines seen (our back end failed for a client). */
  serverErrors: number;
  /** Failure lines not counted because their host's back end was failing, or paired with a server error. */
  outageExcused: number;
  /** Hosts whose back end is failing now. */
  outageHosts: number;
  activeBans: number;
  /** Events dropped because nobody drained them. */
  eventsDropped: number;
}

/** Things worth one log line, drained by the caller (the core has no logger). */
export type StateEvent =
  | { readonly kind: 'allowlisted'; readonly ip: Ip; readonly policy: string; readonly time: number }
  | {
      readonly kind: 'outage'; readonly state: 'start' | 'end'; readonly time: number;
      /** `weak`: many addresses' weak lines at once (no host); `server-error`: a host's back end failed. */
      readonly cause?: 'weak' | 'server-error';
      readonly host?: string;
      /** On `end` of a server-error outage: the outage as a whole. */
      readonly outage?: Outage;
    };

export interface ActiveBan extends BanRecord {}

/** A ledger ban that restore() left out, or whose end it shortened. */
export interface RestoreIssue {
  readonly target: string;
  readonly policy: string;
  readonly action: 'refused' | 'clamped';
  readonly reason: string;
}

/** How far in the future a restored ban's `since` may lie (clock stepped back after a restart). */
const RESTORE_SKEW_MS = 5 * 60_000;
/** Widest restored ban of a rule policy, unless the policy itself counts per a wider prefix. */
const RESTORE_WIDEST = { 4: 16, 6: 32 } as const;
/** Widest restored operator ban: what the firewall accepts. A policy no longer configured gets RESTORE_WIDEST. */
const RESTORE_WIDEST_MANUAL = { 4: 8, 6: 16 } as const;
/** Longest restored operator ban, or ban of a policy no longer configured (ms); a longer one is clamped. */
export const MAX_MANUAL_BAN_MS = 365 * 86_400_000;

interface PolicyState {
  readonly p: Policy;
  /** findtime (ms). */
  readonly window: number;
  readonly historyMs: number;
  readonly table: SlotTable;
  /** target → active (or recently expired) ban. */
  readonly bans: Map<string, BanRecord>;
  /** target → start times of its bans inside the history window, oldest first. */
  readonly history: Map<string, number[]>;
  /** `policy NUL ip` → last time an allowlisted hit was reported. */
  readonly allowReported: Map<string, number>;
  /** slot → last counted matches, only with keepEvidence > 1. */
  readonly evidence: Map<number, Match[]> | undefined;
}

/**
 * What deciding one ban changed in memory, kept until its ledger entry is durable: a ban whose
 * write fails is undone (the previous ban record and history come back) and its counts are kept,
 * so the offender's next counted line decides it again. The counts are forgotten only on success.
 */
interface BanUndo {
  readonly st: PolicyState;
  readonly target: string;
  readonly prevBan: BanRecord | undefined;
  readonly prevHistory: number[] | undefined;
  /** Address whose counts are forgotten once the ban is durable (undefined: already forgotten). */
  forget: Ip | undefined;
  readonly operator: boolean;
}

/** What observeBatch holds back until its group commit. */
interface Batch {
  readonly entries: LedgerEntry[];
  readonly undo: BanUndo[];
  /** `policy NUL key` → ban whose counts are still to be forgotten (see settleForgets). */
  readonly forgets: Map<string, BanUndo>;
}

const SWEEP_EVERY = 65_536;
const MAX_EVENTS = 10_000;

function manualPolicy(name: string): Policy {
  return { name, classes: ['auth'], maxretry: 1, findtime: 1000, bantime: 3_600_000, ipv4Prefix: 32, ipv6Prefix: 128 };
}

export class Decider {
  private states: PolicyState[] = [];
  private readonly byName = new Map<string, PolicyState>();
  private readonly dedupe: Deduper;
  private readonly outages: OutageDetector;
  private allowlist: Allowlist | undefined;
  private readonly ledger: LedgerSink | undefined;
  private maxTracked: number;
  /** Counted-through position per source. */
  private readonly positions = new Map<string, { line?: number; cursor?: string; time: number }>();
  /** Restored watermarks still to pass, per source. */
  private readonly resumeAfter = new Map<string, Position>();
  private events: StateEvent[] = [];
  /** Ledger entries (and how to undo their bans) held back for one group commit at the end of observeBatch. */
  private batch: Batch | undefined;
  private wasOutage = false;
  private readonly keepEvidence: number;
  private sinceSweep = 0;
  private readonly onCounted: ((e: CountedAttempt) => void) | undefined;
  private readonly s = {
    matches: 0, ignored: 0, skippedReplayed: 0, counted: 0, weakCounted: 0, weakIgnored: 0,
    whileBanned: 0, allowlistedHits: 0, bans: 0, bansUnpersisted: 0, operatorBans: 0, unbans: 0, eventsDropped: 0,
    serverErrors: 0, outageExcused: 0,
  };

  constructor(opts: DeciderOptions) {
    if (opts.policies.length === 0) throw new MailjailError('MJ_STATE_POLICY', 'at least one policy is needed');
    this.maxTracked = opts.maxTracked ?? 1_000_000;
    this.keepEvidence = Math.max(1, Math.floor(opts.keepEvidence ?? 1));
    if (!Number.isInteger(this.maxTracked) || this.maxTracked < 1) throw new MailjailError('MJ_STATE_POLICY', 'maxTracked must be a positive integer');
    for (const p of opts.policies) {
      validatePolicy(p);
      if (this.byName.has(p.name) || p.name === MANUAL_POLICY) throw new MailjailError('MJ_STATE_POLICY', `policy name "${p.name}" used twice or reserved`);
      const st = this.makeState(p, this.maxTracked);
      this.states.push(st);
      this.byName.set(p.name, st);
    }
    this.dedupe = new Deduper(opts);
    this.outages = new OutageDetector(opts);
    this.allowlist = opts.allowlist;
    this.ledger = opts.ledger;
    this.onCounted = opts.onCounted;
  }

  /**
   * Counts one matched line at time `now` (ms); returns the bans it triggers (usually none) and
   * the new attempts it counted. Decisions are in the ledger (when one is configured) before this returns. When the ledger
   * cannot write, it throws MJ_STATE_LEDGER and none of the line's bans is kept (the line itself
   * stays counted, so the address's next line decides the ban again).
   */
  observe(m: Match, now: number): Observation {
    this.s.matches++;
    if (++this.sinceSweep >= SWEEP_EVERY) this.sweep(now);
    if (this.resumeAfter.size > 0 && this.alreadyCounted(m)) {
      this.s.skippedReplayed++;
      return NOTHING;
    }
    this.track(m);
    this.endQuietOutages(now);
    // Our back end failed for this client: evidence of an outage of its host, never an attempt.
    if (m.class === 'server-error') {
      this.s.serverErrors++;
      if (this.outages.serverError(m.event.host, m.ip, now)) this.emit({ kind: 'outage', state: 'start', time: now, cause: 'server-error', host: m.event.host });
      return NOTHING;
    }
    let any = false;
    for (const st of this.states) if (policyCounts(st.p, m)) { any = true; break; }
    if (!any) {
      // Still one attempt of its login session: Dovecot's "Login failed: Plaintext authentication
      // disabled" (a probe) is followed by "(auth failed, 1 attempts)" for the same session, and
      // that summary must not count it as a guessed password (docs/counting.md).
      if (m.attempt.session !== undefined && m.attempt.total === undefined && m.attempt.pair === undefined) this.dedupe.credit(m, now);
      this.s.ignored++;
      return NOTHING;
    }
    // A banned address is not counted by any policy until its ban ends: its lines are the firewall
    // catching up, and a second, shorter ban of the same target could shorten the first one.
    if (this.bannedNow(m.ip, now)) {
      this.s.whileBanned++;
      return NOTHING;
    }
    if (this.batch && this.batch.forgets.size > 0) this.settleForgets(m.ip);
    if (this.dedupe.duplicate(m)) return NOTHING; // one line logged twice (syslog_duplication, two collectors)
    // The auth process's own verdict (side auth-process, or a verdict line of a login session):
    // the back end answers again.
    if (m.attempt.pair?.side === AUTH_PROCESS_SIDE || m.attempt.verdict === true) {
      const o = this.outages.recovered(m.event.host, now);
      if (o) this.emit({ kind: 'outage', state: 'end', time: o.end, cause: 'server-error', host: o.host, outage: o });
    }
    // While a host's back end fails, its failures are not the clients' (for every address); a
    // failure paired with a server-error line of its address is that failed attempt, on any host.
    if (this.outages.excuses(m.event.host, m.ip, now)) {
      this.s.outageExcused++;
      return NOTHING;
    }
    // A weak line is decided before it takes part in pairing: an ignored one must not leave a
    // pair credit that would swallow the definite line the other daemon logs for the same attempt.
    const weak = m.attempt.weak === true;
    if (weak) {
      const corroborated = this.corroborated(m, now);
      const outage = this.dedupe.weakOutage(m.ip, now, !corroborated);
      if (outage !== this.wasOutage) this.emit({ kind: 'outage', state: outage ? 'start' : 'end', time: now, cause: 'weak' });
      this.wasOutage = outage;
      if (!corroborated || outage) {
        this.s.weakIgnored++;
        return NOTHING;
      }
    }
    const n = this.dedupe.credit(m, now);
    if (n === 0) return NOTHING;
    const counted: Observation = { decisions: NOTHING.decisions, attempts: n };
    if (this.allowlist?.contains(m.ip)) {
      this.s.allowlistedHits += n;
      for (const st of this.states) if (policyCounts(st.p, m)) this.reportAllowlisted(st, m.ip, now);
      return counted;
    }
    let out: BanDecision[] | undefined;
    const entries: LedgerEntry[] = [];
    const undo: BanUndo[] = [];
    for (const st of this.states) {
      if (!policyCounts(st.p, m)) continue;
      const banned = this.count(st, m, n, weak, now, undo);
      if (banned) {
        const { rec, evidence } = banned;
        (out ??= []).push({ action: 'ban', target: rec.target, until: rec.until, level: rec.level, policy: rec.policy, ruleId: rec.ruleId, evidence });
        entries.push({ t: 'ban', ...rec, through: this.through() });
      }
    }
    if (!out) return counted;
    if (this.batch) {
      this.batch.entries.push(...entries);
      for (const u of undo) {
        this.batch.undo.push(u);
        if (u.forget !== undefined) this.batch.forgets.set(`${u.st.p.name}\0${keyOf(u.forget, u.st.p)}`, u);
      }
    } else {
      // A ledger that cannot write throws MJ_STATE_LEDGER here, after the bans are undone: a ban
      // the daemon could not remember is neither handed on nor listed.
      this.commit(entries, undo);
    }
    return { decisions: out, attempts: n };
  }

  /**
   * `observe` over a batch; `now` is the counting time of each match: a number, a function of the
   * match (and its index), or by default the match's event time (replay). The batch's bans go to
   * the ledger in one write + fsync (group commit) before any of them is returned. When that write
   * fails (or a match throws), every ban of the batch is undone and MJ_STATE_LEDGER is thrown; the
   * matches stay counted, so each offender's next line decides its ban again.
   */
  observeBatch(ms: readonly Match[], now?: number | ((m: Match, i: number) => number)): Observation {
    if (this.batch) throw new MailjailError('MJ_STATE_REENTRANT', 'observeBatch called inside observeBatch');
    const out: BanDecision[] = [];
    let attempts = 0;
    const batch: Batch = { entries: [], undo: [], forgets: new Map() };
    this.batch = batch;
    try {
      for (let i = 0; i < ms.length; i++) {
        const m = ms[i]!;
        const o = this.observe(m, typeof now === 'function' ? now(m, i) : now ?? m.event.time);
        attempts += o.attempts;
        if (o.decisions.length > 0) out.push(...o.decisions);
      }
    } catch (e) {
      this.batch = undefined;
      this.rollback(batch.undo);
      throw e;
    }
    this.batch = undefined;
    this.commit(batch.entries, batch.undo);
    return { decisions: out, attempts };
  }

  /**
   * Operator ban: enters the same path as a rule ban (ledger, history, the same decision type).
   * `bantime` (ms) defaults to the policy's escalated ban time. Allowlisted targets are refused.
   */
  ban(req: { readonly target: string; readonly now: number; readonly bantime?: number; readonly policy?: string; readonly ruleId?: string }): BanDecision[] {
    const target = parseTarget(req.target);
    if (this.allowlist?.overlaps(parseCidr(target)!)) throw new MailjailError('MJ_STATE_ALLOWLISTED', `${target} is allowlisted; remove it from the allowlist first`);
    if (req.bantime !== undefined && !(Number.isFinite(req.bantime) && req.bantime > 0)) throw new MailjailError('MJ_STATE_BANTIME', 'bantime must be > 0 ms');
    const st = this.stateFor(req.policy ?? MANUAL_POLICY, req.policy === undefined);
    const undo = this.undoFor(st, target, splitCidr(parseCidr(target)!).addr, true);
    const rec = this.decide(st, target, req.ruleId ?? 'operator', req.now, req.bantime);
    this.s.operatorBans++;
    // Throws MJ_STATE_LEDGER to the operator, with the ban undone, when it cannot be written.
    this.commit([{ t: 'ban', ...rec, through: this.through() }], [undo]);
    return [{ action: 'ban', target: rec.target, until: rec.until, level: rec.level, policy: rec.policy, ruleId: rec.ruleId, evidence: [] }];
  }

  /**
   * Operator unban: lifts the target's active bans in every policy and forgets its counts. The
   * ledger is written first: when it cannot be, MJ_STATE_LEDGER is thrown and nothing changes.
   */
  unban(req: { readonly target: string; readonly now: number; readonly reason?: 'operator' | 'reconcile' }): BanDecision[] {
    const target = parseTarget(req.target);
    const reason = req.reason ?? 'operator';
    const out: BanDecision[] = [];
    const entries: LedgerEntry[] = [];
    const lifted: [PolicyState, BanRecord][] = [];
    const addr = splitCidr(parseCidr(target)!).addr;
    for (const st of this.allStates()) {
      // An address inside a banned prefix (the /64 of a policy) lifts that prefix's ban.
      let rec = st.bans.get(target);
      if ((!rec || rec.until <= req.now) && target === addr) rec = st.bans.get(keyOf(addr, st.p));
      if (!rec || rec.until <= req.now) continue;
      lifted.push([st, { ...rec, until: req.now }]);
      out.push({ action: 'unban', target: rec.target, policy: st.p.name, reason });
      entries.push({ t: 'unban', target: rec.target, policy: st.p.name, at: req.now, reason });
    }
    // Nothing known here: still ask the firewall to remove it (idempotent there).
    if (out.length === 0) {
      out.push({ action: 'unban', target, reason });
      entries.push({ t: 'unban', target, at: req.now, reason });
    }
    this.ledger?.record(entries);
    for (const [st, rec] of lifted) st.bans.set(rec.target, rec);
    for (const st of this.allStates()) forgetCounts(st, addr);
    this.s.unbans += out.length;
    return out;
  }

  /**
   * Loads a ledger's state after a restart: history for escalation, active bans (returned as
   * decisions to re-apply through the firewall, not written again) and the counted-through
   * positions, so lines re-fed by a source are not counted twice. The ledger is a file someone may
   * edit: each ban passes the checks a live ban gets (see restoreCheck); one that fails is left out
   * (or its end clamped) and reported through `onIssue`.
   */
  restore(state: LedgerState, now: number, onIssue?: (issue: RestoreIssue) => void): BanDecision[] {
    const out: BanDecision[] = [];
    for (const raw of state.bans) {
      const check = this.restoreCheck(raw, now);
      if (check.issue) onIssue?.(check.issue);
      const rec = check.rec;
      if (!rec) continue;
      const st = this.stateFor(rec.policy, true);
      if (st.historyMs > 0 && rec.since >= now - st.historyMs) pushSorted(st.history, rec.target, rec.since);
      if (rec.until > now) {
        const cur = st.bans.get(rec.target);
        if (!cur || cur.until < rec.until) st.bans.set(rec.target, rec);
      }
    }
    for (const st of this.allStates()) {
      for (const rec of st.bans.values()) {
        if (rec.until > now) out.push({ action: 'ban', target: rec.target, until: rec.until, level: rec.level, policy: rec.policy, ruleId: rec.ruleId, evidence: [] });
      }
    }
    for (const [k, pos] of Object.entries(state.through)) {
      this.resumeAfter.set(k, pos);
      this.positions.set(k, { ...pos });
    }
    return out;
  }

  /**
   * The sanity checks of a ledger ban before it is restored: a canonical target no wider than a
   * live ban could be, not covered by the allowlist (which holds loopback and the host's own
   * addresses unless configured otherwise), a start not in the future (beyond clock skew) and an
   * end no later than the longest ban its policy can give, else clamped to it.
   */
  private restoreCheck(rec: BanRecord, now: number): { rec?: BanRecord; issue?: RestoreIssue } {
    const target = String(rec.target);
    const refuse = (reason: string): { issue: RestoreIssue } => ({ issue: { target: target.slice(0, 64), policy: String(rec.policy).slice(0, 64), action: 'refused', reason } });
    const c = typeof rec.target === 'string' ? parseCidr(rec.target) : undefined;
    // The form parseAddressOrNetwork gives (a host as a bare address), or two keys would name one target.
    if (!c || parseAddressOrNetwork(c) !== rec.target) return refuse('not a canonical address or network');
    if (!Number.isFinite(rec.since) || !Number.isFinite(rec.until)) return refuse('since/until are not finite times');
    if (rec.since > now + RESTORE_SKEW_MS) return refuse(`starts ${Math.round((rec.since - now) / 1000)} s in the future`);
    const { addr, len } = splitCidr(c);
    const fam = isIpv6(addr) ? 6 : 4;
    // Operator bans may be as wide and long as the operator chose (within hard limits); rule bans
    // no wider than the policy counts (or /16, /32) and no longer than it escalates; bans of a
    // policy no longer configured get the sane width and the hard length limit.
    const policy = this.states.find((st) => st.p.name === rec.policy)?.p; // a configured one, not a carrier
    const manual = rec.policy === MANUAL_POLICY || rec.ruleId === 'operator';
    const kind = manual ? 'manual' : policy ? 'policy' : 'unconfigured-policy';
    let widest: number = manual ? RESTORE_WIDEST_MANUAL[fam] : RESTORE_WIDEST[fam];
    if (!manual && policy) widest = Math.min(widest, fam === 4 ? policy.ipv4Prefix : policy.ipv6Prefix);
    if (len < widest) return refuse(`a /${len} is wider than a ${kind} ban may be (/${widest})`);
    if (this.allowlist?.overlaps(c)) return refuse('allowlisted');
    const longest = !manual && policy ? maxBanMs(policy) : MAX_MANUAL_BAN_MS;
    const cap = rec.since + longest;
    if (rec.until <= cap) return { rec };
    return {
      rec: { ...rec, until: cap },
      issue: { target, policy: rec.policy, action: 'clamped', reason: `ends after the longest ${kind} ban (${longest / 1000} s): clamped to ${new Date(cap).toISOString()}` },
    };
  }

  /**
   * Config reload: a new allowlist, policy set and/or table bound, keeping what still applies.
   * Counters carry over (resized when maxretry or maxTracked change) while every attempt they hold
   * would still count under the new policy: same prefixes, no class or service dropped, and no
   * distinct-user rule newly required (older attempts have no user names). Otherwise that policy's
   * counters start afresh. Every policy keeps its bans and history by name; bans of removed policies
   * stay listed (and can be unbanned) until they expire. Validates everything before changing
   * anything. Returns the names of the policies whose counters started afresh.
   */
  reload(opts: { readonly policies?: readonly Policy[]; readonly allowlist?: Allowlist; readonly maxTracked?: number }): string[] {
    const max = opts.maxTracked ?? this.maxTracked;
    if (!Number.isInteger(max) || max < 1) throw new MailjailError('MJ_STATE_POLICY', 'maxTracked must be a positive integer');
    const afresh: string[] = [];
    const ps = opts.policies ?? (max !== this.maxTracked ? this.states.map((st) => st.p) : undefined);
    if (ps) {
      if (ps.length === 0) throw new MailjailError('MJ_STATE_POLICY', 'at least one policy is needed');
      const names = new Set<string>();
      for (const p of ps) {
        validatePolicy(p);
        if (names.has(p.name) || p.name === MANUAL_POLICY) throw new MailjailError('MJ_STATE_POLICY', `policy name "${p.name}" used twice or reserved`);
        names.add(p.name);
      }
      const next: PolicyState[] = [];
      for (const p of ps) {
        const old = this.byName.get(p.name);
        // A carrier of a removed policy's bans has no counters worth keeping.
        const live = old !== undefined && this.states.includes(old) ? old : undefined;
        let base: PolicyState;
        if (live && sameCounting(live.p, p) && max === this.maxTracked && keepsCounts(live.p, p)) base = live;
        else {
          base = this.makeState(p, max);
          if (live && keepsCounts(live.p, p)) {
            const ev = base.evidence;
            live.table.copyInto(base.table, (from, to) => {
              const e = live.evidence?.get(from);
              if (e && ev) ev.set(to, e);
            });
          } else if (live) afresh.push(p.name);
        }
        const st: PolicyState = { ...base, p, window: p.findtime, historyMs: historyWindow(p), ...(old ? { bans: old.bans, history: old.history, allowReported: old.allowReported } : {}) };
        next.push(st);
        this.byName.set(p.name, st);
      }
      for (const old of this.states) {
        if (names.has(old.p.name)) continue;
        const carrier = this.makeState(manualPolicy(old.p.name), 1);
        this.byName.set(old.p.name, { ...carrier, bans: old.bans, history: old.history });
      }
      this.states = next;
      this.maxTracked = max;
    }
    if (opts.allowlist) this.allowlist = opts.allowlist;
    return afresh;
  }

  /** Active bans at `now`, over all policies. */
  activeBans(now: number): ActiveBan[] {
    const out: ActiveBan[] = [];
    for (const st of this.allStates()) for (const rec of st.bans.values()) if (rec.until > now) out.push(rec);
    return out;
  }

  /** Counted-through position per source, for a checkpoint on orderly shutdown. */
  through(): Through {
    return Object.fromEntries([...this.positions].map(([k, v]) => [k, { ...v }]));
  }

  /** Drops expired bans and history older than the history window (also run every 65 536 matches). */
  sweep(now: number): void {
    this.sinceSweep = 0;
    this.endQuietOutages(now);
    for (const st of this.allStates()) {
      for (const [k, rec] of st.bans) if (rec.until <= now) st.bans.delete(k);
      for (const [k, times] of st.history) {
        while (times.length > 0 && times[0]! < now - st.historyMs) times.shift();
        if (times.length === 0) st.history.delete(k);
      }
    }
  }

  /** Server-error outages still in progress, with the end they will have if their host stays quiet. */
  currentOutages(): Outage[] {
    return this.outages.current();
  }

  /** Whether events wait to be drained (lets a per-line caller skip `drainEvents`). */
  get hasEvents(): boolean {
    return this.events.length > 0;
  }

  drainEvents(): StateEvent[] {
    const e = this.events;
    this.events = [];
    return e;
  }

  stats(): DeciderStats {
    let tracked = 0, evictions = 0, activeBans = 0, tableBytes = 0;
    for (const st of this.allStates()) {
      tracked += st.table.size;
      tableBytes += st.table.bytes;
      evictions += st.table.evictions;
      activeBans += st.bans.size;
    }
    const d = this.dedupe.stats;
    return {
      ...this.s, absorbed: d.absorbed, sessionsEvicted: d.sessionsEvicted, outages: d.outages + this.outages.started, duplicates: d.duplicates,
      outage: this.dedupe.outage || this.outages.active > 0, outageHosts: this.outages.active,
      tracked, evictions, tableBytes, activeBans,
    };
  }

  // ── internals ────────────────────────────────────────────────────────────────────────────

  /**
   * Whether a weak line of this address is explained by its own definite failures: two of them
   * within the window of a policy that counts it (Dovecot's auth penalty, which makes Postfix give
   * up waiting, only grows after repeated failures; one typo before an outage is not enough).
   */
  private corroborated(m: Match, now: number): boolean {
    for (const st of this.states) {
      if (!policyCounts(st.p, m)) continue;
      loadKey(st.table.key, m.ip, st.p);
      const slot = st.table.find();
      if (slot >= 0 && st.table.secondLastDefinite(slot) >= now - st.window) return true;
    }
    return false;
  }

  /** Adds `n` attempts of `m` to policy `st`; returns the ban and its evidence when this makes maxretry. */
  private count(st: PolicyState, m: Match, n: number, weak: boolean, now: number, undo: BanUndo[]): { rec: BanRecord; evidence: readonly Match[] } | undefined {
    loadKey(st.table.key, m.ip, st.p);
    let slot = st.table.find();
    if (weak && (slot < 0 || st.table.secondLastDefinite(slot) < now - st.window)) {
      // Corroborated under another policy, not this one.
      this.s.weakIgnored += n;
      return undefined;
    }
    if (slot < 0) {
      slot = st.table.add();
      st.evidence?.delete(slot); // a reused slot's lines belong to the evicted key
    }
    // Out-of-order lines (merged sources) are counted at the newest time seen for the key,
    // so the ring stays in time order.
    const t = Math.max(now, st.table.latest(slot));
    st.table.push(slot, t, n, userHash(m.user), !weak);
    this.s.counted += n;
    if (weak) this.s.weakCounted += n;
    this.onCounted?.({ policy: st.p.name, key: keyOf(m.ip, st.p), n, ruleId: m.ruleId });
    if (st.evidence) {
      let ev = st.evidence.get(slot);
      if (!ev) st.evidence.set(slot, (ev = []));
      ev.push(m);
      if (ev.length > this.keepEvidence) ev.shift();
    }
    const since = t - st.window;
    if (st.table.countSince(slot, since) < st.p.maxretry) return undefined;
    if (st.p.distinctUsers !== undefined && st.table.distinctUsersSince(slot, since) < st.p.distinctUsers) return undefined;
    let target: Ip | Cidr = keyOf(m.ip, st.p);
    // Never let a prefix ban cover an allowlisted address: fall back to the offending address.
    if (target !== m.ip && this.allowlist?.overlaps(target as Cidr)) target = m.ip;
    // With keepEvidence > 1 the last counted lines of the key, else the line that made maxretry.
    const evidence = st.evidence?.get(slot) ?? [m];
    // The counts are forgotten once the ban is in the ledger (commit), so that a ban that cannot
    // be written is decided again at the offender's next line. Inside a batch, a line that would
    // read this slot before the commit (the ban ran out, or an address of an allowlisted prefix
    // whose ban fell back to one address) forgets them first: settleForgets.
    undo.push(this.undoFor(st, target, m.ip, false));
    this.s.bans++;
    return { rec: this.decide(st, target, m.ruleId, t), evidence };
  }

  /** What to restore if the ban about to be decided for `target` cannot be written. */
  private undoFor(st: PolicyState, target: string, forget: Ip | undefined, operator: boolean): BanUndo {
    const hist = st.history.get(target);
    return { st, target, prevBan: st.bans.get(target), prevHistory: hist ? [...hist] : undefined, forget, operator };
  }

  /** Writes the entries, then forgets the counts of what they ban; on a failed write undoes the bans and throws. */
  private commit(entries: readonly LedgerEntry[], undo: readonly BanUndo[]): void {
    if (entries.length > 0 && this.ledger) {
      try {
        this.ledger.record(entries);
      } catch (e) {
        this.rollback(undo);
        throw e;
      }
    }
    for (const u of undo) if (u.forget !== undefined) forgetCounts(u.st, u.forget);
  }

  /**
   * Inside a batch: forgets, before `ip` is counted or corroborated, the counts of a ban decided
   * earlier in the batch under the same key, as deciding it outside a batch would have done.
   */
  private settleForgets(ip: Ip): void {
    const forgets = this.batch!.forgets;
    for (const st of this.states) {
      const k = `${st.p.name}\0${keyOf(ip, st.p)}`;
      const u = forgets.get(k);
      if (!u) continue;
      forgets.delete(k);
      if (u.forget !== undefined && u.st === st) forgetCounts(st, u.forget);
      u.forget = undefined;
    }
  }

  /** Undoes bans decided in memory whose ledger entries were not written (newest first). */
  private rollback(undo: readonly BanUndo[]): void {
    for (let i = undo.length - 1; i >= 0; i--) {
      const u = undo[i]!;
      if (u.prevBan) u.st.bans.set(u.target, u.prevBan); else u.st.bans.delete(u.target);
      if (u.prevHistory) u.st.history.set(u.target, u.prevHistory); else u.st.history.delete(u.target);
      if (u.operator) this.s.operatorBans--; else this.s.bans--;
      this.s.bansUnpersisted++;
    }
  }

  /** Whether `ip` is under an active ban of any policy (its own key there, or the address itself). */
  private bannedNow(ip: Ip, now: number): boolean {
    for (const st of this.allStates()) {
      if (st.bans.size === 0) continue;
      const key = keyOf(ip, st.p);
      const rec = st.bans.get(key) ?? (key !== ip ? st.bans.get(ip) : undefined);
      if (rec && rec.until > now) return true;
    }
    return false;
  }

  /** Ban length with escalation and recidive; records the ban and its history. */
  private decide(st: PolicyState, target: Ip | Cidr, ruleId: string, now: number, bantime?: number): BanRecord {
    const hist = st.history.get(target);
    const p = st.p;
    let previous = 0, recent = 0;
    for (const t of hist ?? []) {
      if (p.escalation && t >= now - p.escalation.window) previous++;
      if (p.recidive && t >= now - p.recidive.window) recent++;
    }
    const rec: BanRecord = { policy: p.name, target, since: now, until: now + (bantime ?? banMs(p, previous, recent)), level: previous, ruleId };
    st.bans.set(target, rec);
    if (st.historyMs > 0) pushSorted(st.history, target, now);
    return rec;
  }

  private reportAllowlisted(st: PolicyState, ip: Ip, now: number): void {
    const k = `${st.p.name}\0${ip}`;
    const last = st.allowReported.get(k);
    if (last !== undefined && now - last <= st.window) return;
    st.allowReported.delete(k);
    st.allowReported.set(k, now);
    if (st.allowReported.size > 10_000) st.allowReported.delete(st.allowReported.keys().next().value!);
    this.emit({ kind: 'allowlisted', ip, policy: st.p.name, time: now });
  }

  /** Ends the outages of hosts quiet for the hold time (on each line, and on sweeps when no line comes). */
  private endQuietOutages(now: number): void {
    for (const o of this.outages.expire(now)) this.emit({ kind: 'outage', state: 'end', time: o.end, cause: 'server-error', host: o.host, outage: o });
  }

  private emit(e: StateEvent): void {
    if (this.events.length >= MAX_EVENTS) this.s.eventsDropped++;
    else this.events.push(e);
  }

  private track(m: Match): void {
    const o = m.event.origin;
    const k = `${o.kind}:${o.name ?? ''}`;
    let pos = this.positions.get(k);
    if (!pos) {
      pos = { time: m.event.time };
      this.positions.set(k, pos);
    }
    pos.time = m.event.time;
    if (o.line !== undefined) pos.line = o.line; else delete pos.line;
    if (o.cursor !== undefined) pos.cursor = o.cursor; else delete pos.cursor;
  }

  /** Whether a re-fed match lies at or before its source's restored position (then skipped). */
  private alreadyCounted(m: Match): boolean {
    const o = m.event.origin;
    const k = `${o.kind}:${o.name ?? ''}`;
    const wm = this.resumeAfter.get(k);
    if (!wm) return false;
    if (o.line !== undefined && wm.line !== undefined) {
      // A line number alone is not enough: after log rotation the same file name starts at line 1
      // again with newer events, which must count. Skipping ends at the first line past the position.
      if (o.line > wm.line) {
        this.resumeAfter.delete(k);
        return false;
      }
      return m.event.time <= wm.time;
    }
    if (o.cursor !== undefined && o.cursor === wm.cursor) {
      this.resumeAfter.delete(k);
      return true;
    }
    const before = m.event.time < wm.time;
    if (!before) this.resumeAfter.delete(k);
    return before;
  }

  private makeState(p: Policy, max: number): PolicyState {
    return {
      p, window: p.findtime, historyMs: historyWindow(p),
      table: new SlotTable(p.maxretry, max, p.distinctUsers !== undefined),
      bans: new Map(), history: new Map(), allowReported: new Map(),
      evidence: this.keepEvidence > 1 ? new Map() : undefined,
    };
  }

  /** A configured policy, or a carrier for operator bans and for bans of policies no longer configured. */
  private stateFor(name: string, create: boolean): PolicyState {
    let st = this.byName.get(name);
    if (st) return st;
    if (!create) throw new MailjailError('MJ_STATE_POLICY', `no policy named "${name}"`);
    st = this.makeState(manualPolicy(name), 1);
    this.byName.set(name, st);
    return st;
  }

  private allStates(): Iterable<PolicyState> {
    return this.byName.values();
  }
}

/** The counting key of an address under a policy: the address, or its prefix as a CIDR. */
export function keyOf(ip: Ip, p: Policy): Ip | Cidr {
  const v6 = isIpv6(ip);
  const len = v6 ? p.ipv6Prefix : p.ipv4Prefix;
  return len === (v6 ? 128 : 32) ? ip : prefixOf(ip, len);
}

/** Writes the counting key of `ip` under policy `p` into a table's key register (see parse/ip). */
function loadKey(key: Uint32Array, ip: Ip, p: Policy): void {
  loadMaskedKey(key, ip, p.ipv4Prefix, p.ipv6Prefix);
}

/** Whether two versions of a policy count into the same table (same ring size and keys). */
function sameCounting(a: Policy, b: Policy): boolean {
  return a.maxretry === b.maxretry && a.ipv4Prefix === b.ipv4Prefix && a.ipv6Prefix === b.ipv6Prefix && (a.distinctUsers === undefined) === (b.distinctUsers === undefined);
}

/**
 * Whether the attempts counted under `a` still count under `b`: the same keys (prefixes), no
 * class or service dropped, and user names held if `b` needs them.
 */
function keepsCounts(a: Policy, b: Policy): boolean {
  const covers = <T>(was: readonly T[] | undefined, now: readonly T[] | undefined): boolean =>
    now === undefined || (was !== undefined && was.every((x) => now.includes(x)));
  return a.ipv4Prefix === b.ipv4Prefix && a.ipv6Prefix === b.ipv6Prefix && covers(a.classes, b.classes) && covers(a.services, b.services) &&
    (b.distinctUsers === undefined || a.distinctUsers !== undefined);
}

/** Forgets the counts of the key that holds `addr` under `p`. */
function forgetCounts(st: PolicyState, addr: Ip): void {
  loadKey(st.table.key, addr, st.p);
  const slot = st.table.peek();
  if (slot < 0) return;
  st.table.forget(slot);
  st.evidence?.delete(slot);
}

/** Operator input → canonical Ip (full-length) or Cidr. */
function parseTarget(s: string): Ip | Cidr {
  const t = parseAddressOrNetwork(s);
  if (!t) throw new MailjailError('MJ_STATE_TARGET', `"${s}" is not an address or CIDR`);
  return t;
}

function pushSorted(m: Map<string, number[]>, k: string, t: number): void {
  const a = m.get(k);
  if (!a) {
    m.set(k, [t]);
    return;
  }
  let i = a.length;
  while (i > 0 && a[i - 1]! > t) i--;
  a.splice(i, 0, t);
  if (a.length > 64) a.shift();
}
