// `mailjail check`: replays log files (or stdin) through parse → rules → state with the event-time
// clock, and tells a mail admin what mailjail would catch and whom it would ban.
import { closeSync, openSync, readSync, statSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { LINE_FORMATS, parseRecord } from '../parse/index.js';
import type { LineFormat } from '../parse/index.js';
import { RuleLoadError } from '../rules/load.js';
import { BUNDLED_RULES_DIR, loadRulePack } from '../rules/pack.js';
import { FileSource } from '../sources/file.js';
import { defaultPolicy } from '../daemon/config.js';
import { Decider } from '../state/decider.js';
import type { StateEvent } from '../state/decider.js';
import type { Policy } from '../state/policy.js';
import type { Match, Service } from '../types.js';
import { isIpv6, prefixOf } from '../parse/ip.js';
import { MailjailError } from '../types.js';
import { BufferedOut, count, fmtInt, table } from './output.js';

export interface CheckOptions {
  readonly rules: string;
  readonly format: LineFormat;
  readonly json: boolean;
  readonly maxretry?: number;
  readonly findtime?: number;
  readonly top: number;
}

/** An offender as the policy counts it: an address, or its prefix (IPv6 /64 by default). */
interface Offender { key: string; attempts: number; lines: number; addresses: Set<string>; first: number; last: number; rules: Set<string> }

export interface CheckSummary {
  lines: number;
  matched: number;
  parseErrors: number;
  oversize: number;
  invalidCaptures: number;
  /** Lines in no format check knows: no syslog/RFC 5424 header, not journald JSON, no daemon-log rule matched. */
  notUnderstood: number;
  /** Of those, lines holding NUL bytes or invalid UTF-8: binary input. */
  binaryLines: number;
  /** Lines per rule, and per service within the rule (see SessionServices). */
  perRule: Map<string, { n: number; services: Map<Service, number>; cls: string }>;
  perService: Map<string, number>;
  sessions: SessionServices;
  perClass: Map<string, number>;
  offenders: Map<string, Offender>;
  /**
   * Would-be bans in order. Only what the report shows: a whole decision carries its evidence
   * Match, whose message is a slice of the chunk the line was read in, and keeping one per ban
   * kept most of a large input in memory.
   */
  bans: { target: string; ruleId: string; time: number }[];
  banLine: Map<string, { line: number; file: string }>;
  /**
   * Outages of our own auth back end, in the order they ended. `lines`: failure lines they made
   * count nothing; `errors`: server-error lines (a weak outage has none, and no host).
   */
  outages: CheckOutage[];
  /** A weak outage in progress: its start and the weak lines it left uncounted so far. */
  weakOutage: { start: number; lines: number } | undefined;
  seconds: number;
  policy: Policy;
}

export interface CheckOutage { cause: 'weak' | 'server-error'; host: string | null; start: number; end: number; lines: number; errors: number }

const positiveInt = (what: string) => (v: string): number => {
  if (!/^\d{1,9}$/.test(v) || Number(v) < 1) throw new InvalidArgumentError(`${what} must be a positive whole number`);
  return Number(v);
};

export function register(program: Command): void {
  const auth = defaultPolicy();
  program
    .command('check')
    .description('replay log files (or - for stdin) through the rules and show who would be banned')
    .argument('<files...>', 'log files, or - for stdin')
    .option('--rules <dir>', 'rule directory', BUNDLED_RULES_DIR)
    .addOption(new Option('--format <format>', 'input format').choices(LINE_FORMATS as string[]).default('auto'))
    .option('--json', 'one JSON object per matched line, then a summary object', false)
    .option('--maxretry <n>', `attempts that trigger a ban (default ${auth.maxretry})`, positiveInt('--maxretry'))
    .option('--findtime <seconds>', `window in seconds (default ${auth.findtime / 1000})`, positiveInt('--findtime'))
    .option('--top <n>', 'offenders and bans to list', positiveInt('--top'), 20)
    .action(async (files: string[], opts: CheckOptions) => {
      process.exitCode = await runCheck(files, opts);
    });
}

/** Runs check and prints the result; returns the exit code (0 ok, 2 usage/input error). */
export async function runCheck(files: string[], opts: CheckOptions, out: NodeJS.WritableStream = process.stdout): Promise<number> {
  let engine;
  try {
    engine = loadRulePack(opts.rules);
  } catch (e) {
    if (e instanceof RuleLoadError || e instanceof MailjailError) {
      process.stderr.write(`mailjail check: the rule pack does not load:\n${e.message}\n`);
      return 2;
    }
    throw e;
  }
  for (const f of files) {
    if (f === '-') continue;
    const why = unreadable(f);
    if (why) {
      process.stderr.write(why);
      return 2;
    }
  }
  // The default config's "auth" policy, as the daemon runs it; the options are seconds, the policy ms.
  const policy: Policy = {
    ...defaultPolicy(),
    ...(opts.maxretry !== undefined ? { maxretry: opts.maxretry } : {}),
    ...(opts.findtime !== undefined ? { findtime: opts.findtime * 1000 } : {}),
  };
  // Replay counts every address (allowlist empty): the point is to show what the log holds.
  const decider = new Decider({ policies: [policy] });
  const w = new BufferedOut(out);
  const s: CheckSummary = {
    lines: 0, matched: 0, parseErrors: 0, oversize: 0, invalidCaptures: 0, notUnderstood: 0, binaryLines: 0,
    perRule: new Map(), perService: new Map(), perClass: new Map(), offenders: new Map(), sessions: new SessionServices(),
    bans: [], banLine: new Map(), outages: [], weakOutage: undefined, seconds: 0, policy,
  };
  const started = process.hrtime.bigint();
  const progress = process.stderr.isTTY && !opts.json ? new Progress() : undefined;
  const signal = new AbortController().signal;
  for (const f of files) {
    const src = new FileSource(f);
    const ref = f === '-' ? Date.now() : statSync(f).mtimeMs; // year of year-less dates: the file's own
    const ctx = { format: opts.format, now: ref };
    for await (const batch of src.records(signal)) {
      for (const rec of batch) {
        const r = parseRecord(rec, ctx);
        if (!('event' in r)) { s.parseErrors++; continue; }
        const m = engine.match(r.event);
        if (!m) {
          // A line with no header that no daemon-log rule took: check could not read it.
          if (r.event.program === '' && rec.kind === 'line') {
            s.notUnderstood++;
            if (isBinaryLine(rec.text)) s.binaryLines++;
          }
          continue;
        }
        const line = rec.origin.line ?? 0;
        const { decisions, attempts } = decider.observe(m, m.event.time);
        if (decider.hasEvents) noteOutages(s, decider.drainEvents());
        if (s.weakOutage && m.attempt.weak === true && attempts === 0) s.weakOutage.lines++;
        tally(s, m, attempts);
        if (opts.json) w.write(jsonMatch(line, m, attempts));
        for (const d of decisions) {
          if (d.action !== 'ban') continue;
          s.bans.push({ target: d.target, ruleId: d.ruleId, time: d.evidence[d.evidence.length - 1]?.event.time ?? NaN });
          s.banLine.set(d.target, { line, file: src.name });
        }
      }
      progress?.update(s.lines + src.stats().lines, s.matched, s.bans.length);
    }
    s.lines += src.stats().lines;
    s.oversize += src.stats().oversize;
  }
  progress?.done();
  // Outages still in progress when the input ends: reported with the end they would have.
  for (const o of decider.currentOutages()) s.outages.push({ cause: 'server-error', host: o.host, start: o.start, end: o.end, lines: o.excused, errors: o.errors });
  if (s.weakOutage) s.outages.push({ cause: 'weak', host: null, start: s.weakOutage.start, end: NaN, lines: s.weakOutage.lines, errors: 0 });
  s.invalidCaptures = engine.stats.invalidCaptures;
  s.seconds = Number(process.hrtime.bigint() - started) / 1e9;
  if (opts.json) w.write(`${JSON.stringify({ summary: jsonSummary(s) })}\n`);
  else w.write(report(s, files, opts.top));
  await w.end();
  if (looksBinary(s.binaryLines, s.lines - s.oversize)) {
    process.stderr.write(`mailjail check: the input looks binary, not like a log (${count(s.binaryLines, 'line')} of ${fmtInt(s.lines)} ` +
      `hold NUL bytes or invalid UTF-8).\n${JOURNAL_HINT}`);
    return 2;
  }
  return 0;
}

/** The journal route, for a missing mail log and for binary input (journal files are binary). */
const JOURNAL_HINT =
  '  To replay the journal (mail facility, last day):\n' +
  '    journalctl -o json --since -1d SYSLOG_FACILITY=2 | mailjail check -\n' +
  '  or by unit: journalctl -o json -u postfix@- -u dovecot | mailjail check -\n' +
  '  a journal file: journalctl -o json --file FILE.journal | mailjail check -\n';

/** Why `f` cannot be replayed, as a message for a mail admin (ending in a newline); undefined when it can. */
function unreadable(f: string): string | undefined {
  let fd: number | undefined;
  try {
    if (!statSync(f).isFile()) return `mailjail check: cannot read ${f}: not a regular file\n`;
    fd = openSync(f, 'r');
    const head = Buffer.alloc(SNIFF_BYTES);
    const n = readSync(fd, head, 0, SNIFF_BYTES, 0);
    if (sniffBinary(head.subarray(0, n))) {
      return `mailjail check: ${f} is a binary file, not a log (most of its first lines hold NUL bytes or invalid UTF-8).\n${JOURNAL_HINT}`;
    }
    return undefined;
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') {
      return `mailjail check: ${f}: no such file. Systems without rsyslog (Debian 12 by default) keep the mail log only in the journal.\n${JOURNAL_HINT}`;
    }
    if (code === 'EACCES') return `mailjail check: cannot read ${f}: permission denied (run as root, or as a member of the group that owns it)\n`;
    return `mailjail check: cannot read ${f}: ${(e as Error).message}\n`;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

const SNIFF_BYTES = 64 * 1024;

/** NUL or U+FFFD (what invalid UTF-8 decodes to): a line of a binary file, not of a log. */
function isBinaryLine(text: string): boolean {
  return text.includes('\u0000') || text.includes('\ufffd');
}

/**
 * Binary when at least half the lines (and at least one) look binary. A ratio, not "any NUL": a
 * syslog file cut short by a power loss holds a run of NUL bytes, and is still a log.
 */
function looksBinary(binaryLines: number, lines: number): boolean {
  return binaryLines > 0 && binaryLines * 2 >= lines;
}

/** The same test on the first bytes of a file, before replaying all of it. */
function sniffBinary(head: Buffer): boolean {
  const last = head.lastIndexOf(10);
  const text = head.toString('utf8', 0, last < 0 ? head.length : last); // a partial character at the cut is not a fault
  let lines = 0;
  let bad = 0;
  for (const l of text.split('\n')) {
    if (l === '') continue;
    lines++;
    if (isBinaryLine(l)) bad++;
  }
  return looksBinary(bad, lines);
}

function noteOutages(s: CheckSummary, events: readonly StateEvent[]): void {
  for (const e of events) {
    if (e.kind !== 'outage') continue;
    if (e.cause === 'weak') {
      if (e.state === 'start') s.weakOutage = { start: e.time, lines: 0 };
      else if (s.weakOutage) {
        s.outages.push({ cause: 'weak', host: null, start: s.weakOutage.start, end: e.time, lines: s.weakOutage.lines, errors: 0 });
        s.weakOutage = undefined;
      }
    } else if (e.state === 'end' && e.outage) {
      const o = e.outage;
      s.outages.push({ cause: 'server-error', host: o.host, start: o.start, end: o.end, lines: o.excused, errors: o.errors });
    }
  }
}

function tally(s: CheckSummary, m: Match, attempts: number): void {
  s.matched++;
  let r = s.perRule.get(m.ruleId);
  if (r) r.n++;
  else s.perRule.set(m.ruleId, r = { n: 1, services: new Map(), cls: m.class });
  const service = s.sessions.serviceOf(m, (ruleId, from, to) => {
    // A session's protocol became known: its earlier auth-process lines move from `mail` to it.
    const rr = s.perRule.get(ruleId)!;
    bump(rr.services, from, -1);
    bump(rr.services, to, 1);
    bump(s.perService, from, -1);
    bump(s.perService, to, 1);
  });
  bump(r.services, service, 1);
  bump(s.perService, service, 1);
  s.perClass.set(m.class, (s.perClass.get(m.class) ?? 0) + 1);
  if (m.class !== 'auth') return;
  const len = isIpv6(m.ip) ? s.policy.ipv6Prefix : s.policy.ipv4Prefix;
  const key = len === (isIpv6(m.ip) ? 128 : 32) ? m.ip : prefixOf(m.ip, len);
  const o = s.offenders.get(key);
  if (o) {
    o.attempts += attempts;
    o.lines++;
    o.last = m.event.time;
    o.addresses.add(m.ip);
    o.rules.add(m.ruleId);
  } else {
    s.offenders.set(key, { key, attempts, lines: 1, addresses: new Set([m.ip]), first: m.event.time, last: m.event.time, rules: new Set([m.ruleId]) });
  }
}

function bump<K>(m: Map<K, number>, k: K, by: number): void {
  const n = (m.get(k) ?? 0) + by;
  if (n === 0) m.delete(k);
  else m.set(k, n);
}

/**
 * The protocol of Dovecot's auth-process lines. `auth: passwd-file(user,ip,<session>): Password
 * mismatch` does not say whether the login was IMAP, POP3, submission or ManageSieve (its rule
 * says `mail`); the login process's summary of the same session (`imap-login: ... session=<...>`)
 * does. The report counts such a line under the session's protocol once a line names it, before or
 * after. Bounded: a replay of a large log forgets the oldest sessions first.
 */
class SessionServices {
  private readonly known = new Map<string, Service>();
  private readonly pending = new Map<string, string[]>(); // session → rule ids of its `mail` lines
  private static readonly MAX = 100_000;

  serviceOf(m: Match, moved: (ruleId: string, from: Service, to: Service) => void): Service {
    const session = m.attempt.session;
    if (session === undefined) return m.service;
    const key = `${session} ${m.ip}`;
    if (m.service === 'mail') {
      const known = this.known.get(key);
      if (known) return known;
      const p = this.pending.get(key);
      if (p) p.push(m.ruleId);
      else this.remember(this.pending, key, [m.ruleId]);
      return m.service;
    }
    this.remember(this.known, key, m.service);
    const p = this.pending.get(key);
    if (p) {
      this.pending.delete(key);
      for (const ruleId of p) moved(ruleId, 'mail', m.service);
    }
    return m.service;
  }

  private remember<V>(map: Map<string, V>, key: string, v: V): void {
    if (map.size >= SessionServices.MAX) map.delete(map.keys().next().value!);
    map.set(key, v);
  }
}

const iso = (t: number): string => (Number.isFinite(t) ? new Date(t).toISOString() : '');

function jsonMatch(line: number, m: Match, attempts: number): string {
  const o: Record<string, unknown> = { line, rule: m.ruleId, service: m.service, class: m.class, ip: m.ip };
  if (m.user !== undefined) o['user'] = m.user;
  o['time'] = iso(m.event.time);
  // What this line added to its offender's count (0: repeat, weak, outage, banned, not counted).
  o['attempts'] = attempts;
  return `${JSON.stringify(o)}\n`;
}

function jsonSummary(s: CheckSummary): Record<string, unknown> {
  return {
    lines: s.lines,
    matched: s.matched,
    banned: s.bans.map((b) => b.target),
    parseErrors: s.parseErrors,
    skippedOversize: s.oversize,
    invalidCaptures: s.invalidCaptures,
    notUnderstood: s.notUnderstood,
    perRule: Object.fromEntries([...s.perRule].map(([k, v]) => [k, v.n])),
    perService: Object.fromEntries(s.perService),
    perClass: Object.fromEntries(s.perClass),
    outages: s.outages.map((o) => ({ start: iso(o.start), end: iso(o.end), lines: o.lines, errors: o.errors, host: o.host, cause: o.cause })),
    policy: { name: s.policy.name, classes: s.policy.classes, maxretry: s.policy.maxretry, findtime: s.policy.findtime / 1000 },
    seconds: Number(s.seconds.toFixed(3)),
  };
}

function report(s: CheckSummary, files: string[], top: number): string {
  const rate = s.seconds > 0 ? Math.round(s.lines / s.seconds) : 0;
  const o: string[] = [];
  o.push(`mailjail check: ${count(s.lines, 'line')} from ${files.join(', ')} in ${s.seconds.toFixed(2)} s (${fmtInt(rate)} lines/s)`);
  o.push(`  matched ${count(s.matched, 'line')}: ${[...s.perClass].map(([k, v]) => `${k} ${fmtInt(v)}`).join(', ') || 'none'}`);
  if (s.parseErrors || s.oversize || s.invalidCaptures) {
    o.push(`  skipped: ${fmtInt(s.parseErrors)} unreadable, ${fmtInt(s.oversize)} over 64 KiB, ${count(s.invalidCaptures, 'invalid address', 'invalid addresses')}`);
  }
  if (s.notUnderstood) {
    o.push(`  not understood: ${count(s.notUnderstood, 'line')} of ${fmtInt(s.lines)} (no syslog header, not journald JSON, no rule for daemon log files matched)`);
    if (s.notUnderstood * 2 >= s.lines) {
      o.push('  check reads BSD syslog (/var/log/mail.log), RFC 3339 syslog, RFC 5424, journald JSON (journalctl -o json)',
        '  and the log files Dovecot, Roundcube and the other daemons in rules/ write themselves');
    }
  }
  if (s.perRule.size) {
    o.push('', 'Matches per rule');
    const services = (m: Map<Service, number>): string => [...m].sort((a, b) => b[1] - a[1]).map(([k]) => k).join(', ');
    const rows = [...s.perRule].sort((a, b) => b[1].n - a[1].n).map(([id, v]) => [id, fmtInt(v.n), services(v.services), v.cls]);
    o.push(...table(['rule', 'lines', 'service', 'class'], rows));
    o.push('', `Matches per service: ${[...s.perService].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${fmtInt(v)}`).join(', ')}`);
  }
  if (s.offenders.size) {
    o.push('', `Top offenders (auth failures; ${count(s.offenders.size, 'offender')} in all; attempts counted once however many lines log them, none while banned)`);
    const rows = [...s.offenders.values()].sort((a, b) => b.attempts - a.attempts || b.lines - a.lines).slice(0, top)
      .map((x) => [x.key, fmtInt(x.attempts), fmtInt(x.lines), fmtInt(x.addresses.size), iso(x.first), iso(x.last), [...x.rules].join(' ')]);
    o.push(...table(['offender', 'attempts', 'lines', 'addresses', 'first', 'last', 'rules'], rows));
  }
  if (s.outages.length) {
    o.push('', `Auth back-end outages (${fmtInt(s.outages.length)}): failures during them are not the clients' and counted nothing`);
    const rows = s.outages.slice(0, top).map((x) => [x.host ?? '(weak lines)', iso(x.start), iso(x.end), fmtInt(x.lines), fmtInt(x.errors)]);
    o.push(...table(['host', 'start', 'end', 'lines not counted', 'server errors'], rows));
  }
  const p = s.policy;
  o.push('', `Would ban ${count(s.bans.length, 'address', 'addresses')} under policy ${p.name} ` +
    `(${p.classes.join('+')}: ${count(p.maxretry, 'attempt')} within ${p.findtime / 1000} s, IPv6 per /${p.ipv6Prefix})`);
  if (s.bans.length) {
    const rows = s.bans.slice(0, top).map((b) => {
      const at = s.banLine.get(b.target);
      return [b.target, iso(b.time), `${at?.file ?? ''}:${at?.line ?? ''}`, b.ruleId];
    });
    o.push(...table(['address', 'banned at', 'on line', 'last rule'], rows));
    if (s.bans.length > top) o.push(`  ... and ${fmtInt(s.bans.length - top)} more (--top N, or --json for all)`);
  }
  return `${o.join('\n')}\n`;
}

/** A progress line on stderr for long inputs, at most every 200 ms. */
class Progress {
  private last = 0;
  update(lines: number, matched: number, bans: number): void {
    const now = Date.now();
    if (now - this.last < 200) return;
    this.last = now;
    process.stderr.write(`\r  ${count(lines, 'line')}, ${fmtInt(matched)} matched, ${fmtInt(bans)} would be banned`);
  }
  done(): void {
    if (this.last) process.stderr.write('\r\x1b[K');
  }
}
