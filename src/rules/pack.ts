// A loaded rule pack: every file read, every pattern linted, every sample run through the real
// parse stage and the file's own rules. Any fault refuses the whole pack.
import { fileURLToPath } from 'node:url';
import { parseIp } from '../parse/ip.js';
import { parseRecord } from '../parse/index.js';
import type { LogEvent, Match } from '../types.js';
import { RuleEngine } from './engine.js';
import { RuleLoadError, readRuleDir } from './load.js';
import type { RuleFault, RuleFile } from './load.js';

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

/** Runs every sample of a file through its own rules (and its program list). */
export function checkSamples(file: RuleFile, engine: RuleEngine, faults: RuleFault[]): void {
  for (const rule of file.rules) {
    for (const s of rule.samples.match) {
      const ev = sampleEvent(s.line, s.at);
      const m = ev && matchInFile(file, engine, ev);
      const want = parseIp(s.ip);
      const fail = (why: string): void => { faults.push({ code: 'MJ_RULE_SAMPLE', at: s.at, message: `rule ${rule.id}: ${why}` }); };
      if (!want) fail(`expected ip ${s.ip} is not a valid address`);
      else if (!ev) fail('sample line does not parse');
      else if (!m) fail(`no match (program "${ev.program}", message ${JSON.stringify(ev.message.slice(0, 120))})`);
      else if (m.ruleId !== rule.id) fail(`matched by rule ${m.ruleId} instead`);
      else if (m.ip !== want) fail(`captured ip ${m.ip}, expected ${want}`);
      else if (s.user !== undefined && m.user !== s.user) fail(`captured user ${JSON.stringify(m.user)}, expected ${JSON.stringify(s.user)}`);
      else if (s.service !== undefined && m.service !== s.service) fail(`service ${m.service}, expected ${s.service}`);
    }
    for (const s of rule.samples.nomatch) {
      const ev = sampleEvent(s.line, s.at);
      const m = ev && matchInFile(file, engine, ev);
      if (m) faults.push({ code: 'MJ_RULE_SAMPLE', at: s.at, message: `rule ${rule.id}: nomatch sample matched rule ${m.ruleId} (ip ${m.ip})` });
    }
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
