// Compares what the clients really did (the servers' answers) with what mailjail counted from the
// servers' log lines. Shared by the live suite and by the replay of the committed capture.
import { FAILURE_WORDS, keyFor } from './analyse.js';
import type { Analysis } from './analyse.js';
import type { StepResult } from './scenario.js';

/** One client connection as recorded in test/fixtures/real/postfix-dovecot.truth.json. */
export interface Truth {
  readonly actor: string;
  readonly role: 'attacker' | 'benign';
  readonly src: string;
  readonly proto: string;
  readonly port: number;
  readonly users: readonly string[];
  readonly results: readonly ('ok' | 'fail' | 'error')[];
}

export function toTruth(results: readonly StepResult[]): Truth[] {
  return results.map((r) => ({ actor: r.actor, role: r.role, src: r.src, proto: r.step.proto, port: r.step.port, users: r.step.logins.map((l) => l.user), results: r.results }));
}

/** key (address or IPv6 /64) → failed attempts the clients made. */
export function madeOf(truth: readonly Truth[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const t of truth) {
    const k = keyFor(t.src);
    m.set(k, (m.get(k) ?? 0) + t.results.filter((v) => v === 'fail').length);
  }
  return m;
}

/**
 * Known gap (reported to the lead; a TODO test, not a CI failure): under Dovecot's auth penalty
 * (up to 15 s for an address with recent failures) an attacker's SASL request waits longer than
 * Postfix's auth-server timeout. Postfix then logs only "SASL ... authentication failed:
 * Connection lost to authentication server" (marked weak by the rules). For an unknown user
 * Dovecot logs nothing more, and the state stage drops the weak line once 3+ addresses show it
 * within a minute (its outage heuristic) — what several attackers at once look like: one attempt
 * too few. For a wrong password Dovecot logs "Password mismatch" ~5 s AFTER Postfix's line; when
 * the weak line was counted too, the attempt counts twice: one too many.
 */
export const AUTH_TIMEOUT_LINE = /SASL \S+ authentication failed: Connection lost to authentication server/;

/** Problems (hard failures); discrepancies fully explained by the known gap go to `gaps`. */
export function compare(form: string, an: Analysis, made: ReadonlyMap<string, number>, truth: readonly Truth[], maxretry: number, gaps: string[]): string[] {
  const out: string[] = [];
  for (const [k, n] of made) {
    const c = an.counted.get(k) ?? 0;
    const lost = an.matches.filter((x) => keyFor(x.m.ip) === k && AUTH_TIMEOUT_LINE.test(x.m.event.message));
    const lostUncounted = lost.filter((x) => x.counted === 0).length;
    const lostCounted = lost.length - lostUncounted;
    if (c < n && n - c <= lostUncounted) {
      gaps.push(`${form}: ${k} made ${n} failed attempts, counted ${c}: ${n - c} only logged by Postfix as "Connection lost to authentication server" (weak, not counted)`);
    } else if (c > n && c - n <= lostCounted) {
      gaps.push(`${form}: ${k} made ${n} failed attempts, counted ${c}: a counted "Connection lost to authentication server" line and Dovecot's later "Password mismatch" are the same attempt`);
    } else if (c !== n) out.push(`${form}: ${k} made ${n} failed attempts, mailjail counted ${c}`);
    if (n < maxretry && c >= maxretry) out.push(`${form}: ${k} would be banned with only ${n} failed attempts`);
  }
  for (const [k, c] of an.counted) if (!made.has(k)) out.push(`${form}: counted ${c} attempts for ${k}, which is no client`);
  // Mis-captures: the captured address must be a client, the user one that client really tried.
  const tried = new Map<string, Set<string>>();
  for (const t of truth) for (const u of t.users) (tried.get(t.src) ?? tried.set(t.src, new Set()).get(t.src)!).add(u);
  for (const { line, m } of an.matches) {
    const users = tried.get(m.ip);
    if (!users) { out.push(`${form}: ${m.ruleId} captured ip ${m.ip}, which is no client: ${line}`); continue; }
    if (m.user !== undefined && !users.has(m.user)) out.push(`${form}: ${m.ruleId} captured user "${m.user}" that ${m.ip} never tried: ${line}`);
  }
  if (an.parseErrors) out.push(`${form}: ${an.parseErrors} lines did not parse`);
  return out;
}

/** Lines of the mail daemons naming an attacking address, that look like a failure, and that no rule took. */
export function missedLines(an: Analysis, truth: readonly Truth[]): string[] {
  const attackers = new Set(truth.filter((t) => t.results.includes('fail')).map((t) => t.src));
  const matched = new Set(an.matches.map((x) => x.line));
  const out: string[] = [];
  for (const { line, ev } of an.events) {
    if (matched.has(line) || !/^(postfix|dovecot)/.test(ev.program)) continue;
    if (![...attackers].some((a) => ev.message.includes(a))) continue;
    if (!FAILURE_WORDS.test(ev.message)) continue;
    out.push(`${ev.program}: ${ev.message}`);
  }
  return out;
}
