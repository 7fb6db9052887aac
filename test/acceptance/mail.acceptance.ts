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
import { attackUntilBanned, Daemon, P2_EXPIRY_S, P2_MAXRETRY, phase2Attackers, probeAll, ROT2_NET, ROT3_NET } from './phase2.js';
import { waitFor } from './proc.js';
import { restartWithTls, tlsAttackers, tlsBenign, tlsPass } from './tls.js';
import { outagePhase } from './outage.js';
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

/** Set to run phase 2 only (debugging the daemon run). */
const ONLY_PHASE2 = process.env['MJ_ACCEPT_ONLY_PHASE2'] === '1';
/** Set to run the TLS pass only (debugging it). */
const ONLY_TLS = process.env['MJ_ACCEPT_ONLY_TLS'] === '1';

const say = (s: string): void => { process.stderr.write(`${s}\n`); };

describe('acceptance: real Postfix and Dovecot, attacked in network namespaces', { timeout: 600_000 }, () => {
  let skip: string | undefined;
  let lab: Lab | undefined;
  let phase1Ran = false;
  let journalDaemon: Daemon | undefined;
  let collector: Daemon | undefined;
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
      for (const a of [...list, ...phase2Attackers(), ...phase2Attackers('syslog'), ...tlsAttackers(), ...tlsBenign()]) await lab.addClient(a.name, a.addrs);
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
    if (ONLY_PHASE2 || ONLY_TLS) { t.skip('MJ_ACCEPT_ONLY_PHASE2=1 or MJ_ACCEPT_ONLY_TLS=1'); return; }
    phase1Ran = true;
    const started = Date.now();
    const results = await playAll(lab, list);
    say(`clients done in ${((Date.now() - started) / 1000).toFixed(1)} s`);

    // The last disconnect lines reach the journal after the clients are done: wait until the
    // journal stops growing (same size on two reads 1 s apart), with a deadline.
    let json = '';
    let prev = -1;
    await waitFor(async () => {
      json = await lab!.journalJson();
      const settled = json.length === prev;
      prev = json.length;
      return settled ? true : undefined;
    }, 60_000, 1000);
    if (json.length !== prev) throw new Error('the lab journal kept growing for 60 s after the clients were done');
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

  test('phase 2: mailjail run bans each attacker after exactly maxretry attempts, drops it, spares benign clients; unban and expiry restore access', async (t) => {
    if (skip || !lab) { t.skip(`SKIPPED LOUDLY: ${skip}`); return; }
    if (ONLY_TLS) { t.skip('MJ_ACCEPT_ONLY_TLS=1'); return; }
    const gap = await daemonGap();
    if (gap) { say(`\n!!! ACCEPTANCE PHASE 2 SKIPPED: ${gap}\n`); t.skip(`SKIPPED LOUDLY: ${gap}`); return; }
    const theLab = lab;
    // Phase 1's lines must be older than the daemon's 1 s lookback when it starts: wait until the
    // newest entry in the journal now is 1.5 s old (a deadline from its own time, not a guess).
    const newest = await theLab.newestEntryMs();
    await waitFor(() => (Date.now() - newest > 1500 ? true : undefined), 30_000, 50);
    const d = new Daemon(theLab);
    journalDaemon = d;
    await d.start(RULES);
    const problems: string[] = [];
    const benign = list.filter((a) => a.role === 'benign');
    const [rows, benignResults] = await Promise.all([
      Promise.all(phase2Attackers().map((a) => attackUntilBanned(theLab, d, a))),
      playAll(theLab, benign),
    ]);
    for (const r of rows) {
      if (r.bannedAt !== P2_MAXRETRY) problems.push(`${r.name} (${r.key}): banned at attempt ${r.bannedAt ?? 'never'} of ${r.made}, want ${P2_MAXRETRY}`);
      const open = Object.entries(r.blocked).filter(([, v]) => v !== 'timeout');
      if (open.length) problems.push(`${r.name}: after the ban, ${r.last} still reaches ${open.map(([p, v]) => `${p} (${v})`).join(', ')}`);
    }
    // Benign clients: every step worked, none is in the set, all still reach every port.
    try { checkLab(benignResults); } catch (e) { problems.push(`benign clients during phase 2: ${(e as Error).message}`); }
    for (const a of benign) {
      for (const addr of a.addrs) if (await d.inSet(addr)) problems.push(`benign ${a.name} ${addr} is banned`);
      const reach = await probeAll(theLab.clients.get(a.name)!.ns, a.addrs[0]!);
      const bad = Object.entries(reach).filter(([, v]) => v !== 'open');
      if (bad.length) problems.push(`benign ${a.name} cannot reach ${bad.map(([p, v]) => `${p} (${v})`).join(', ')}`);
    }
    const bans = await d.cli(['bans', '--json']);
    const banList = bans.code === 0 ? (JSON.parse(bans.stdout) as { target: string; evidence?: { count?: number } }[]) : [];
    const targets = banList.map((b) => b.target);
    const countOf = (k: string) => String(banList.find((b) => b.target === k)?.evidence?.count ?? '-');
    if (bans.code !== 0) problems.push(`mailjail bans --json failed: ${bans.stderr}`);
    if (!targets.includes(ROT2_NET)) problems.push(`the IPv6 rotator is not banned as one /64: bans are ${targets.join(', ')}`);
    say(`\nPhase 2 (mailjail run, maxretry ${P2_MAXRETRY}, ipset): set holds ${await d.setEntries()}\n` + table(
      ['attacker', 'address / prefix', 'attempts made', 'banned at attempt', 'evidence lines', 'next connection 25/587/143/110'],
      rows.map((r) => [r.name, r.key, String(r.made), String(r.bannedAt ?? 'never'), countOf(r.key), Object.values(r.blocked).every((v) => v === 'timeout') ? 'dropped' : JSON.stringify(r.blocked)])));

    // mailjail unban restores access (an address, and the rotator's /64).
    for (const [name, target] of [['p2-smtp587-plain', '198.51.100.20'], ['p2-ipv6-rotator', ROT2_NET]] as const) {
      const row = rows.find((r) => r.name === name)!;
      const u = await d.cli(['unban', target]);
      if (u.code !== 0) { problems.push(`mailjail unban ${target}: exit ${u.code} ${u.stderr}`); continue; }
      await waitFor(async () => ((await d.inSet(row.last)) ? undefined : true), 5000, 200);
      const reach = await probeAll(theLab.clients.get(name)!.ns, row.last);
      if (Object.values(reach).some((v) => v !== 'open')) problems.push(`after unban ${target}, ${row.last} reaches ${JSON.stringify(reach)}`);
      else say(`unban ${target}: ${row.last} reaches 25/587/143/110 again`);
    }
    // Expiry, apart from the long policy bans: the attacker's ban is replaced by a short operator
    // ban; the kernel drops the entry when it runs out, not before, and the attacker connects again.
    const exp = rows.find((r) => r.name === 'p2-imap')!;
    const un = await d.cli(['unban', exp.last]);
    if (un.code !== 0) problems.push(`mailjail unban ${exp.last}: exit ${un.code} ${un.stderr}`);
    else if (!(await waitFor(async () => ((await d.inSet(exp.last)) ? undefined : true), 15_000, 200))) problems.push(`${exp.last} still in the set after unban`);
    const t0 = Date.now();
    const short = await d.cli(['ban', exp.last, '--for', `${P2_EXPIRY_S}s`]);
    if (short.code !== 0) problems.push(`mailjail ban ${exp.last} --for ${P2_EXPIRY_S}s: exit ${short.code} ${short.stderr}`);
    else if (!(await waitFor(async () => ((await d.inSet(exp.last)) ? true : undefined), 15_000, 200))) problems.push(`${exp.last} not in the set after mailjail ban`);
    else {
      const gone = await waitFor(async () => ((await d.inSet(exp.last)) ? undefined : true), (P2_EXPIRY_S + 30) * 1000, 500);
      const held = (Date.now() - t0) / 1000;
      if (!gone) problems.push(`${exp.last} still in the set ${P2_EXPIRY_S + 30} s after a ${P2_EXPIRY_S} s ban`);
      else if (held < P2_EXPIRY_S - 2) problems.push(`${exp.last} left the set after ${held.toFixed(1)} s, before its ${P2_EXPIRY_S} s ran out`);
      else {
        const reach = await probeAll(theLab.clients.get(exp.name)!.ns, exp.last);
        if (Object.values(reach).some((v) => v !== 'open')) problems.push(`after expiry ${exp.last} reaches ${JSON.stringify(reach)}`);
        else say(`a ${P2_EXPIRY_S} s ban of ${exp.last} expired after ${held.toFixed(0)} s: it reaches 25/587/143/110 again`);
      }
    }
    if (d.exited()) problems.push('mailjail run exited during the test');
    if (DEBUG_DIR) {
      writeFileSync(join(DEBUG_DIR, 'mailjail-run.log'), d.out);
      writeFileSync(join(DEBUG_DIR, 'phase2.log'), await theLab.journalSyslog());
      writeFileSync(join(DEBUG_DIR, 'phase2-status.json'), (await d.cli(['status', '--json'])).stdout);
    }
    if (problems.length) say(`mailjail run output (tail):\n${d.out.slice(-3000)}`);
    assert.deepEqual(problems, [], `\n${problems.join('\n')}`);
  });

  test('syslog pass: journald → rsyslog → TCP → mailjail collector bans each attacker after exactly maxretry attempts', async (t) => {
    if (skip || !lab) { t.skip(`SKIPPED LOUDLY: ${skip}`); return; }
    if (ONLY_TLS) { t.skip('MJ_ACCEPT_ONLY_TLS=1'); return; }
    const gap = (await daemonGap()) ?? ((await run(['which', 'rsyslogd'])).code !== 0 ? 'rsyslogd is not installed' : undefined);
    if (gap) { say(`\n!!! ACCEPTANCE SYSLOG PASS SKIPPED: ${gap}\n`); t.skip(`SKIPPED LOUDLY: ${gap}`); return; }
    const theLab = lab;
    await journalDaemon?.stop(); // one daemon at a time decides; its remaining bans expire in the kernel
    const d = new Daemon(theLab, { tcp: '127.0.0.1:5514' });
    collector = d;
    await d.start(RULES);
    await theLab.startRsyslog('127.0.0.1', 5514);
    const rows = await Promise.all(phase2Attackers('syslog').map((a) => attackUntilBanned(theLab, d, a)));
    const problems: string[] = [];
    for (const r of rows) {
      if (r.bannedAt !== P2_MAXRETRY) problems.push(`${r.name} (${r.key}): banned at attempt ${r.bannedAt ?? 'never'} of ${r.made}, want ${P2_MAXRETRY}`);
      const open = Object.entries(r.blocked).filter(([, v]) => v !== 'timeout');
      if (open.length) problems.push(`${r.name}: after the ban, ${r.last} still reaches ${open.map(([p, v]) => `${p} (${v})`).join(', ')}`);
    }
    const bans = await d.cli(['bans', '--json']);
    const targets = bans.code === 0 ? (JSON.parse(bans.stdout) as { target: string }[]).map((b) => b.target) : [];
    if (!targets.includes(ROT3_NET)) problems.push(`the IPv6 rotator is not banned as one /64: bans are ${targets.join(', ')}`);
    say(`\nSyslog pass (journald → rsyslog omfwd TCP → mailjail syslog-tcp source, maxretry ${P2_MAXRETRY}): set holds ${await d.setEntries()}\n` + table(
      ['attacker', 'address / prefix', 'attempts made', 'banned at attempt', 'next connection 25/587/143/110'],
      rows.map((r) => [r.name, r.key, String(r.made), String(r.bannedAt ?? 'never'), Object.values(r.blocked).every((v) => v === 'timeout') ? 'dropped' : JSON.stringify(r.blocked)])));
    if (d.exited()) problems.push('the collector exited during the test');
    if (DEBUG_DIR) writeFileSync(join(DEBUG_DIR, 'collector.log'), d.out);
    if (problems.length) say(`collector output (tail):\n${d.out.slice(-3000)}`);
    await d.stop(); // the outage pass runs its own daemon: one at a time decides
    assert.deepEqual(problems, [], `\n${problems.join('\n')}`);
  });

  test('outage pass: Dovecot\'s passdb unreadable for a minute; no benign address banned, the attacker banned, the outage reported', async (t) => {
    if (skip || !lab) { t.skip(`SKIPPED LOUDLY: ${skip}`); return; }
    const gap = await daemonGap();
    if (gap) { say(`\n!!! ACCEPTANCE OUTAGE PASS SKIPPED: ${gap}\n`); t.skip(`SKIPPED LOUDLY: ${gap}`); return; }
    await journalDaemon?.stop(); // when the syslog pass was skipped, phase 2's daemon still runs
    const r = await outagePhase(lab, RULES, DEBUG_DIR);
    say(r.report);
    assert.deepEqual(r.problems, [], `\n${r.problems.join('\n')}`);
  });

  test('TLS pass: postscreen, 587 with STARTTLS before AUTH, 465, 993, 995, 143/110 STARTTLS, ManageSieve 4190; nftables bans every TLS attacker at maxretry, no benign TLS client', async (t) => {
    if (skip || !lab) { t.skip(`SKIPPED LOUDLY: ${skip}`); return; }
    const gap = (await daemonGap()) ?? ((await run(['which', 'nft'])).code !== 0 ? 'nft is not installed (package nftables)' : undefined) ??
      ((await run(['test', '-x', '/usr/lib/dovecot/managesieve-login'])).code !== 0 ? 'dovecot-managesieved is not installed' : undefined);
    if (gap) { say(`\n!!! ACCEPTANCE TLS PASS SKIPPED: ${gap}\n`); t.skip(`SKIPPED LOUDLY: ${gap}`); return; }
    const theLab = lab;
    // One daemon at a time decides (their remaining bans stay in their own kernel sets).
    await journalDaemon?.stop();
    await collector?.stop();
    const started = Date.now();
    await restartWithTls(theLab);
    const out = await tlsPass(theLab, RULES);
    say(out.report);
    say(`TLS pass took ${((Date.now() - started) / 1000).toFixed(0)} s`);
    if (DEBUG_DIR) {
      mkdirSync(DEBUG_DIR, { recursive: true });
      writeFileSync(join(DEBUG_DIR, 'mailjail-tls.log'), out.daemon.out);
      writeFileSync(join(DEBUG_DIR, 'tls.log'), await theLab.journalSyslog());
    }
    if (out.problems.length) say(`mailjail run (nftables) output (tail):\n${out.daemon.out.slice(-3000)}`);
    assert.deepEqual(out.problems, [], `\n${out.problems.join('\n')}`);
  });

  test('attempts Postfix only logs as "Connection lost to authentication server" (Dovecot\'s auth penalty) are counted once', (t) => {
    if (!phase1Ran) { t.skip('phase 1 did not run'); return; }
    assert.deepEqual(knownGaps, []);
  });
});

/** Why `mailjail run` cannot be accepted here (not built yet, no ipset), or undefined. */
async function daemonGap(): Promise<string | undefined> {
  const help = await run([process.execPath, CLI, '--help']);
  if (!/^\s+run\b/m.test(help.stdout)) return 'this build has no `mailjail run` yet (branch daemon not merged)';
  for (const b of ['ipset', 'iptables', 'ip6tables']) if ((await run(['which', b])).code !== 0) return `${b} is not installed`;
  return undefined;
}

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
