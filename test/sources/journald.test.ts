// The journald source against a REAL systemd-journald (started here when none runs; stopped after)
// and journal files built by systemd-journal-remote. Every test runs for both readers: the
// sd-journal binding (when built) and the `journalctl -o export` fallback.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseRecord } from '../../src/parse/index.js';
import { JournaldSource, lastCursor, type JournaldSourceConfig } from '../../src/sources/journald.js';
import { loadNativeJournal } from '../../src/sources/journal-native.js';
import type { RawRecord } from '../../src/types.js';
import { GEN_MAILLOG as GEN, genMaillogMissing } from '../helpers/paths.js';
import { waitFor } from '../helpers/wait.js';
import { collect, ensureJournald, which, type JournaldHandle } from './helpers.js';

const JREMOTE = which('systemd-journal-remote');
const CAT = which('systemd-cat');
/** Why the journal-file tests cannot run: the real missing piece, by name. */
const filesSkip = (): string | undefined =>
  (JREMOTE ? undefined : 'systemd-journal-remote not installed (package systemd-journal-remote)') ?? genMaillogMissing();
const backends = (loadNativeJournal() ? ['native', 'journalctl'] : ['journalctl']) as ('native' | 'journalctl')[];

let jd: JournaldHandle | undefined;
let liveReason: string | undefined;
const tmp = mkdtempSync(join(tmpdir(), 'mj-journald-'));

before(async () => {
  jd = await ensureJournald();
  liveReason = jd.reason;
});

after(() => {
  jd?.stop();
  rmSync(tmp, { recursive: true, force: true });
});

const tag = (): string => `mjt${process.pid}x${Math.random().toString(36).slice(2, 8)}`;

/** Writes lines as journal entries of `ident`, each line one entry (stdout stream transport). */
function writeEntries(ident: string, lines: readonly string[]): void {
  execFileSync(CAT!, ['-t', ident], { input: lines.map((l) => `${l}\n`).join('') });
}

const msgs = (rs: readonly RawRecord[]): string[] => rs.map((r) => (r.kind === 'journal' ? r.fields.MESSAGE ?? '' : '?'));

/** Waits until journald has stored `n` entries of `ident` (systemd-cat hands them over asynchronously). */
async function journaled(ident: string, n: number): Promise<void> {
  const count = (): number => {
    const out = execFileSync('journalctl', ['-q', '-t', ident, '-o', 'cat', '--no-pager'], { encoding: 'utf8' });
    return out === '' ? 0 : out.trimEnd().split('\n').length;
  };
  await waitFor(() => count() >= n, { timeoutMs: 15_000, intervalMs: 50, what: `${n} journal entries of ${ident}`, observe: count });
}

/**
 * Waits until a following source reads new entries: writes a "sync" entry of `ident` until one
 * arrives (seen through `seen`). A source that follows from "now" must be positioned before the
 * entries under test are written; this proves it is, instead of guessing a delay.
 */
async function synced(ident: string, seen: () => readonly RawRecord[]): Promise<void> {
  let n = 0;
  await waitFor(() => {
    if (msgs(seen()).some((m) => m.startsWith('sync '))) return true;
    writeEntries(ident, [`sync ${n++}`]);
    return false;
  }, { timeoutMs: 15_000, intervalMs: 250, what: `the source to read a sync entry of ${ident}`, observe: () => `${n} sync entries written, ${seen().length} records read` });
}

const notSync = (rs: readonly RawRecord[]): RawRecord[] => rs.filter((r) => !(r.kind === 'journal' && r.fields.MESSAGE?.startsWith('sync ')));

function src(backend: 'native' | 'journalctl', cfg: Partial<JournaldSourceConfig> & { stateDir?: string }): JournaldSource {
  return new JournaldSource({ stateDir: mkdtempSync(join(tmp, 'st-')), backend, commitIntervalMs: 100, ...cfg });
}

