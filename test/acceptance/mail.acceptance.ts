// Acceptance against the real daemons our users run (issue 7). Not part of `npm test`: it installs
// Debian packages and takes a few minutes; run it with `npm run test:acceptance` (CI does).
//
// Phase 1 (capture): real Postfix + Dovecot in a network namespace, attacked and used from client
// namespaces; their own log lines, from a real journald, go through `mailjail check` and through
// parse → rules → state in-process. Every attack attempt must be counted exactly once, no benign
// client may reach a ban, and every line naming an attacker that no rule takes is reported.
// Phase 2 (daemon): see daemon.acceptance.ts.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { loadRulePack } from '../../src/rules/pack.js';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { analyse } from './analyse.js';
import { compare, madeOf, missedLines, toTruth } from './verdict.js';
import { Lab, preflight } from './lab.js';
import { run } from './proc.js';
import { keysOf, sanitizeJournal, sanitizeSyslog, table } from './report.js';
import { actors, playAll } from './scenario.js';
import type { StepResult } from './scenario.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
/** The policy the verdicts are checked against (the default policy's maxretry). */
const MAXRETRY = 5;
/** Rule directory (default: the bundled pack). */
const RULES = process.env['MJ_ACCEPT_RULES'];
/** Set to write the sanitized capture into test/fixtures/real/ (to refresh the committed fixtures). */
const SAVE = process.env['MJ_ACCEPT_SAVE_FIXTURES'] === '1';

/** Set to keep the raw capture (for debugging a failing run). */
const DEBUG_DIR = process.env['MJ_ACCEPT_DEBUG_DIR'];

const say = (s: string): void => { process.stderr.write(`${s}\n`); };

