// Loads rules/*.yaml into compiled rules. Refuses, naming file:line and a stable code, any rule that
// is malformed, risky (see lint.ts) or fails one of its own samples.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { complete, locator, readYaml, required, s, withCode, withDefault, type Problem } from '../lib/schema.js';
import { MailjailError, RULE_CLASSES as CLASSES, SERVICES } from '../types.js';
import type { AttemptInfo, RuleClass, Service } from '../types.js';
import { lintPattern } from './lint.js';

export interface SampleMatch {
  readonly line: string; readonly ip: string; readonly user?: string; readonly service?: Service;
  /** The attempts the line stands for (a summary's `total`; 1 otherwise), when the sample states it. */
  readonly count?: number;
  readonly at: string;
}
export interface SampleNoMatch { readonly line: string; readonly at: string }

export interface CompiledRule {
  readonly id: string;
  readonly daemon: string;
  readonly service: Service;
  /**
   * The service by program, for daemons whose IMAP and POP3 servers log the same text (Courier,
   * Cyrus, UW, Dovecot's own log file): the first glob that matches the event's program wins,
   * `service` otherwise.
   */
  readonly serviceByProgram: readonly { readonly program: RegExp; readonly service: Service }[];
  /**
   * The service by the text of the pattern's `service` group (`imap` in `imap-login: `), for one
   * pattern that serves several login processes; it wins over serviceByProgram. Empty: no such group.
   */
  readonly serviceByCapture: ReadonlyMap<string, Service>;
  readonly class: RuleClass;
  readonly keywords: readonly string[];
  readonly re: RegExp;
  /** The pattern as written in the file (with `{{fragment}}` references) and as expanded (what `re` runs). */
  readonly pattern: string;
  readonly expanded: string;
  /** Named groups holding the address / user, in order of preference. */
  readonly ipGroups: readonly string[];
  readonly userGroups: readonly string[];
  readonly hasSession: boolean;
  readonly hasTotal: boolean;
  /** The static part of AttemptInfo (pair, weak). */
  readonly attempt: AttemptInfo;
  /** A session summary line: counts as `total` attempts (1 when the line gives no count). */
  readonly summary: boolean;
  /** "file:line" of the rule, for error messages. */
  readonly at: string;
  readonly samples: { readonly match: readonly SampleMatch[]; readonly nomatch: readonly SampleNoMatch[] };
}

export interface RuleFile {
  readonly path: string;
  readonly daemon: string;
  /** The file's named pattern fragments (`fragments:`), name → regex text. */
  readonly fragments: ReadonlyMap<string, string>;
  readonly programs: readonly string[];
  /** Rules also apply to headerless lines (the daemon's own log file). */
  readonly files: boolean;
  readonly rules: readonly CompiledRule[];
}

export interface RuleFault { readonly code: string; readonly at: string; readonly message: string }

/** Thrown when a rule pack does not load; lists every fault found. */
export class RuleLoadError extends MailjailError {
  constructor(readonly faults: readonly RuleFault[]) {
    super(faults[0]?.code ?? 'MJ_RULE', faults.map((f) => `${f.at}: ${f.code}: ${f.message}`).join('\n'));
  }
}

const ID = /^[a-z0-9][a-z0-9-]{0,63}$/;
const FRAGMENT_NAME = /^[a-z][a-z0-9_]{0,31}$/;
/** A fragment reference in a pattern: `{{name}}` (a `\{` before it makes the braces literal). */
const FRAGMENT_REF = /(?<!\\)\{\{([^{}\n]{0,64})\}\}/g;

/**
 * Replaces each `{{name}}` in `pattern` by the fragment's text. Fragments are one level deep (a
 * fragment holds no reference), so one pass is the whole expansion. Returns the names it could not find.
 */
export function expandFragments(pattern: string, fragments: ReadonlyMap<string, string>): { expanded: string; unknown: string[] } {
  const unknown: string[] = [];
  const expanded = pattern.replace(FRAGMENT_REF, (ref, name: string) => {
    const f = fragments.get(name);
    if (f === undefined) { unknown.push(name); return ref; }
    return f;
  });
  return { expanded, unknown };
}

