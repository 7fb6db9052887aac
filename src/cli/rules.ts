// `mailjail rules test FILE`: the five-minute loop for writing a rule. Loads one rule file (beside
// the bundled pack, or alone), runs its samples and says, for each one that fails, what was expected
// and what the rules made of the line; `--expand` prints each pattern with its fragments expanded.
import { readFileSync } from 'node:fs';
import { basename, resolve } from 'node:path';
import type { Command } from 'commander';
import { RuleEngine } from '../rules/engine.js';
import { readRuleDir, readRuleFile } from '../rules/load.js';
import type { RuleFault, RuleFile } from '../rules/load.js';
import { BUNDLED_RULES_DIR, countOf, runSamples, sampleEvent } from '../rules/pack.js';
import type { SampleResult } from '../rules/pack.js';
import type { Match } from '../types.js';
import { count } from './output.js';

export interface RulesTestOptions {
  /** The pack the file is loaded beside (duplicate ids, which rule takes a line first). */
  readonly rules: string;
  readonly alone: boolean;
  readonly expand: boolean;
}

export function register(program: Command): void {
  const rules = program.command('rules').description('work on rule files');
  rules
    .command('test')
    .description("load one rule file, run its samples and show which failed and why (exit 0 all pass, 1 a fault)")
    .argument('<file>', 'a rule file (YAML, see rules/README.md)')
    .option('--rules <dir>', 'the pack to load the file beside', BUNDLED_RULES_DIR)
    .option('--alone', 'load the file without the pack', false)
    .option('--expand', 'print every pattern with its {{fragments}} expanded', false)
    .action((file: string, opts: RulesTestOptions) => {
      process.exitCode = runRulesTest(file, opts);
    });
}

const describe = (m: Match | undefined): string => m === undefined
  ? 'no match'
  : `rule ${m.ruleId} (${m.class}): ip ${m.ip}${m.user !== undefined ? `, user ${JSON.stringify(m.user)}` : ''}, service ${m.service}, count ${countOf(m)}`;

/** Runs the test and prints the report; returns the exit code (0 every sample passes, 1 otherwise, 2 unreadable). */
export function runRulesTest(path: string, opts: RulesTestOptions, out: NodeJS.WritableStream = process.stdout): number {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    process.stderr.write(`mailjail rules test: cannot read ${path}: ${(e as Error).message}\n`);
    return 2;
  }
  const lines: string[] = [];
  const faults: RuleFault[] = [];
  const file = readRuleFile(path, text, faults);
  let pack: RuleFile[] = [];
  if (!opts.alone) {
    // The pack as it stands, without an older copy of this very file (testing a bundled file in place).
    const packFaults: RuleFault[] = [];
    pack = readRuleDir(opts.rules, packFaults).filter((f) => resolve(f.path) !== resolve(path) && basename(f.path) !== basename(path));
    if (packFaults.length > 0) lines.push(`note: the pack in ${opts.rules} has ${count(packFaults.length, 'fault')} of its own (not counted here)`);
    const ids = new Map(pack.flatMap((f) => f.rules.map((r) => [r.id, r.at] as const)));
    for (const r of file?.rules ?? []) {
      const prev = ids.get(r.id);
      if (prev) faults.push({ code: 'MJ_RULE_DUP_ID', at: r.at, message: `rule id ${r.id} already defined at ${prev}` });
    }
  }
  if (opts.expand && file) {
    for (const r of file.rules) {
      lines.push(`${r.id}  (${r.at})`);
      if (r.pattern !== r.expanded) lines.push(`  pattern:  ${r.pattern}`);
      lines.push(`  expanded: ${r.expanded}`);
    }
    lines.push('');
  }
  for (const f of faults) lines.push(`${f.at}: ${f.code}: ${f.message}`);
  let failed = faults.length;
  if (file) {
    // Samples run through this file's own rules, as the loader checks them.
    const results = runSamples(file, new RuleEngine([file]));
    const byRule = new Map<string, SampleResult[]>();
    for (const r of results) byRule.set(r.rule.id, [...(byRule.get(r.rule.id) ?? []), r]);
    // Beside the pack (in the order the daemon loads the directory), another file's rule may take a line first.
    const combined = opts.alone ? undefined : new RuleEngine([...pack, file].sort((a, b) => basename(a.path).localeCompare(basename(b.path))));
    let warnings = 0;
    for (const rule of file.rules) {
      const rs = byRule.get(rule.id) ?? [];
      const bad = rs.filter((r) => r.why !== undefined);
      const nMatch = rs.filter((r) => r.kind === 'match').length;
      lines.push(`${bad.length === 0 ? 'ok  ' : 'FAIL'}  ${rule.id}  (${count(nMatch, 'match sample')}, ${count(rs.length - nMatch, 'nomatch sample')})`);
      for (const r of bad) {
        failed++;
        lines.push(`  ${r.at}: ${r.kind} sample: ${r.why!}`);
        lines.push(`    line:     ${r.line}`);
        if (r.kind === 'match') {
          const s = r.sample;
          const want = s === undefined ? '' : [
            `rule ${rule.id} (${rule.class}): ip ${s.ip}`,
            s.user !== undefined ? `user ${JSON.stringify(s.user)}` : undefined,
            s.service !== undefined ? `service ${s.service}` : undefined,
            s.count !== undefined ? `count ${s.count}` : undefined,
          ].filter((x) => x !== undefined).join(', ');
          lines.push(`    expected: ${want}`);
        } else lines.push('    expected: no match');
        lines.push(`    got:      ${describe(r.got)}`);
      }
      if (!combined) continue;
      for (const r of rs) {
        if (r.kind !== 'match' || r.why !== undefined) continue;
        const ev = sampleEvent(r.line, r.at);
        const m = ev && combined.match(ev);
        if (m && m.ruleId !== rule.id) {
          warnings++;
          lines.push(`  warning: ${r.at}: beside the pack, rule ${m.ruleId} takes this line first (${describe(m)})`);
        }
      }
    }
    const nSamples = results.length;
    lines.push('', failed === 0
      ? `${path}: ${count(file.rules.length, 'rule')}, ${count(nSamples, 'sample')}: all pass${warnings ? ` (${count(warnings, 'warning')})` : ''}`
      : `${path}: ${count(failed, 'fault')} (${count(file.rules.length, 'rule')}, ${count(nSamples, 'sample')})`);
  } else {
    lines.push('', `${path}: the file does not load (${count(failed, 'fault')})`);
  }
  out.write(`${lines.join('\n')}\n`);
  return failed === 0 ? 0 : 1;
}