describe('acceptance: real Postfix and Dovecot, attacked in network namespaces', { timeout: 600_000 }, () => {
  let skip: string | undefined;
  let lab: Lab | undefined;
  let phase1Ran = false;
  const knownGaps: string[] = [];
  const list = actors(MAXRETRY + 1);

  before(async () => {
    skip = rulePackGap() ?? (await preflight(say));
    if (skip) {
      say(`\n!!! ACCEPTANCE SUITE SKIPPED: ${skip}\n`);
      return;
    }
    lab = new Lab(say);
    try {
      await lab.startJournald();
      await lab.startNetwork();
      for (const a of list) await lab.addClient(a.name, a.addrs);
      await lab.startDovecot();
      await lab.startPostfix();
    } catch (e) {
      // after() still runs and cleans up.
      throw e;
    }
  });

  after(async () => {
    if (!lab) return;
    const errs = await lab.stopAll();
    if (errs.length) say(`cleanup problems:\n  ${errs.join('\n  ')}`);
  });

  test('phase 1: every attempt of the real daemons is matched and counted once; no benign client reaches a ban', async (t) => {
    if (skip || !lab) { t.skip(`SKIPPED LOUDLY: ${skip}`); return; }
    phase1Ran = true;
    const started = Date.now();
    const results = await playAll(lab, list);
    say(`clients done in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    await new Promise((r) => setTimeout(r, 1500)); // the last disconnect lines
    const json = await lab.journalJson();
    const syslog = await lab.journalSyslog();
    if (DEBUG_DIR) {
      mkdirSync(DEBUG_DIR, { recursive: true });
      writeFileSync(join(DEBUG_DIR, 'capture.journal.json'), json);
      writeFileSync(join(DEBUG_DIR, 'capture.log'), syslog);
      writeFileSync(join(DEBUG_DIR, 'results.json'), `${JSON.stringify(toTruth(results), null, 1)}\n`);
    }
    checkLab(results);
    const cleanJson = sanitizeJournal(json, lab.dir);
    const cleanLog = sanitizeSyslog(syslog, lab.dir);
    if (SAVE) {
      const dir = join(ROOT, 'test/fixtures/real');
      mkdirSync(dir, { recursive: true });
      writeFileSync(join(dir, 'postfix-dovecot.journal.json'), cleanJson);
      writeFileSync(join(dir, 'postfix-dovecot.log'), cleanLog);
      writeFileSync(join(dir, 'postfix-dovecot.truth.json'), `${JSON.stringify(toTruth(results), null, 1)}\n`);
      say(`fixtures written to ${dir}`);
    }

    const made = madeOf(toTruth(results));
    const problems: string[] = [];
    const viaJson = analyse(cleanJson, RULES);
    const viaLog = analyse(cleanLog, RULES);
    for (const [form, an] of [['journal JSON', viaJson], ['syslog text', viaLog]] as const) {
      problems.push(...compare(form, an, made, toTruth(results), MAXRETRY, knownGaps));
    }
    if (knownGaps.length) say(`\nKnown gap (see the TODO test):\n  ${knownGaps.join('\n  ')}`);
    const misses = missedLines(viaJson, toTruth(results));
    if (misses.length) say(`\nLines naming an attacker that no rule took (${misses.length}):\n${misses.map((l) => `  ${l}`).join('\n')}\n`);
    else say('\nNo line naming an attacker was missed by the rules.\n');

    // The product's own verdict: `mailjail check` over both forms, with the policy's maxretry.
    const attackers = list.filter((a) => a.role === 'attacker').flatMap(keysOf);
    const banned: Record<string, string[]> = {};
    for (const [form, text] of [['journal JSON', cleanJson], ['syslog text', cleanLog]] as const) {
      const r = await run([process.execPath, CLI, 'check', '--json', '--maxretry', String(MAXRETRY), ...(RULES ? ['--rules', RULES] : []), '-'], { input: text, env: { ...process.env, TZ: 'UTC' } });
      assert.equal(r.code, 0, `mailjail check (${form}) failed: ${r.stderr}`);
      const summary = (JSON.parse(r.stdout.trimEnd().split('\n').pop()!) as { summary: { banned: string[] } }).summary;
      banned[form] = summary.banned;
      for (const k of attackers) if (!summary.banned.includes(k)) problems.push(`check (${form}): attacker ${k} not banned`);
      for (const k of summary.banned) if (!attackers.includes(k)) problems.push(`check (${form}): ${k} banned but is no attacker`);
    }

    const rows = list.map((a) => {
      const keys = keysOf(a);
      const sum = (m: ReadonlyMap<string, number>) => String(keys.reduce((n, k) => n + (m.get(k) ?? 0), 0));
      return [a.name, a.role, keys.join(' '), sum(made), sum(viaJson.counted), sum(viaLog.counted),
        keys.every((k) => banned['journal JSON']?.includes(k)) ? 'yes' : 'no'];
    });
    say(`\nPhase 1 (maxretry ${MAXRETRY}): attempts made by the clients vs counted by mailjail\n` +
      table(['client', 'role', 'address / prefix', 'made', 'counted (journal)', 'counted (syslog)', 'check bans'], rows));
    assert.deepEqual(problems, [], `\n${problems.join('\n')}`);
  });

  test('known gap: attempts Postfix only logs as "Connection lost to authentication server" are counted', { todo: 'weak lines are dropped by the outage heuristic when several attackers hit Dovecot\'s auth penalty at once (reported to the lead)' }, (t) => {
    if (!phase1Ran) { t.skip('phase 1 did not run'); return; }
    assert.deepEqual(knownGaps, []);
  });
});

/** Why the bundled rule pack cannot be accepted yet (no Postfix or no Dovecot rules), or undefined. */
function rulePackGap(): string | undefined {
  const dir = RULES ?? join(ROOT, 'rules');
  const programs = loadRulePack(dir).programs();
  if (!programs.some((p) => p.startsWith('postfix'))) return `the rule pack in ${dir} has no Postfix rules yet`;
  if (!programs.some((p) => p.startsWith('dovecot'))) return `the rule pack in ${dir} has no Dovecot rules yet`;
  return undefined;
}

/** The lab itself must behave: benign logins succeed, attacks fail (else the test proves nothing). */
function checkLab(results: readonly StepResult[]): void {
  const bad = results.filter((r) => r.connect !== 'open' || r.results.includes('error') ||
    (r.step.logins.length > 0 && r.results.length === 0));
  assert.deepEqual(bad.map((r) => `${r.actor} ${r.src} ${r.step.proto}:${r.step.port} ${r.connect} ${r.results.join(',')} ${r.detail ?? ''}`), [], 'lab clients could not do their steps');
  for (const r of results) {
    const want = r.step.logins.length === 0 ? ['ok'] : r.step.logins.map((l) => (l.pass.startsWith('wrong-') || l.user.startsWith('ghost') ? 'fail' : 'ok'));
    assert.deepEqual(r.results, want, `${r.actor} ${r.step.proto}:${r.step.port}: server answers`);
  }
}
