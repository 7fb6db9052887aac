// Loads rules/*.yaml into compiled rules. Refuses, naming file:line and a stable code, any rule that
// is malformed, risky (see lint.ts) or fails one of its own samples.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LineCounter, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Node as YamlNode } from 'yaml';
import { MailjailError } from '../types.js';
import type { AttemptInfo, RuleClass, Service } from '../types.js';
import { lintPattern } from './lint.js';

export const SERVICES: readonly Service[] = ['smtp', 'imap', 'pop3', 'sieve', 'webmail', 'groupware', 'mail'];
export const CLASSES: readonly RuleClass[] = ['auth', 'probe', 'reject', 'reject-temp', 'server-error'];

export interface SampleMatch { readonly line: string; readonly ip: string; readonly user?: string; readonly service?: Service; readonly at: string }
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
  readonly class: RuleClass;
  readonly keywords: readonly string[];
  readonly re: RegExp;
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

export const escapeRegExp = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/** A program glob (`*` = any run of characters) as an anchored RegExp. */
export function globRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map(escapeRegExp).join('.*')}$`);
}

/** Reads one YAML file into RuleFile form, collecting schema faults (samples are checked by the engine). */
export function readRuleFile(path: string, text: string, faults: RuleFault[]): RuleFile | undefined {
  const lc = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const at = (n: YamlNode | null | undefined): string => {
    const off = n?.range?.[0];
    return `${path}:${off === undefined ? 1 : lc.linePos(off).line}`;
  };
  const fault = (code: string, n: YamlNode | null | undefined, message: string): undefined => {
    faults.push({ code, at: at(n), message });
    return undefined;
  };
  if (doc.errors.length > 0) {
    for (const e of doc.errors) {
      faults.push({ code: 'MJ_RULE_YAML', at: `${path}:${lc.linePos(e.pos[0]).line}`, message: e.message.split('\n')[0]! });
    }
    return undefined;
  }
  const root = doc.contents;
  if (!isMap(root)) return fault('MJ_RULE_SCHEMA', root, 'a rule file is a mapping with daemon, programs and rules');

  /** Reads the keys of a mapping, refusing unknown ones. */
  const keysOf = (m: YamlNode, allowed: readonly string[], where: string): Map<string, YamlNode> | undefined => {
    if (!isMap(m)) return fault('MJ_RULE_SCHEMA', m, `${where} must be a mapping`);
    const out = new Map<string, YamlNode>();
    for (const pair of m.items) {
      const k = isScalar(pair.key) ? String(pair.key.value) : '';
      if (!allowed.includes(k)) { fault('MJ_RULE_SCHEMA', pair.key as YamlNode, `unknown key "${k}" in ${where} (allowed: ${allowed.join(', ')})`); continue; }
      out.set(k, pair.value as YamlNode);
    }
    return out;
  };
  const str = (n: YamlNode | undefined, what: string, parent: YamlNode): string | undefined => {
    if (n === undefined) return fault('MJ_RULE_SCHEMA', parent, `missing ${what}`);
    if (!isScalar(n) || typeof n.value !== 'string' || n.value === '') return fault('MJ_RULE_SCHEMA', n, `${what} must be a non-empty string`);
    return n.value;
  };
  const strList = (n: YamlNode | undefined, what: string, parent: YamlNode): string[] | undefined => {
    if (n === undefined) return fault('MJ_RULE_SCHEMA', parent, `missing ${what}`);
    if (!isSeq(n) || n.items.length === 0) return fault('MJ_RULE_SCHEMA', n, `${what} must be a non-empty list of strings`);
    const out: string[] = [];
    for (const it of n.items) {
      if (!isScalar(it) || typeof it.value !== 'string' || it.value === '') return fault('MJ_RULE_SCHEMA', it as YamlNode, `${what} entries must be non-empty strings`);
      out.push(it.value);
    }
    return out;
  };

  const top = keysOf(root, ['daemon', 'description', 'programs', 'files', 'rules'], 'the file');
  if (!top) return undefined;
  const daemon = str(top.get('daemon'), 'daemon', root);
  const programs = strList(top.get('programs'), 'programs', root);
  const filesNode = top.get('files');
  let files = false;
  if (filesNode !== undefined) {
    if (!isScalar(filesNode) || typeof filesNode.value !== 'boolean') fault('MJ_RULE_SCHEMA', filesNode, 'files must be true or false');
    else files = filesNode.value;
  }
  const rulesNode = top.get('rules');
  if (!rulesNode || !isSeq(rulesNode) || rulesNode.items.length === 0) {
    return fault('MJ_RULE_SCHEMA', rulesNode ?? root, 'rules must be a non-empty list');
  }
  const rules: CompiledRule[] = [];
  for (const rn of rulesNode.items as YamlNode[]) {
    const r = keysOf(rn, ['id', 'description', 'service', 'serviceByProgram', 'class', 'keywords', 'pattern', 'flags', 'attempt', 'samples'], 'a rule');
    if (!r) continue;
    const ruleAt = at(rn);
    const id = str(r.get('id'), 'id', rn);
    if (id !== undefined && !ID.test(id)) fault('MJ_RULE_SCHEMA', r.get('id'), `id "${id}" must match ${ID.source}`);
    const service = str(r.get('service'), 'service', rn) as Service | undefined;
    if (service && !SERVICES.includes(service)) fault('MJ_RULE_SCHEMA', r.get('service'), `service must be one of ${SERVICES.join(', ')}`);
    const serviceByProgram: { program: RegExp; service: Service }[] = [];
    const sbp = r.get('serviceByProgram');
    if (sbp !== undefined) {
      if (!isMap(sbp)) fault('MJ_RULE_SCHEMA', sbp, 'serviceByProgram must map program globs to services');
      else {
        for (const pair of sbp.items) {
          const k = isScalar(pair.key) ? pair.key.value : undefined;
          const v = isScalar(pair.value) ? pair.value.value : undefined;
          if (typeof k !== 'string' || typeof v !== 'string' || !SERVICES.includes(v as Service)) {
            fault('MJ_RULE_SCHEMA', pair.key as YamlNode, `serviceByProgram: a program glob maps to one of ${SERVICES.join(', ')}`);
            continue;
          }
          serviceByProgram.push({ program: globRegExp(k), service: v as Service });
        }
      }
    }
    const cls = str(r.get('class'), 'class', rn) as RuleClass | undefined;
    if (cls && !CLASSES.includes(cls)) fault('MJ_RULE_SCHEMA', r.get('class'), `class must be one of ${CLASSES.join(', ')}`);
    const keywords = strList(r.get('keywords'), 'keywords', rn);
    const pattern = str(r.get('pattern'), 'pattern', rn);
    const flagsNode = r.get('flags');
    let flags = '';
    if (flagsNode !== undefined) {
      if (!isScalar(flagsNode) || (flagsNode.value !== '' && flagsNode.value !== 'i')) fault('MJ_RULE_SCHEMA', flagsNode, "flags must be '' or 'i'");
      else flags = flagsNode.value as string;
    }
    const attemptRead = readAttempt(r.get('attempt'), fault, keysOf);
    const attempt = attemptRead?.info;
    const samples = readSamples(r.get('samples'), rn, fault, keysOf, at);
    let re: RegExp | undefined;
    if (pattern !== undefined) {
      const nodeAt = at(r.get('pattern'));
      for (const f of lintPattern(pattern)) faults.push({ code: f.code, at: nodeAt, message: `rule ${id ?? '?'}: ${f.message}` });
      try {
        re = new RegExp(pattern, flags);
      } catch (e) {
        faults.push({ code: 'MJ_RULE_BAD_REGEX', at: nodeAt, message: `rule ${id ?? '?'}: ${(e as Error).message}` });
      }
    }
    if (!id || !service || !cls || !keywords || !re || !attempt || !samples || !daemon) continue;
    const groups = [...pattern!.matchAll(/\(\?<([A-Za-z][A-Za-z0-9_]*)>/g)].map((m) => m[1]!);
    rules.push({
      id, daemon, service, serviceByProgram, class: cls, keywords, re,
      ipGroups: groups.filter((g) => /^ip\d*$/.test(g)),
      userGroups: groups.filter((g) => /^user\d*$/.test(g)),
      hasSession: groups.includes('session'),
      hasTotal: groups.includes('total'),
      attempt, summary: attemptRead?.summary ?? false, at: ruleAt, samples,
    });
  }
  if (!daemon || !programs) return undefined;
  return { path, daemon, programs, files, rules };
}

type Fault = (code: string, n: YamlNode | null | undefined, message: string) => undefined;
type KeysOf = (m: YamlNode, allowed: readonly string[], where: string) => Map<string, YamlNode> | undefined;

function readAttempt(n: YamlNode | undefined, fault: Fault, keysOf: KeysOf): { info: AttemptInfo; summary: boolean } | undefined {
  if (n === undefined) return { info: {}, summary: false };
  const a = keysOf(n, ['pair', 'weak', 'summary', 'verdict'], 'attempt');
  if (!a) return undefined;
  let summary = false;
  const sm = a.get('summary');
  if (sm !== undefined) {
    if (!isScalar(sm) || typeof sm.value !== 'boolean') return fault('MJ_RULE_SCHEMA', sm, 'attempt.summary must be true or false');
    summary = sm.value;
  }
  const out: { pair?: { group: string; side: string }; weak?: true; verdict?: true } = {};
  const weak = a.get('weak');
  if (weak !== undefined) {
    if (!isScalar(weak) || weak.value !== true) return fault('MJ_RULE_SCHEMA', weak, 'attempt.weak must be true when given');
    out.weak = true;
  }
  const verdict = a.get('verdict');
  if (verdict !== undefined) {
    if (!isScalar(verdict) || verdict.value !== true) return fault('MJ_RULE_SCHEMA', verdict, 'attempt.verdict must be true when given');
    out.verdict = true;
  }
  const pair = a.get('pair');
  if (pair !== undefined) {
    const p = keysOf(pair, ['group', 'side'], 'attempt.pair');
    if (!p) return undefined;
    const g = p.get('group'), s = p.get('side');
    if (!isScalar(g) || typeof g.value !== 'string' || !isScalar(s) || typeof s.value !== 'string') {
      return fault('MJ_RULE_SCHEMA', pair, 'attempt.pair needs string group and side');
    }
    out.pair = { group: g.value, side: s.value };
  }
  return { info: out, summary };
}

function readSamples(
  n: YamlNode | undefined, ruleNode: YamlNode, fault: Fault, keysOf: KeysOf, at: (n: YamlNode | null | undefined) => string,
): CompiledRule['samples'] | undefined {
  if (n === undefined) return fault('MJ_RULE_NO_SAMPLES', ruleNode, 'rule has no samples');
  const s = keysOf(n, ['match', 'nomatch'], 'samples');
  if (!s) return undefined;
  const matchNode = s.get('match');
  if (!matchNode || !isSeq(matchNode) || matchNode.items.length === 0) {
    return fault('MJ_RULE_NO_SAMPLES', matchNode ?? n, 'rule needs at least one match sample');
  }
  const match: SampleMatch[] = [];
  for (const it of matchNode.items as YamlNode[]) {
    const m = keysOf(it, ['line', 'ip', 'user', 'service', 'note'], 'a match sample');
    if (!m) continue;
    const line = m.get('line'), ip = m.get('ip'), user = m.get('user');
    if (!isScalar(line) || typeof line.value !== 'string') { fault('MJ_RULE_SCHEMA', it, 'match sample needs a line'); continue; }
    if (!isScalar(ip) || typeof ip.value !== 'string') { fault('MJ_RULE_SCHEMA', it, 'match sample needs the expected ip'); continue; }
    if (user !== undefined && !(isScalar(user) && (typeof user.value === 'string' || typeof user.value === 'number'))) {
      fault('MJ_RULE_SCHEMA', user, 'user must be a string'); continue;
    }
    const svc = m.get('service');
    if (svc !== undefined && !(isScalar(svc) && SERVICES.includes(svc.value as Service))) {
      fault('MJ_RULE_SCHEMA', svc, `service must be one of ${SERVICES.join(', ')}`); continue;
    }
    const base = {
      line: line.value, ip: ip.value, at: at(it),
      ...(svc !== undefined ? { service: (svc as { value: Service }).value } : {}),
    };
    match.push(user === undefined ? base : { ...base, user: String((user as { value: unknown }).value) });
  }
  const nomatch: SampleNoMatch[] = [];
  const nm = s.get('nomatch');
  if (nm !== undefined) {
    if (!isSeq(nm)) return fault('MJ_RULE_SCHEMA', nm, 'nomatch must be a list');
    for (const it of nm.items as YamlNode[]) {
      if (isScalar(it) && typeof it.value === 'string') { nomatch.push({ line: it.value, at: at(it) }); continue; }
      const m = keysOf(it, ['line', 'note'], 'a nomatch sample');
      const line = m?.get('line');
      if (!isScalar(line) || typeof line.value !== 'string') { fault('MJ_RULE_SCHEMA', it, 'nomatch sample needs a line'); continue; }
      nomatch.push({ line: line.value, at: at(it) });
    }
  }
  return { match, nomatch };
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
