// journald ingest benchmark: entries/s read end to end through JournaldSource (native sd-journal
// binding and the journalctl -o export fallback) versus `journalctl -o json` / `-o export` alone
// writing to /dev/null, on the same journal file built by systemd-journal-remote.
// Usage: node dist/bench/ingest-journald.js [entries]
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JournaldSource } from '../src/sources/journald.js';
import { loadNativeJournal } from '../src/sources/journal-native.js';
import { GEN_MAILLOG, genMaillogMissing } from '../test/helpers/paths.js';

// The generator lives beside the repository (../shared/bench/), found from here, never by an absolute path.
const JREMOTE = '/lib/systemd/systemd-journal-remote';
const missing = genMaillogMissing() ?? (existsSync(JREMOTE) ? undefined : `${JREMOTE} not found (package systemd-journal-remote)`);
if (missing) {
  console.error(`SKIPPED journald ingest benchmark: ${missing}`);
  process.exit(0);
}

const N = Number(process.argv[2] ?? 500_000);
const dir = mkdtempSync(join(tmpdir(), 'mj-bench-journal-'));
const exp = join(dir, 'in.export');
const jdir = join(dir, 'journal');
mkdirSync(jdir);
// journal-remote rotates its output (about 100k entries a file): the directory holds them all.
const file = join(jdir, 'mail.journal');
execFileSync(process.execPath, [GEN_MAILLOG, '--format', 'journal-export', '--lines', String(N)], { stdio: ['ignore', openSync(exp, 'w'), 'inherit'] });
execFileSync(JREMOTE, [`--output=${file}`, exp], { stdio: 'ignore' });
writeFileSync(exp, '');

const timeCmd = (args: string[]): number => {
  const t0 = process.hrtime.bigint();
  const r = spawnSync('journalctl', [`--directory=${jdir}`, '--no-pager', ...args], { stdio: ['ignore', openSync('/dev/null', 'w'), 'inherit'] });
  if (r.status !== 0) throw new Error(`journalctl ${args.join(' ')} failed`);
  return Number(process.hrtime.bigint() - t0) / 1e9;
};

async function timeSource(backend: 'native' | 'journalctl', programs?: string[]): Promise<{ secs: number; n: number }> {
  const stateDir = mkdtempSync(join(dir, 'st-'));
  const src = new JournaldSource({ stateDir, directory: jdir, follow: false, startAt: 'head', backend, ...(programs ? { programs } : {}) });
  const t0 = process.hrtime.bigint();
  let n = 0;
  let chars = 0;
  for await (const b of src.records(new AbortController().signal)) {
    n += b.length;
    for (const r of b) if (r.kind === 'journal') chars += r.fields.MESSAGE?.length ?? 0;
  }
  if (chars === 0) throw new Error('no messages read');
  return { secs: Number(process.hrtime.bigint() - t0) / 1e9, n };
}

const rate = (n: number, s: number): string => `${Math.round(n / s).toLocaleString('en')}/s`;
const best = async <T extends { secs: number }>(f: () => Promise<T>): Promise<T> => {
  let b: T | undefined;
  for (let i = 0; i < 3; i++) {
    const r = await f();
    if (!b || r.secs < b.secs) b = r;
  }
  return b!;
};

console.log(`journal: ${N.toLocaleString('en')} entries (gen-maillog journal-export → systemd-journal-remote); best of 3`);
const jsonSecs = (await best(async () => ({ secs: timeCmd(['-o', 'json']) }))).secs;
const exportSecs = (await best(async () => ({ secs: timeCmd(['-o', 'export']) }))).secs;
const catSecs = (await best(async () => ({ secs: timeCmd(['-o', 'cat']) }))).secs;
console.log(`journalctl -o json  > /dev/null (alone)  ${rate(N, jsonSecs)}`);
console.log(`journalctl -o export > /dev/null (alone) ${rate(N, exportSecs)}`);
console.log(`journalctl -o cat   > /dev/null (alone)  ${rate(N, catSecs)}`);
const rows: [string, 'native' | 'journalctl', string[] | undefined][] = [
  ['JournaldSource native, all entries', 'native', undefined],
  ['JournaldSource native, programs filter', 'native', ['postfix/smtpd', 'postfix/submission/smtpd', 'dovecot']],
  ['JournaldSource native, glob filter', 'native', ['postfix*/smtpd', 'dovecot']],
  ['JournaldSource journalctl, all entries', 'journalctl', undefined],
  ['JournaldSource journalctl, programs filter', 'journalctl', ['postfix/smtpd', 'postfix/submission/smtpd', 'dovecot']],
];
for (const [label, backend, programs] of rows) {
  if (backend === 'native' && !loadNativeJournal()) {
    console.log(`${label}: binding not built, skipped`);
    continue;
  }
  const r = await best(() => timeSource(backend, programs));
  console.log(`${label.padEnd(44)} ${String(r.n).padStart(8)} entries  ${rate(r.n, r.secs).padStart(10)}  ` +
    `${((jsonSecs / r.secs) * 100).toFixed(0).padStart(4)} % of journalctl -o json's speed (same journal, wall time)`);
}
rmSync(dir, { recursive: true, force: true });
