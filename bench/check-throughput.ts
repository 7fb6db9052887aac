// Benchmark: `mailjail check` on a generated mail log next to `grep -c` (and fail2ban-regex when it is
// installed), in one run on one machine, and its auth-failure count checked against the generator's
// ground truth.  Usage: node dist/bench/check-throughput.js [--lines N] [--format syslog|rfc5424|journal-json]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
};
const LINES = Number(arg('lines', '1000000'));
const FORMAT = arg('format', 'syslog');
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const GEN = join(ROOT, '../shared/bench/gen-maillog.mjs');
const CLI = join(ROOT, 'dist/src/cli/main.js');

if (!existsSync(GEN)) {
  console.error(`generator not found at ${GEN} (../shared is needed for this benchmark)`);
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'mj-bench-'));
const log = join(dir, `mail.${FORMAT}.log`);
const truthPath = join(dir, 'truth.json');
try {
  execFileSync('sh', ['-c', `node "$0" --lines ${LINES} --attack-ratio 0.05 --attackers 20000 --seed 42 --exim --format ${FORMAT} --truth "$1" > "$2"`, GEN, truthPath, log]);
  const truth = JSON.parse(readFileSync(truthPath, 'utf8')) as { totals: { kinds: Record<string, number>; attackerFailLines: number; benignFailLines: number } };
  const mb = statSync(log).size / 2 ** 20;

  const time = (cmd: string, args: string[]): { s: number; out: string } => {
    const t = process.hrtime.bigint();
    const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 1 << 30 });
    if (r.status !== 0 && !(cmd === 'grep' && r.status === 1)) throw new Error(`${cmd} failed: ${r.stderr}`);
    return { s: Number(process.hrtime.bigint() - t) / 1e9, out: r.stdout };
  };
  const best = (f: () => { s: number; out: string }, n = 3): { s: number; out: string } => {
    let b = f();
    for (let i = 1; i < n; i++) { const r = f(); if (r.s < b.s) b = r; }
    return b;
  };
  const node = process.execPath;
  const flags = ['--enable-experimental-regexp-engine-on-excessive-backtracks'];
  const check = best(() => time(node, [...flags, CLI, 'check', '--json', log]));
  const plain = best(() => time(node, [...flags, CLI, 'check', log]));
  // check's own figure: lines/s from the first to the last line, without start-up and rule-pack load.
  const own = Number(/\(([\d,]+) lines\/s\)/.exec(plain.out)?.[1]?.replace(/,/g, '') ?? NaN);
  const grep = best(() => time('grep', ['-c', 'authentication failed', log]));
  const summaryLine = check.out.trimEnd().split('\n').pop()!;
  const summary = (JSON.parse(summaryLine) as { summary: { lines: number; matched: number; perClass: Record<string, number>; banned: string[] } }).summary;
  const k = truth.totals.kinds;
  const expectAuth = (k['postfix_sasl'] ?? 0) + (k['dovecot_login'] ?? 0) + (k['dovecot_auth'] ?? 0) + (k['exim'] ?? 0);

  const rows: [string, number][] = [
    ['mailjail check (whole rule pack, --json)', check.s],
    ['mailjail check (whole rule pack, summary)', plain.s],
    ['grep -c "authentication failed"', grep.s],
  ];
  const f2b = spawnSync('sh', ['-c', 'command -v fail2ban-regex'], { encoding: 'utf8' }).stdout.trim();
  if (f2b) {
    for (const filter of ['postfix', 'dovecot']) {
      rows.push([`fail2ban-regex ${filter}`, time(f2b, [log, `/etc/fail2ban/filter.d/${filter}.conf`]).s]);
    }
  }
  console.log(`machine: ${cpus()[0]?.model ?? '?'} (${cpus().length} cores), node ${process.version}`);
  console.log(`input: ${LINES.toLocaleString('en-US')} lines, ${mb.toFixed(0)} MiB, format ${FORMAT}, best of 3`);
  for (const [name, s] of rows) {
    console.log(`  ${name.padEnd(44)} ${s.toFixed(2).padStart(7)} s  ${Math.round(LINES / s).toLocaleString('en-US').padStart(11)} lines/s  ${(s / check.s).toFixed(2)}× mailjail's time`);
  }
  console.log(`mailjail check's own rate (first to last line, without start-up and loading the rule pack): ${own.toLocaleString('en-US')} lines/s`);
  console.log(`auth-failure lines: matched ${summary.perClass['auth'] ?? 0}, ground truth ${expectAuth} ` +
    `(${(summary.perClass['auth'] ?? 0) === expectAuth ? 'equal' : 'DIFFERENT'}); all classes matched ${summary.matched}; would ban ${summary.banned.length}`);
  if ((summary.perClass['auth'] ?? 0) !== expectAuth) process.exitCode = 1;
} finally {
  rmSync(dir, { recursive: true, force: true });
}
