// The outage pass (issue 13, section 2): Dovecot's passdb becomes unreadable for about a minute
// while benign users keep submitting (Postfix → Dovecot SASL) and logging in (IMAP, POP3) and an
// attacker keeps guessing. Every login then fails with a temporary failure and the client-facing
// lines read like wrong passwords; mailjail must count none of them. Checked live on a
// `mailjail run` of its own (bans, outage log lines, mailjail_auth_outages_total) and in
// `mailjail check --json` over the same journal (JSON and syslog text): no benign address banned,
// the attacker banned by his definite failures before and after the outage, the outage reported.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keyFor } from './analyse.js';
import type { Lab } from './lab.js';
import { USERS } from './lab.js';
import { Daemon, P2_MAXRETRY } from './phase2.js';
import { run, sleep, waitFor } from './proc.js';
import { sanitizeJournal, sanitizeSyslog, table } from './report.js';
import { runStep } from './scenario.js';
import type { Actor, Login, Step, StepResult, Verdict } from './scenario.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const METRICS = '127.0.0.1:9599';
/** Failed logins of each benign address during the outage: more than maxretry, were they counted. */
export const OUTAGE_TRIES = 4;
/** Pause between a benign client's logins during the outage: with OUTAGE_TRIES, the outage lasts ≈ 55 s. */
const BENIGN_PAUSE_MS = 12_000;
/** state's serverErrorPairMs (src/state/outage.ts): a failure this close to its address's server-error line is that attempt. */
const PAIR_MS = 5000;
/** The attacker's SMTP guesses stop this far into the outage (see DOVECOT_ANSWERS_MS). */
const SMTP_CUTOFF_MS = 15_000;
/** Dovecot answers a SASL request within its auth penalty cap (15 s) + auth_failure_delay (2 s), with a margin. */
const DOVECOT_ANSWERS_MS = 20_000;

const good = (user: string): Login => ({ user, pass: USERS[user]! });
const wrong = (n: number): Login => ({ user: 'alice@mx.test', pass: `wrong-${n}` });
const ghost = (n: number): Login => ({ user: `ghost-o${n}@mx.test`, pass: `guess-${n}` });
const smtp = (port: number, mech: 'LOGIN' | 'PLAIN', l: Login): Step => ({ proto: 'smtp', port, mech, logins: [l] });
const imap = (l: Login): Step => ({ proto: 'imap', port: 143, logins: [l] });
const pop3 = (l: Login): Step => ({ proto: 'pop3', port: 110, logins: [l] });

/** Benign clients: each has logged in before the outage, tries OUTAGE_TRIES times during it, and again after. */
export function outageBenign(): Actor[] {
  return [
    { name: 'o-imap-pop3', role: 'benign', addrs: ['192.0.2.30'], pauseMs: BENIGN_PAUSE_MS,
      steps: [imap(good('alice@mx.test')), pop3(good('alice@mx.test'))] },
    { name: 'o-submitter', role: 'benign', addrs: ['192.0.2.31'], pauseMs: BENIGN_PAUSE_MS,
      steps: [{ ...smtp(587, 'PLAIN', good('bob@mx.test')), deliver: 'carol@mx.test' }] },
    { name: 'o-mixed', role: 'benign', addrs: ['192.0.2.32'], pauseMs: BENIGN_PAUSE_MS,
      steps: [smtp(25, 'LOGIN', good('carol@mx.test')), imap(good('carol@mx.test')), smtp(587, 'PLAIN', good('carol@mx.test'))] },
  ];
}

export const OUTAGE_ATTACKER: Actor = { name: 'o-attacker', role: 'attacker', addrs: ['198.51.100.60'], pauseMs: 2000, steps: [] };
/** The attacker's guesses, in turn: a wrong password over submission, an unknown user over IMAP. */
const guess = (n: number): Step => (n % 2 === 0 ? smtp(587, 'PLAIN', wrong(n)) : imap(ghost(n)));

interface Tried { readonly r: StepResult; readonly start: number; readonly end: number; readonly when: 'before' | 'during' | 'after' }

export interface OutageResult { readonly problems: string[]; readonly report: string }

/**
 * Runs the outage pass on `lab` (Dovecot and Postfix running; no other mailjail daemon deciding).
 * Adds its own client namespaces; returns the problems found (empty = passed) and a report.
 */