export const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A program glob (`*` = any run of characters) as an anchored RegExp. */
export function globRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map(escapeRegExp).join('.*')}$`);
}

// The structure of a rule file, in the same schema layer as the config (lib/schema.ts); what the
// patterns say (fragments, lint, regex, groups) is checked below.
const nonEmpty = (v: string): string | undefined => (v === '' ? 'must be a non-empty string' : undefined);
const text = s.str(nonEmpty);
const service = s.oneOf(SERVICES);
const MATCH_SAMPLE = s.obj({
  line: required(s.str(), 'match sample needs a line'),
  ip: required(s.str(), 'match sample needs the expected ip'),
  user: s.custom('a string', (v) => (typeof v === 'string' || typeof v === 'number' ? { ok: String(v) } : { error: 'user must be a string' })),
  service,
  count: s.int(0),
  note: s.str(),
});
const NOMATCH_SAMPLE = s.custom('a line, or {line, note}', (v) => {
  if (typeof v === 'string') return { ok: { line: v } };
  const o = typeof v === 'object' && v !== null ? (v as Record<string, unknown>) : {};
  const stray = Object.keys(o).find((k) => k !== 'line' && k !== 'note');
  if (stray !== undefined) return { error: `unknown key "${stray}" in a nomatch sample (allowed: line, note)` };
  return typeof o['line'] === 'string' ? { ok: { line: o['line'] } } : { error: 'nomatch sample needs a line' };
});
const NO_SAMPLES = 'MJ_RULE_NO_SAMPLES';
const RULE = s.obj({
  id: required(s.str((v) => (ID.test(v) ? undefined : `must match ${ID.source}`))),
  description: s.str(),
  service: required(service),
  serviceByProgram: withDefault(s.map(service, 'a mapping of program globs to services'), {}),
  serviceByCapture: withDefault(s.map(service, 'a mapping of texts of the service group to services'), {}),
  class: required(s.oneOf(CLASSES)),
  keywords: required(s.list(text, true)),
  pattern: required(text),
  flags: withDefault(s.oneOf(['', 'i'] as const), ''),
  attempt: withDefault(s.obj({
    pair: s.obj({ group: required(s.str()), side: required(s.str()) }),
    weak: s.custom('true', (v) => (v === true ? { ok: true as const } : { error: 'must be true when given' })),
    verdict: s.custom('true', (v) => (v === true ? { ok: true as const } : { error: 'must be true when given' })),
    summary: withDefault(s.bool(), false),
  }), {}),
  samples: required(s.obj({
    match: withCode(required(s.list(MATCH_SAMPLE, true), 'rule needs at least one match sample'), NO_SAMPLES),
    nomatch: withDefault(s.list(NOMATCH_SAMPLE), []),
  }), 'rule has no samples', 'parent', NO_SAMPLES),
});
const RULE_FILE = s.obj({
  daemon: required(text),
  description: s.str(),
  programs: required(s.list(text, true)),
  files: withDefault(s.bool(), false),
  fragments: withDefault(s.map(text, 'a mapping of fragment names to regex text',
    (k) => (FRAGMENT_NAME.test(k) ? undefined : `fragment name must match ${FRAGMENT_NAME.source}`)), {}),
  rules: required(s.list(RULE, true)),
});

/** Reads one YAML file into RuleFile form, collecting schema faults (samples are checked by the engine). */
export function readRuleFile(path: string, yamlText: string, faults: RuleFault[]): RuleFile | undefined {
  const read = readYaml(yamlText, path, RULE_FILE);
  const locOf = locator(read.locs, { file: path, line: 1, col: 1 });
  const report = (problems: readonly Problem[]): void => {
    for (const p of problems) {
      const code = p.code ?? (p.kind === 'yaml' ? 'MJ_RULE_YAML' : 'MJ_RULE_SCHEMA');
      faults.push({ code, at: `${path}:${p.line}`, message: p.key === '' ? p.message : `${p.key}: ${p.message}` });
    }
  };
  report(read.problems);
  // A refused top-level key leaves nothing to go on; a refused rule leaves the others to check.
  if (!read.ok) return undefined;
  const done = complete(RULE_FILE, read.value, locOf);
  report(done.problems);
  const at = (key: string): string => `${path}:${locOf(key).line}`;
  const file = done.value;
  const fragments = readFragments(file.fragments, (key, code, message) => faults.push({ code, at: at(`fragments.${key}`), message }));
  const rules: CompiledRule[] = [];
  for (const r of file.rules ?? []) {
    const key = done.pathOf(r);
    const fault = (code: string, sub: string, message: string): void => { faults.push({ code, at: at(`${key}.${sub}`), message: `rule ${r.id}: ${message}` }); };
    const x = expandFragments(r.pattern, fragments);
    for (const name of x.unknown) {
      fault('MJ_RULE_FRAGMENT', 'pattern', `unknown fragment {{${name}}} (this file defines: ${[...fragments.keys()].join(', ') || 'none'})`);
    }
    // Lint what will run: the expanded pattern.
    for (const f of lintPattern(x.expanded)) fault(f.code, 'pattern', f.message);
    let re: RegExp | undefined;
    try {
      if (x.unknown.length === 0) re = new RegExp(x.expanded, r.flags);
    } catch (e) {
      fault('MJ_RULE_BAD_REGEX', 'pattern', (e as Error).message);
    }
    if (!re) continue;
    const groups = [...x.expanded.matchAll(/\(\?<([A-Za-z][A-Za-z0-9_]*)>/g)].map((m) => m[1]!);
    const serviceByCapture = new Map(Object.entries(r.serviceByCapture));
    if (groups.includes('service') !== serviceByCapture.size > 0) {
      if (groups.includes('service')) fault('MJ_RULE_SCHEMA', 'pattern', 'the pattern has a (?<service>...) group but the rule no serviceByCapture map');
      else fault('MJ_RULE_SCHEMA', 'serviceByCapture', 'serviceByCapture needs a (?<service>...) group in the pattern');
      continue;
    }
    const { pair, weak, verdict, summary } = r.attempt;
    rules.push({
      id: r.id, daemon: file.daemon, service: r.service,
      serviceByProgram: Object.entries(r.serviceByProgram).map(([glob, svc]) => ({ program: globRegExp(glob), service: svc })),
      serviceByCapture, class: r.class, keywords: r.keywords, re, pattern: r.pattern, expanded: x.expanded,
      ipGroups: groups.filter((g) => /^ip\d*$/.test(g)),
      userGroups: groups.filter((g) => /^user\d*$/.test(g)),
      hasSession: groups.includes('session'),
      hasTotal: groups.includes('total'),
      attempt: { ...(pair ? { pair } : {}), ...(weak ? { weak } : {}), ...(verdict ? { verdict } : {}) }, summary, at: at(key),
      samples: {
        match: r.samples.match.map((m) => ({ ...m, at: at(done.pathOf(m)) })),
        nomatch: r.samples.nomatch.map((m) => ({ ...m, at: at(done.pathOf(m)) })),
      },
    });
  }
  if (!done.ok) return undefined;
  return { path, daemon: file.daemon, fragments, programs: file.programs, files: file.files, rules };
}

/**
 * Checks the fragments (name → regex text, as the schema read them). A fragment must compile on its
 * own (so a reference never splits a group) and may not reference another fragment: one level, in view.
 */
function readFragments(raw: Readonly<Record<string, string>>, fault: (key: string, code: string, message: string) => void): Map<string, string> {
  const out = new Map<string, string>();
  for (const [k, v] of Object.entries(raw)) {
    const nested = new RegExp(FRAGMENT_REF.source).exec(v);
    if (nested) { fault(k, 'MJ_RULE_FRAGMENT', `fragment ${k} references {{${nested[1]!}}}: fragments are one level deep, write the text out`); continue; }
    try {
      new RegExp(v);
    } catch (e) {
      fault(k, 'MJ_RULE_BAD_REGEX', `fragment ${k}: ${(e as Error).message}`);
      continue;
    }
    out.set(k, v);
  }
  return out;
}

/** Reads every `*.yaml` in `dir` (sorted). Schema faults are collected; samples are checked by loadRulePack. */
export function readRuleDir(dir: string, faults: RuleFault[]): RuleFile[] {
  let names: string[];
  try {
    names = readdirSync(dir).filter((n) => n.endsWith('.yaml') || n.endsWith('.yml')).sort();
  } catch (e) {
    throw new MailjailError('MJ_RULE_DIR', `cannot read rule directory ${dir}: ${(e as Error).message}`);
  }
  const out: RuleFile[] = [];
  const seen = new Map<string, string>();
  for (const n of names) {
    const path = join(dir, n);
    const f = readRuleFile(path, readFileSync(path, 'utf8'), faults);
    if (!f) continue;
    for (const r of f.rules) {
      const prev = seen.get(r.id);
      if (prev) faults.push({ code: 'MJ_RULE_DUP_ID', at: r.at, message: `rule id ${r.id} already defined at ${prev}` });
      else seen.set(r.id, r.at);
    }
    out.push(f);
  }
  return out;
}