for (const backend of backends) {
  test(`[${backend}] live journald: follows from "now", structured fields, source filter`, async (t) => {
    if (liveReason) return t.skip(`SKIP: ${liveReason}`);
    const id = tag();
    writeEntries(id, ['before start: must not be read']);
    await journaled(id, 1);
    const s = src(backend, { programs: [id] });
    const N = 300;
    const seen: RawRecord[] = [];
    const got = collect(s, (a) => notSync(a).length >= N, 30_000, (b) => seen.push(...b));
    await synced(id, () => seen);
    writeEntries(`${id}-other`, ['not ours']);
    writeEntries(id, Array.from({ length: N }, (_, i) => `m${i} üñí`));
    const rs = notSync(await got);
    assert.ok(!msgs(seen).includes('before start: must not be read'), 'an entry from before the start was read');
    assert.deepEqual(msgs(rs), Array.from({ length: N }, (_, i) => `m${i} üñí`));
    const r = rs[0]!;
    assert.ok(r.kind === 'journal');
    assert.equal(r.fields.SYSLOG_IDENTIFIER, id);
    assert.match(r.fields._PID ?? '', /^\d+$/);
    assert.match(r.fields.__REALTIME_TIMESTAMP ?? '', /^\d{16}$/);
    assert.match(r.fields._HOSTNAME ?? '', /./);
    assert.equal(r.origin.kind, 'journald');
    assert.equal(r.origin.cursor, r.fields.__CURSOR);
    assert.match(r.origin.cursor ?? '', /^s=[0-9a-f]+;i=/);
    const res = parseRecord(r, { format: 'auto', now: Date.now() });
    assert.ok('event' in res);
    assert.equal(res.event.program, id);
    assert.equal(res.event.message, 'm0 üñí');
  });

  test(`[${backend}] restart mid-stream: nothing lost, nothing repeated`, async (t) => {
    if (liveReason) return t.skip(`SKIP: ${liveReason}`);
    const id = tag();
    const stateDir = mkdtempSync(join(tmp, 'restart-'));
    writeEntries(`${id}-anchor`, ['anchor']);
    const cfg = { programs: [id], stateDir, maxBatch: 40, startAt: { lookbackMs: 60_000 } } as const;
    writeEntries(id, Array.from({ length: 200 }, (_, i) => `r${i}`));
    await journaled(id, 200);
    const first = await collect(src(backend, cfg), (a) => a.length >= 120, 30_000);
    assert.ok(first.length >= 120 && first.length < 200, `stopped mid-stream at ${first.length}`);
    const saved = readFileSync(join(stateDir, 'journald-journal.cursor'), 'utf8').trim();
    assert.equal(saved, first[first.length - 1]!.origin.cursor);
    writeEntries(id, Array.from({ length: 100 }, (_, i) => `r${200 + i}`));
    await journaled(id, 300);
    const second = await collect(src(backend, cfg), (a) => first.length + a.length >= 300, 30_000);
    const all = [...msgs(first), ...msgs(second)];
    assert.deepEqual(all, Array.from({ length: 300 }, (_, i) => `r${i}`));
  });

  test(`[${backend}] globs in the program list are filtered in-process; units at source`, async (t) => {
    if (liveReason) return t.skip(`SKIP: ${liveReason}`);
    const id = tag();
    writeEntries(`${id}-out/smtpd`, ['a']);
    writeEntries(`${id}/smtpd`, ['b']);
    writeEntries(`${id}-x/y/smtpd`, ['c: * must not cross /']);
    writeEntries(`${id}-out/qmgr`, ['d']);
    writeEntries(`${id}-exact`, ['e']);
    for (const ident of [`${id}-out/smtpd`, `${id}/smtpd`, `${id}-x/y/smtpd`, `${id}-out/qmgr`, `${id}-exact`]) await journaled(ident, 1);
    const s = src(backend, { programs: [`${id}*/smtpd`, `${id}-exact`], startAt: { lookbackMs: 60_000 } });
    const rs = await collect(s, (a) => a.length >= 3, 30_000);
    assert.deepEqual(msgs(rs), ['a', 'b', 'e']);
  });
  test(`[${backend}] live journald: rotation and vacuum while following lose nothing`, async (t) => {
    if (liveReason) return t.skip(`SKIP: ${liveReason}`);
    // Rotating and vacuuming touch the machine's journal: only on the journald this test started.
    if (!jd?.ours) return t.skip('SKIP: journald was already running (not ours to rotate/vacuum)');
    const id = tag();
    const s = src(backend, { programs: [id] });
    const seen: RawRecord[] = [];
    const got = collect(s, (a) => notSync(a).length >= 150, 30_000, (b) => seen.push(...b));
    await synced(id, () => seen);
    writeEntries(id, Array.from({ length: 50 }, (_, i) => `v${i}`));
    execFileSync('journalctl', ['--rotate'], { stdio: 'ignore' });
    writeEntries(id, Array.from({ length: 50 }, (_, i) => `v${50 + i}`));
    // Vacuuming deletes archived files: the source must have read v0..v99 first, or they are
    // really gone (that would be the vacuum's doing, not a loss by the source).
    await waitFor(() => notSync(seen).length >= 100, { timeoutMs: 15_000, what: 'the source to read v0..v99 before the vacuum', observe: () => notSync(seen).length });
    execFileSync('journalctl', ['--rotate'], { stdio: 'ignore' });
    execFileSync('journalctl', ['--vacuum-files=1'], { stdio: 'ignore' });
    writeEntries(id, Array.from({ length: 50 }, (_, i) => `v${100 + i}`));
    const rs = notSync(await got);
    assert.deepEqual(msgs(rs), Array.from({ length: 150 }, (_, i) => `v${i}`));
  });
}

