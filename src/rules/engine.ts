// The rules stage: LogEvent → Match. Rules are indexed by program, so a line only meets the
// patterns of its own daemon, and each pattern only runs when one of its literal keywords occurs.
import { parseIp } from '../parse/ip.js';
import type { AttemptInfo, LogEvent, Match, Service } from '../types.js';
import { escapeRegExp, globRegExp } from './load.js';
import type { CompiledRule, RuleFile } from './load.js';

/** The rules one program sees, with a combined keyword prefilter. */
interface Group {
  readonly rules: readonly CompiledRule[];
  /** Any keyword of any rule of the group; undefined when the group has no rules. */
  readonly anyKeyword: RegExp | undefined;
}

const PROGRAM_CACHE_MAX = 4096;

function makeGroup(rules: readonly CompiledRule[]): Group {
  const kws = [...new Set(rules.flatMap((r) => r.keywords))];
  return { rules, anyKeyword: kws.length ? new RegExp(kws.map(escapeRegExp).join('|')) : undefined };
}

export interface EngineStats {
  /** Captures that were not a valid address (a broken rule or a hostile line). */
  invalidCaptures: number;
}

export class RuleEngine {
  readonly files: readonly RuleFile[];
  readonly stats: EngineStats = { invalidCaptures: 0 };
  private readonly exact = new Map<string, CompiledRule[]>();
  private readonly globs: { re: RegExp; rules: CompiledRule[] }[] = [];
  private readonly headerless: Group;
  private readonly cache = new Map<string, Group>();

  constructor(files: readonly RuleFile[]) {
    this.files = files;
    for (const f of files) {
      for (const p of f.programs) {
        if (p.includes('*')) {
          const re = globRegExp(p);
          this.globs.push({ re, rules: [...f.rules] });
        } else {
          const list = this.exact.get(p) ?? [];
          list.push(...f.rules);
          this.exact.set(p, list);
        }
      }
    }
    this.headerless = makeGroup(files.filter((f) => f.files).flatMap((f) => f.rules));
  }

  /** Every program name or glob the pack listens to (for filtering at the source). */
  programs(): string[] {
    return [...new Set(this.files.flatMap((f) => f.programs))];
  }

  /** The rule group for a program; cached, with a bounded cache since remote peers choose tags. */
  groupFor(program: string): Group {
    if (program === '') return this.headerless;
    const hit = this.cache.get(program);
    if (hit) return hit;
    const rules: CompiledRule[] = [...(this.exact.get(program) ?? [])];
    for (const g of this.globs) if (g.re.test(program)) for (const r of g.rules) if (!rules.includes(r)) rules.push(r);
    const group = makeGroup(rules);
    if (this.cache.size < PROGRAM_CACHE_MAX) this.cache.set(program, group);
    return group;
  }

  /** The first rule of the event's program that matches, as a Match; undefined for no match. */
  match(ev: LogEvent): Match | undefined {
    const g = this.groupFor(ev.program);
    if (!g.anyKeyword || !g.anyKeyword.test(ev.message)) return undefined;
    return this.matchIn(g.rules, ev);
  }

  /** Runs a given list of rules (used for samples, where only one file's rules count). */
  matchIn(rules: readonly CompiledRule[], ev: LogEvent): Match | undefined {
    const msg = ev.message;
    for (const r of rules) {
      if (!hasKeyword(msg, r.keywords)) continue;
      const m = r.re.exec(msg);
      if (!m) continue;
      const groups = m.groups ?? {};
      let raw: string | undefined;
      for (const name of r.ipGroups) if ((raw = groups[name]) !== undefined) break;
      const ip = raw === undefined ? undefined : parseIp(raw);
      if (!ip) { this.stats.invalidCaptures++; continue; }
      let user: string | undefined;
      for (const name of r.userGroups) if ((user = groups[name]) !== undefined) break;
      if (user !== undefined) user = detach(user);
      const attempt = attemptOf(r, groups);
      const base = { ip, ruleId: r.id, service: serviceOf(r, ev.program, groups['service']), class: r.class, attempt, event: ev };
      return user === undefined ? base : { ...base, user };
    }
    return undefined;
  }
}

/**
 * A copy of a capture that does not share memory with the line. A capture is a slice of the line,
 * itself a slice of the whole chunk the source read; state keeps session keys and user names long
 * after the line, and a slice would keep its whole chunk (64 KiB) alive with it. Prepending a
 * character and slicing it off again makes V8 copy the text into a string of its own.
 */
function detach(s: string): string {
  return s.length < 13 ? s : ` ${s}`.slice(1); // V8 copies slices shorter than 13 characters anyway
}

/** The pattern's `service` capture (mapped), else the program (mapped), else the rule's service. */
function serviceOf(r: CompiledRule, program: string, captured: string | undefined): Service {
  const byCapture = captured === undefined ? undefined : r.serviceByCapture.get(captured);
  if (byCapture) return byCapture;
  for (const s of r.serviceByProgram) if (s.program.test(program)) return s.service;
  return r.service;
}

function hasKeyword(msg: string, keywords: readonly string[]): boolean {
  for (let i = 0; i < keywords.length; i++) if (msg.includes(keywords[i]!)) return true;
  return false;
}

function attemptOf(r: CompiledRule, groups: Record<string, string | undefined>): AttemptInfo {
  if (!r.hasSession && !r.hasTotal && !r.summary) return r.attempt;
  const session = r.hasSession ? groups['session'] : undefined;
  const totalText = r.hasTotal ? groups['total'] : undefined;
  const total = totalText !== undefined && /^\d{1,6}$/.test(totalText) ? Number(totalText) : r.summary ? 1 : undefined;
  return {
    ...r.attempt,
    ...(session !== undefined && session !== '' ? { session: `${r.daemon}:${detach(session)}` } : {}),
    ...(total !== undefined ? { total } : {}),
  };
}
