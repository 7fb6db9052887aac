// A loaded rule pack: every file read, every pattern linted, every sample run through the real
// parse stage and the file's own rules. Any fault refuses the whole pack.
import { fileURLToPath } from 'node:url';
import { parseIp } from '../parse/ip.js';
import { parseRecord } from '../parse/index.js';
import type { LogEvent, Match } from '../types.js';
import { RuleEngine } from './engine.js';
import { RuleLoadError, readRuleDir } from './load.js';
import type { CompiledRule, RuleFault, RuleFile, SampleMatch } from './load.js';

/** The rule pack shipped with mailjail (`rules/` beside `dist/`). */
export const BUNDLED_RULES_DIR = fileURLToPath(new URL('../../../rules', import.meta.url));

/** Reference time for sample lines (their dates need no particular year). */
const SAMPLE_NOW = Date.UTC(2024, 11, 31);

export function sampleEvent(line: string, at: string): LogEvent | undefined {
  const r = parseRecord({ kind: 'line', text: line, origin: { kind: 'file', name: at } }, { format: 'auto', now: SAMPLE_NOW });
  return 'event' in r ? r.event : undefined;
}

/** The first rule of `file` that matches `ev`, among those its program reaches. */
function matchInFile(file: RuleFile, engine: RuleEngine, ev: LogEvent): Match | undefined {
  const reachable = engine.groupFor(ev.program).rules;
  return engine.matchIn(file.rules.filter((r) => reachable.includes(r)), ev);
}

/** The verdict on one sample: `why` is set when it does not behave as stated. */
export interface SampleResult {
  readonly rule: CompiledRule;
  readonly kind: 'match' | 'nomatch';
  readonly line: string;
  readonly at: string;
  /** What the file's rules made of the line (undefined: no match, or the line does not parse). */
  readonly got: Match | undefined;
  readonly why?: string;
  /** The match sample as written (its expectations); absent for nomatch samples. */
  readonly sample?: SampleMatch;
}

/** The attempts a match stands for, as the state stage reads it (a summary's total; else 1). */
export const countOf = (m: Match): number => m.attempt.total ?? 1;

/** Runs every sample of a file through its own rules (and its program list). */
export function runSamples(file: RuleFile, engine: RuleEngine): SampleResult[] {
  const out: SampleResult[] = [];
  for (const rule of file.rules) {
    for (const s of rule.samples.match) {
      const ev = sampleEvent(s.line, s.at);
      const m = ev && matchInFile(file, engine, ev);
      const want = parseIp(s.ip);
      let why: string | undefined;
      if (!want) why = `expected ip ${s.ip} is not a valid address`;
      else if (!ev) why = 'sample line does not parse';
      else if (!m) why = `no match (program "${ev.program}", message ${JSON.stringify(ev.message.slice(0, 120))})`;
      else if (m.ruleId !== rule.id) why = `matched by rule ${m.ruleId} instead`;
      else if (m.ip !== want) why = `captured ip ${m.ip}, expected ${want}`;
      else if (s.user !== undefined && m.user !== s.user) why = `captured user ${JSON.stringify(m.user)}, expected ${JSON.stringify(s.user)}`;
      else if (s.service !== undefined && m.service !== s.service) why = `service ${m.service}, expected ${s.service}`;
      else if (s.count !== undefined && countOf(m) !== s.count) why = `counts ${countOf(m)}, expected ${s.count}`;
      out.push({ rule, kind: 'match', line: s.line, at: s.at, got: m, sample: s, ...(why !== undefined ? { why } : {}) });
    }
    for (const s of rule.samples.nomatch) {
      const ev = sampleEvent(s.line, s.at);
      const m = ev && matchInFile(file, engine, ev);
      const why = m ? `nomatch sample matched rule ${m.ruleId} (ip ${m.ip})` : undefined;
      out.push({ rule, kind: 'nomatch', line: s.line, at: s.at, got: m, ...(why !== undefined ? { why } : {}) });
    }
  }
  return out;
}

/** Runs every sample of a file; each one that does not behave as stated is a fault. */
export function checkSamples(file: RuleFile, engine: RuleEngine, faults: RuleFault[]): void {
  for (const r of runSamples(file, engine)) {
    if (r.why !== undefined) faults.push({ code: 'MJ_RULE_SAMPLE', at: r.at, message: `rule ${r.rule.id}: ${r.why}` });
  }
}

/** Reads, lints and sample-checks a rule directory: the engine and every fault found. */
export function verifyRuleDir(dir: string): { engine: RuleEngine; faults: RuleFault[] } {
  const faults: RuleFault[] = [];
  const files = readRuleDir(dir, faults);
  const engine = new RuleEngine(files);
  for (const f of files) checkSamples(f, engine, faults);
  if (files.length === 0 && faults.length === 0) faults.push({ code: 'MJ_RULE_EMPTY', at: dir, message: 'no rule files (*.yaml) found' });
  return { engine, faults };
}

/** Loads and verifies a rule directory; throws RuleLoadError listing every fault. */
export function loadRulePack(dir: string = BUNDLED_RULES_DIR): RuleEngine {
  const { engine, faults } = verifyRuleDir(dir);
  if (faults.length > 0) throw new RuleLoadError(faults);
  return engine;
}
