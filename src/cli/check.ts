// `mailjail check`: replays log files (or stdin) through parse → rules → state with the event-time
// clock, and tells a mail admin what mailjail would catch and whom it would ban.
import { statSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { LINE_FORMATS, parseRecord } from '../parse/index.js';
import type { LineFormat } from '../parse/index.js';
import { RuleLoadError } from '../rules/load.js';
import { BUNDLED_RULES_DIR, loadRulePack } from '../rules/pack.js';
import { FileSource } from '../sources/file.js';
import { Decider } from '../state/decider.js';
import type { StateEvent } from '../state/decider.js';
import { DEFAULT_POLICY } from '../state/policy.js';
import type { Policy } from '../state/policy.js';
import type { Match } from '../types.js';
import { isIpv6, prefixOf } from '../parse/ip.js';
import { MailjailError } from '../types.js';
import { BufferedOut, fmtInt, table } from './output.js';

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
  perRule: Map<string, { n: number; service: string; cls: string }>;
  perService: Map<string, number>;
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
  program
    .command('check')
    .description('replay log files (or - for stdin) through the rules and show who would be banned')
    .argument('<files...>', 'log files, or - for stdin')
    .option('--rules <dir>', 'rule directory', BUNDLED_RULES_DIR)
    .addOption(new Option('--format <format>', 'input format').choices(LINE_FORMATS as string[]).default('auto'))
    .option('--json', 'one JSON object per matched line, then a summary object', false)
    .option('--maxretry <n>', `attempts that trigger a ban (default ${DEFAULT_POLICY.maxretry})`, positiveInt('--maxretry'))
    .option('--findtime <seconds>', `window in seconds (default ${DEFAULT_POLICY.findtime})`, positiveInt('--findtime'))
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
    try {
      if (!statSync(f).isFile()) throw new Error('not a regular file');
    } catch (e) {
      process.stderr.write(`mailjail check: cannot read ${f}: ${(e as Error).message}\n`);
      return 2;
    }
  }
  const policy: Policy = {
    ...DEFAULT_POLICY,
    ...(opts.maxretry !== undefined ? { maxretry: opts.maxretry } : {}),
    ...(opts.findtime !== undefined ? { findtime: opts.findtime } : {}),
  };
  // Replay counts every address (allowlist empty): the point is to show what the log holds.
  const decider = new Decider({ policies: [policy] });
  const w = new BufferedOut(out);
  const s: CheckSummary = {
    lines: 0, matched: 0, parseErrors: 0, oversize: 0, invalidCaptures: 0,
    perRule: new Map(), perService: new Map(), perClass: new Map(), offenders: new Map(),
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
        if (!m) continue;
        const line = rec.origin.line ?? 0;
        const decisions = decider.observe(m, m.event.time);
        const attempts = decider.lastAttempts;
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
      progress?.update(s.lines + src.stats.lines, s.matched, s.bans.length);
    }
    s.lines += src.stats.lines;
    s.oversize += src.stats.oversize;
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
  return 0;
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
  const r = s.perRule.get(m.ruleId);
  if (r) r.n++;
  else s.perRule.set(m.ruleId, { n: 1, service: m.service, cls: m.class });
  s.perService.set(m.service, (s.perService.get(m.service) ?? 0) + 1);
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
    perRule: Object.fromEntries([...s.perRule].map(([k, v]) => [k, v.n])),
    perService: Object.fromEntries(s.perService),
    perClass: Object.fromEntries(s.perClass),
    outages: s.outages.map((o) => ({ start: iso(o.start), end: iso(o.end), lines: o.lines, errors: o.errors, host: o.host, cause: o.cause })),
    policy: { name: s.policy.name, classes: s.policy.classes, maxretry: s.policy.maxretry, findtime: s.policy.findtime },
    seconds: Number(s.seconds.toFixed(3)),
  };
}

function report(s: CheckSummary, files: string[], top: number): string {
  const rate = s.seconds > 0 ? Math.round(s.lines / s.seconds) : 0;
  const o: string[] = [];
  o.push(`mailjail check: ${fmtInt(s.lines)} lines from ${files.join(', ')} in ${s.seconds.toFixed(2)} s (${fmtInt(rate)} lines/s)`);
  o.push(`  matched ${fmtInt(s.matched)} lines: ${[...s.perClass].map(([k, v]) => `${k} ${fmtInt(v)}`).join(', ') || 'none'}`);
  if (s.parseErrors || s.oversize || s.invalidCaptures) {
    o.push(`  skipped: ${fmtInt(s.parseErrors)} unreadable, ${fmtInt(s.oversize)} over 64 KiB, ${fmtInt(s.invalidCaptures)} invalid addresses`);
  }
  if (s.perRule.size) {
    o.push('', 'Matches per rule');
    const rows = [...s.perRule].sort((a, b) => b[1].n - a[1].n).map(([id, v]) => [id, fmtInt(v.n), v.service, v.cls]);
    o.push(...table(['rule', 'lines', 'service', 'class'], rows));
    o.push('', `Matches per service: ${[...s.perService].sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${fmtInt(v)}`).join(', ')}`);
  }
  if (s.offenders.size) {
    o.push('', `Top offenders (auth failures; ${fmtInt(s.offenders.size)} in all; attempts counted once however many lines log them, none while banned)`);
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
  o.push('', `Would ban ${fmtInt(s.bans.length)} address${s.bans.length === 1 ? '' : 'es'} under policy ${p.name} ` +
    `(${p.classes.join('+')}: ${p.maxretry} attempts within ${p.findtime} s, IPv6 per /${p.ipv6Prefix})`);
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
    process.stderr.write(`\r  ${fmtInt(lines)} lines, ${fmtInt(matched)} matched, ${fmtInt(bans)} would be banned`);
  }
  done(): void {
    if (this.last) process.stderr.write('\r\x1b[K');
  }
}