function journalFile(name: string, lines: number, seed: number, skip = 0): string {
  const exp = execFileSync(process.execPath, [GEN, '--format', 'journal-export', '--lines', String(lines), '--seed', String(seed)], { maxBuffer: 1 << 28 });
  // Keep entries from `skip` on (export entries are separated by an empty line).
  const text = exp.toString('utf8').split('\n\n').slice(skip).join('\n\n');
  const expFile = join(tmp, `${name}.export`);
  writeFileSync(expFile, text);
  const out = join(tmp, `${name}.journal`);
  execFileSync(JREMOTE!, [`--output=${out}`, expFile], { stdio: 'pipe' });
  return out;
}

for (const backend of backends) {
  test(`[${backend}] journal files from systemd-journal-remote: every entry, in order; vanished cursor warns and goes on`, async (t) => {
    const why = filesSkip();
    if (why) return t.skip(`SKIP: ${why}`);
    const full = journalFile(`full-${backend}`, 2000, 7);
    const rs = await collect(src(backend, { files: [full], startAt: 'head' }), () => false, 20000);
    const expected = execFileSync('journalctl', [`--file=${full}`, '-o', 'cat', '--no-pager']).toString('utf8').trimEnd().split('\n');
    assert.equal(rs.length, 2000);
    assert.deepEqual(msgs(rs), expected);

    // A cursor from `full` used against a journal that only holds entries from #1000 on (another
    // file: its entries are not there) → warn, continue from the oldest entry after it.
    const tailOnly = journalFile(`tail-${backend}`, 2000, 7, 1000);
    const stateDir = mkdtempSync(join(tmp, 'gone-'));
    writeFileSync(join(stateDir, 'journald-journal.cursor'), `${rs[499]!.origin.cursor}\n`);
    const warns: string[] = [];
    const s = src(backend, { files: [tailOnly], stateDir, onWarn: (code) => warns.push(code) });
    const rest = await collect(s, () => false, 20000);
    assert.deepEqual(warns, ['MJ_JOURNAL_CURSOR_GONE']);
    assert.equal(rest.length, 1000);
    assert.deepEqual(msgs(rest), expected.slice(1000));
    assert.equal(s.stats().cursorGone, 1);
  });
}

for (const backend of backends) {
  test(`[${backend}] explicit ack: nothing acknowledged means the same entries again; commit() + flush() resumes right after`, async (t) => {
    const why = filesSkip();
    if (why) return t.skip(`SKIP: ${why}`);
    const file = journalFile(`ack-${backend}`, 300, 11);
    const stateDir = mkdtempSync(join(tmp, 'ack-'));
    const cfg = { files: [file], startAt: 'head', stateDir, ack: 'explicit', maxBatch: 100, backend } as const;
    const a = new JournaldSource(cfg);
    const first = await collect(a, () => false, 10000);
    assert.equal(first.length, 300);
    assert.equal(existsSync(join(stateDir, 'journald-journal.cursor')), false, 'nothing committed, nothing written');
    const b = new JournaldSource(cfg);
    let n = 0;
    let committedAt = 0;
    for await (const batch of b.records(new AbortController().signal)) {
      n += batch.length;
      if (committedAt === 0 && n >= 200) {
        b.commit(lastCursor(batch)!);
        committedAt = n;
      }
    }
    b.flush();
    const c = new JournaldSource(cfg);
    const rest = await collect(c, () => false, 10000);
    assert.deepEqual(msgs(rest), msgs(first).slice(committedAt));
  });
}
