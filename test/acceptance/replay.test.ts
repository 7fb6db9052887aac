// Replays the committed capture of real Postfix and Dovecot (test/fixtures/real/, made by
// mail.acceptance.ts with MJ_ACCEPT_SAVE_FIXTURES=1) through the bundled rule pack: fast, no root,
// part of `npm test`. Every failed attempt the clients made must be counted exactly once, no benign
// client may reach a ban, and `mailjail check` must ban exactly the attackers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadRulePack } from '../../src/rules/pack.js';
import { analyse, keyFor } from './analyse.js';
import { compare, madeOf, missedLines } from './verdict.js';
import type { Truth } from './verdict.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const DIR = join(ROOT, 'test/fixtures/real');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const MAXRETRY = 5;
const FORMS = [['journal JSON', 'postfix-dovecot.journal.json'], ['syslog text', 'postfix-dovecot.log']] as const;

const truth = JSON.parse(readFileSync(join(DIR, 'postfix-dovecot.truth.json'), 'utf8')) as Truth[];
const programs = loadRulePack().programs();
const noRules = !programs.some((p) => p.startsWith('postfix')) || !programs.some((p) => p.startsWith('dovecot'))
  ? 'SKIPPED LOUDLY: the bundled rule pack has no Postfix or no Dovecot rules yet' : undefined;
const gaps: string[] = [];

test('real capture: every failed attempt counted once, benign clients never near a ban, no capture of a non-client', { skip: noRules }, () => {
  const made = madeOf(truth);
  const problems: string[] = [];
  for (const [form, file] of FORMS) {
    const an = analyse(readFileSync(join(DIR, file), 'utf8'));
    problems.push(...compare(form, an, made, truth, MAXRETRY, gaps));
    const missed = missedLines(an, truth);
    problems.push(...missed.map((l) => `${form}: no rule took: ${l}`));
  }
  assert.deepEqual(problems, []);
});

test('real capture: mailjail check bans exactly the attackers (address, or /64 for the IPv6 rotator)', { skip: noRules }, () => {
  const attackers = new Set(truth.filter((t) => t.role === 'attacker').map((t) => keyFor(t.src)));
  for (const [form, file] of FORMS) {
    const r = spawnSync(process.execPath, [CLI, 'check', '--json', '--maxretry', String(MAXRETRY), join(DIR, file)], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
    assert.equal(r.status, 0, r.stderr);
    const summary = (JSON.parse(r.stdout.trimEnd().split('\n').pop()!) as { summary: { banned: string[] } }).summary;
    assert.deepEqual(new Set(summary.banned), attackers, form);
  }
});

test('attempts Postfix only logs as "Connection lost to authentication server" (Dovecot\'s auth penalty) are counted once', { skip: noRules }, () => {
  assert.deepEqual(gaps, []);
});