export async function outagePhase(lab: Lab, rulesDir: string | undefined, debugDir: string | undefined): Promise<OutageResult> {
  const problems: string[] = [];
  const benign = outageBenign();
  for (const a of [...benign, OUTAGE_ATTACKER]) await lab.addClient(a.name, a.addrs);
  const d = new Daemon(lab, 'journal', { name: 'mailjail-outage', prefix: 'mjacco', metrics: METRICS });
  await d.start(rulesDir);
  const since = Date.now();
  const tried: Tried[] = [];
  let phase: Tried['when'] = 'before';
  const attempt = async (a: Actor, step: Step): Promise<StepResult> => {
    const start = Date.now();
    const r = await runStep(lab, a, step, 40);
    tried.push({ r, start, end: Date.now(), when: phase });
    if (debugDir) process.stderr.write(`${new Date(start).toISOString()} ${phase} ${a.name} ${step.proto}:${step.port} → ${r.results.join(',')} ${r.detail ?? ''}\n`);
    return r;
  };
  // Whoever gets banned, and when (a watcher polls the kernel set all along).
  const bannedAt = new Map<string, { when: Tried['when']; guesses: number }>();
  let guesses = 0;
  let watching = true;
  const watcher = (async () => {
    while (watching) {
      for (const a of [...benign, OUTAGE_ATTACKER]) {
        if (!bannedAt.has(a.name) && (await d.inSet(a.addrs[0]!))) bannedAt.set(a.name, { when: phase, guesses });
      }
      await sleep(300);
    }
  })();
  const guessOnce = async (): Promise<StepResult> => attempt(OUTAGE_ATTACKER, guess(guesses++));

  let outStart = 0;
  let restored = 0;
  try {
    // Before: every benign client logs in over each of its protocols; the attacker fails twice
    // (maxretry - 1: definite failures, counted).
    await Promise.all([
      ...benign.map(async (a) => { for (const s of a.steps) await attempt(a, s); }),
      (async () => { for (let i = 0; i < P2_MAXRETRY - 1; i++) await guessOnce(); })(),
    ]);

    // During: the passdb is unreadable. Benign clients try OUTAGE_TRIES times each with their right
    // passwords; the attacker keeps guessing until they are done.
    phase = 'during';
    outStart = Date.now();
    lab.setPassdbReadable(false);
    let benignDone = false;
    const attackerLoop = (async () => {
      while (!benignDone) {
        if (Date.now() - outStart < SMTP_CUTOFF_MS) await guessOnce();
        else await attempt(OUTAGE_ATTACKER, imap(ghost(guesses++)));
        if (!benignDone) await waitFor(() => (benignDone ? true : undefined), OUTAGE_ATTACKER.pauseMs, 100);
      }
    })();
    await Promise.all(benign.map(async (a) => {
      for (let i = 0; i < OUTAGE_TRIES; i++) {
        if (i > 0) await sleep(a.pauseMs);
        const { deliver: _mailOnlyWhenLoggedIn, ...s } = a.steps[i % a.steps.length]!;
        await attempt(a, s);
      }
    }));
    benignDone = true;
    await attackerLoop;
    // Every guess of the attacker must meet the unreadable passdb, not the restored one. Postfix
    // gives up on a SASL request that waits out Dovecot's auth penalty ("Connection lost to
    // authentication server") while Dovecot still holds it; were the file readable by the time
    // Dovecot gets to it, the guess would be a real "Password mismatch" and rightly count (seen in
    // the second run of this pass). Dovecot answers within its penalty cap (15 s) plus
    // auth_failure_delay (2 s): SMTP guesses stop SMTP_CUTOFF_MS into the outage, and a deliberate
    // clock wait covers a loaded machine. IMAP guesses wait for their answer anyway.
    const lastSmtp = Math.max(0, ...tried.filter((t) => t.when === 'during' && t.r.actor === OUTAGE_ATTACKER.name && t.r.step.proto === 'smtp').map((t) => t.start));
    const hold = lastSmtp + DOVECOT_ANSWERS_MS - Date.now();
    if (hold > 0) await sleep(hold);
    const started = await waitFor(() => (/the auth back end of this host fails/.test(d.out) ? true : undefined), 15_000, 200);
    if (!started) problems.push('mailjail run logged no "auth back end of this host fails" line during the outage');

    // After: the passdb is readable again. Benign clients log in again (they must reach every
    // service, so none is banned); then the attacker guesses until he is banned.
    lab.setPassdbReadable(true);
    phase = 'after';
    restored = Date.now();
    await Promise.all(benign.map(async (a) => { for (const s of a.steps) await attempt(a, s); }));
    // A deliberate clock wait, not a guess: a failure within PAIR_MS of its address's last
    // server-error line (all logged before the restore) is taken as that same attempt
    // (docs/counting.md), so the attacker's first guess after the outage would be excused. Real
    // attackers do not wait; this makes "banned at" exact.
    const wait = restored + PAIR_MS + 1500 - Date.now();
    if (wait > 0) await sleep(wait);
    const firstAfter = guesses;
    for (let i = 0; i < P2_MAXRETRY && !bannedAt.has(OUTAGE_ATTACKER.name); i++) {
      // IMAP: the attacker carries Dovecot's auth penalty by now, which SMTP AUTH would meet as
      // Postfix's auth-server timeout (the weak "Connection lost" line, docs/acceptance.md).
      await attempt(OUTAGE_ATTACKER, imap(ghost(guesses++)));
      await waitFor(() => (bannedAt.has(OUTAGE_ATTACKER.name) ? true : undefined), 10_000, 100);
    }
    const ban = bannedAt.get(OUTAGE_ATTACKER.name);
    if (!ban) problems.push(`the attacker ${OUTAGE_ATTACKER.addrs[0]} was not banned (${guesses} guesses)`);
    else if (ban.when !== 'after' || ban.guesses !== firstAfter + 1) {
      problems.push(`the attacker was banned ${ban.when} the outage at guess ${ban.guesses}; want after it, at guess ${firstAfter + 1} (${P2_MAXRETRY - 1} before + 1 after)`);
    }
    const ended = await waitFor(() => (/auth back-end outage over/.test(d.out) ? true : undefined), 15_000, 200);
    if (!ended) problems.push('mailjail run logged no "auth back-end outage over" line after the passdb was restored');
  } finally {
    watching = false;
    await watcher;
    if (restored === 0) lab.setPassdbReadable(true);
  }

  // The lab itself: benign logins worked before and after and failed during; the attacker always failed.
  for (const t of tried) {
    const want: Verdict = t.r.role === 'attacker' || t.when === 'during' ? 'fail' : 'ok';
    if (t.r.connect !== 'open' || t.r.results.length !== 1 || t.r.results[0] !== want) {
      problems.push(`lab: ${t.r.actor} ${t.when} ${t.r.step.proto}:${t.r.step.port} ${t.r.connect} → ${t.r.results.join(',') || 'nothing'} (want ${want}) ${t.r.detail ?? ''}`);
    }
  }

  // Live: who is banned, and the outage counted once.
  for (const a of benign) if (bannedAt.has(a.name) || (await d.inSet(a.addrs[0]!))) problems.push(`benign ${a.name} ${a.addrs[0]} was banned`);
  const bans = await d.cli(['bans', '--json']);
  const targets = bans.code === 0 ? (JSON.parse(bans.stdout) as { target: string }[]).map((b) => b.target) : [];
  if (bans.code !== 0) problems.push(`mailjail bans --json failed: ${bans.stderr}`);
  const attackerKey = keyFor(OUTAGE_ATTACKER.addrs[0]!);
  if (!targets.includes(attackerKey)) problems.push(`mailjail bans --json does not list the attacker ${attackerKey}: ${targets.join(', ')}`);
  for (const a of benign) if (targets.includes(keyFor(a.addrs[0]!))) problems.push(`mailjail bans --json lists benign ${a.addrs[0]}`);
  const metrics = await run(['ip', 'netns', 'exec', lab.srv, process.execPath, '-e',
    `fetch('http://${METRICS}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t), (e) => { console.error(String(e)); process.exit(1); })`], { timeoutMs: 20_000 });
  const outagesTotal = Number(/^mailjail_auth_outages_total\{cause="server-error"\} (\d+)/m.exec(metrics.stdout)?.[1] ?? NaN);
  if (outagesTotal !== 1) problems.push(`mailjail_auth_outages_total{cause="server-error"} is ${outagesTotal}, want 1 (${metrics.stderr.trim()})`);

  // Replay: `mailjail check --json` over the same lines, journal JSON and syslog text.
  const sinceArg = `--since=@${Math.floor(since / 1000)}`;
  const env = { ...process.env, TZ: 'UTC' };
  await run(['journalctl', `--namespace=${lab.id}`, '--sync'], { timeoutMs: 10_000 });
  const rawJson = (await run(['journalctl', `--namespace=${lab.id}`, sinceArg, '--no-pager', '-o', 'json'], { timeoutMs: 30_000, env })).stdout;
  const rawLog = (await run(['journalctl', `--namespace=${lab.id}`, sinceArg, '--no-pager', '-o', 'short'], { timeoutMs: 30_000, env })).stdout;
  const json = sanitizeJournal(rawJson.split('\n').filter((l) => {
    const t = /"__REALTIME_TIMESTAMP":"(\d+)"/.exec(l);
    return t !== null && Number(t[1]) / 1000 >= since;
  }).join('\n'), lab.dir);
  const log = sanitizeSyslog(rawLog, lab.dir);
  if (debugDir) {
    writeFileSync(join(debugDir, 'outage.journal.json'), json);
    writeFileSync(join(debugDir, 'outage.log'), log);
    writeFileSync(join(debugDir, 'mailjail-outage.log'), d.out);
  }
  const rows: string[][] = [];
  for (const [form, text] of [['journal JSON', json], ['syslog text', log]] as const) {
    const r = await run([process.execPath, CLI, 'check', '--json', '--maxretry', String(P2_MAXRETRY), ...(rulesDir ? ['--rules', rulesDir] : []), '-'], { input: text, env });
    if (r.code !== 0) { problems.push(`mailjail check (${form}) failed: ${r.stderr}`); continue; }
    const out = r.stdout.trimEnd().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    const summary = out.pop()!['summary'] as { banned: string[]; outages: { start: string; end: string; lines: number; cause: string }[] };
    const matches = out as { ip: string; time: string; attempts: number }[];
    const sum = (ip: string, from = -Infinity, to = Infinity) => matches.filter((m) => m.ip === ip && Date.parse(m.time) >= from && Date.parse(m.time) < to).reduce((n, m) => n + m.attempts, 0);
    if (!summary.banned.includes(attackerKey)) problems.push(`check (${form}): the attacker ${attackerKey} is not banned`);
    for (const a of benign) {
      if (summary.banned.includes(keyFor(a.addrs[0]!))) problems.push(`check (${form}): benign ${a.addrs[0]} banned`);
      if (sum(a.addrs[0]!) !== 0) problems.push(`check (${form}): benign ${a.addrs[0]} counted ${sum(a.addrs[0]!)} attempts, want 0`);
    }
    // Syslog text has whole seconds: a second of slack at each edge of the outage.
    const atk = OUTAGE_ATTACKER.addrs[0]!;
    const before = sum(atk, -Infinity, outStart - 1000);
    const during = sum(atk, outStart + 1000, restored - 1000);
    const after = sum(atk, restored + 1000);
    if (before !== P2_MAXRETRY - 1) problems.push(`check (${form}): the attacker counted ${before} attempts before the outage, want ${P2_MAXRETRY - 1}`);
    if (during !== 0) problems.push(`check (${form}): the attacker counted ${during} attempts during the outage, want 0`);
    if (after < 1) problems.push(`check (${form}): the attacker counted no attempt after the outage`);
    const so = summary.outages.filter((o) => o.cause === 'server-error');
    if (so.length !== 1 || !(so[0]!.lines > 0)) problems.push(`check (${form}): summary outages ${JSON.stringify(summary.outages)}, want one server-error outage that excused lines`);
    const benignMade = tried.filter((t) => t.r.role === 'benign' && t.when === 'during').length;
    rows.push([form, String(benignMade), benign.map((a) => sum(a.addrs[0]!)).join('/'), `${before}/${during}/${after}`,
      summary.banned.filter((b) => [attackerKey, ...benign.map((a) => keyFor(a.addrs[0]!))].includes(b)).join(' ') || '-',
      so.map((o) => `${o.start.slice(11, 19)}–${o.end.slice(11, 19)}, ${o.lines} lines`).join('; ')]);
  }
  if (d.exited()) problems.push('mailjail run (outage) exited during the test');
  await d.stop();
  const secs = (t: number) => ((t - outStart) / 1000).toFixed(0);
  const report = `\nOutage pass (Dovecot passwd-file unreadable for ${((restored - outStart) / 1000).toFixed(0)} s, maxretry ${P2_MAXRETRY}): `
    + `live: banned ${[...bannedAt].map(([n, b]) => `${n} (${b.when} the outage, guess ${b.guesses})`).join(', ') || 'nobody'}; `
    + `outage log lines ${/the auth back end of this host fails/.test(d.out) ? 'start' : '-'}/${/auth back-end outage over/.test(d.out) ? 'end' : '-'}, `
    + `mailjail_auth_outages_total{cause="server-error"} ${outagesTotal}; attacker guesses at ${tried.filter((t) => t.r.role === 'attacker').map((t) => `${secs(t.start)}s`).join(' ')} (outage 0–${secs(restored)} s)\n`
    + table(['check --json over', 'benign failures in outage', 'benign counted', 'attacker counted before/during/after', 'banned', 'outages'], rows);
  return { problems, report };
}
