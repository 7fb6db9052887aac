// Benchmark: µs per line of the rules stage on long lines, per daemon's rule file, with and without
// V8's `--enable-experimental-regexp-engine-on-excessive-backtracks` (which the CLI and the test
// runner turn on). The parent runs itself twice as a child, once per setting, and prints a table.
//
// Lines, built from each rule's own match samples (so they reach the rule through its program and
// keywords) and padded to 1 KiB, 8 KiB and 64 KiB:
//  - benign: the sample with server-like text appended (a long TLS error, a long reason);
//  - hostile: the sample with its captured user name (or, without one, the text after the first
//    keyword) replaced by attacker-like filler of `<>(),=[]:; ` and partial field names.
// Usage: node dist/bench/regex-long-lines.js [--rules DIR] [--reps N] [--sizes 1024,8192,65536] [--per-rule N]
// (`--child` prints the rows as JSON for one setting: test/rules/regex-time.test.ts uses it, with V8's fallback trace.)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { BUNDLED_RULES_DIR, loadRulePack, sampleEvent } from '../src/rules/pack.js';
import type { LogEvent } from '../src/types.js';

const FLAG = '--enable-experimental-regexp-engine-on-excessive-backtracks';
const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
};

function fill(unit: string, n: number): string {
  return n <= 0 ? '' : unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
}

interface Row { file: string; kind: string; size: number; us: number; lines: number }

function child(dir: string, reps: number): Row[] {
  const engine = loadRulePack(dir);
  const rows: Row[] = [];
  for (const f of engine.files) {
    const base: LogEvent[] = [];
    const users: (string | undefined)[] = [];
    for (const r of f.rules) {
      for (const s of r.samples.match.slice(0, perRule)) {
        const ev = sampleEvent(s.line, s.at);
        if (!ev) continue;
        base.push(ev);
        users.push(s.user !== undefined && s.user !== '' && ev.message.includes(s.user) ? s.user : r.keywords[0]);
      }
    }
    for (const size of SIZES) {
      const benign = base.map((ev) => ({ ...ev, message: ev.message + fill(', TLS: SSL_read() failed: error:0A000126:SSL routines::unexpected eof while reading', size - ev.message.length) }));
      const hostile = base.map((ev, i) => {
        const u = users[i]!;
        const at = ev.message.indexOf(u);
        const pad = fill('a>, rip=(auth failed, 9 attempts in 2 secs): user=<[x]; b=c ', size - ev.message.length);
        return { ...ev, message: ev.message.slice(0, at + u.length) + pad + ev.message.slice(at + u.length) };
      });
      for (const [kind, evs] of [['benign', benign], ['hostile', hostile]] as const) {
        if (evs.length === 0) continue;
        const n = Math.max(1, Math.round(reps * 1024 / size));
        const t0 = process.hrtime.bigint();
        for (let k = 0; k < n; k++) for (const ev of evs) engine.match(ev);
        const us = Number(process.hrtime.bigint() - t0) / 1e3 / (n * evs.length);
        rows.push({ file: f.daemon, kind, size, us, lines: evs.length });
      }
    }
  }
  return rows;
}

const SIZES = arg('sizes', '1024,8192,65536').split(',').map(Number);
const dir = arg('rules', BUNDLED_RULES_DIR);
const perRule = Number(arg('per-rule', '1000'));
const reps = Number(arg('reps', '20'));
if (process.argv.includes('--child')) {
  process.stdout.write(JSON.stringify(child(dir, reps)));
} else {
  const self = fileURLToPath(import.meta.url);
  const run = (flags: string[]): Row[] => {
    const r = spawnSync(process.execPath, [...flags, self, '--child', '--rules', dir, '--reps', String(reps), '--sizes', SIZES.join(','), '--per-rule', String(perRule)], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (r.status !== 0) throw new Error(`child failed: ${r.stderr}`);
    return JSON.parse(r.stdout) as Row[];
  };
  const plain = run([]);
  const flagged = run([FLAG]);
  const key = (r: Row): string => `${r.file}/${r.kind}/${r.size}`;
  const withFlag = new Map(flagged.map((r) => [key(r), r.us]));
  console.log('| rules | line | 1 KiB | 8 KiB | 64 KiB |   (µs per line: without flag / with flag)');
  console.log('| --- | --- | --- | --- | --- |');
  const files = [...new Set(plain.map((r) => r.file))];
  const f1 = (x: number | undefined): string => (x === undefined ? '?' : x < 10 ? x.toFixed(1) : x.toFixed(0));
  let worst = { k: '', us: 0 };
  for (const file of files) {
    for (const kind of ['benign', 'hostile']) {
      const cells = SIZES.map((size) => {
        const p = plain.find((r) => key(r) === `${file}/${kind}/${size}`);
        const w = withFlag.get(`${file}/${kind}/${size}`);
        if (w !== undefined && w > worst.us) worst = { k: `${file}/${kind}/${size}`, us: w };
        return `${f1(p?.us)} / ${f1(w)}`;
      });
      console.log(`| ${file} | ${kind} | ${cells.join(' | ')} |`);
    }
  }
  console.log(`\nslowest with the flag: ${worst.k} ${f1(worst.us)} µs per line`);
}
