// journald source: follows the local journal (or a directory / files) and hands on entries with
// their structured fields, never re-parsed text. It keeps its place with the journal cursor:
//  - the consumer acknowledges what it has handed on (`ack: 'on-next'`: asking for the next batch,
//    or ending the iteration, acknowledges the previous one; `ack: 'explicit'`: call `commit()`);
//  - the cursor of the last acknowledged entry is written atomically to the state dir at most
//    every `commitIntervalMs` and at shutdown (`flush()`), and a restart resumes right after it;
//  - a saved cursor whose entry was rotated/vacuumed away is warned about (MJ_JOURNAL_CURSOR_GONE)
//    and reading goes on from the oldest entry after it.
// Two readers behind one interface: the sd-journal N-API binding (fast, preferred) and a
// `journalctl -o export` child (fallback when the binding is not built). See docs/ingest.md.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { promisify } from 'node:util';
import { MailjailError, type JournalFields, type RawRecord, type Source } from '../types.js';
import { CursorStore } from './cursor-store.js';
import { ExportParser } from './journal-export.js';
import { journalFilter, type JournalFilter } from './journal-filter.js';
import { loadNativeJournal, nativeLoadError, type NativeHandle, type NativeJournal } from './journal-native.js';
import { BatchQueue } from './queue.js';

const execFileP = promisify(execFile);

/** Fields handed on by default (plus __CURSOR and __REALTIME_TIMESTAMP, always). */
export const DEFAULT_JOURNAL_FIELDS: readonly string[] = [
  'MESSAGE', 'SYSLOG_IDENTIFIER', 'SYSLOG_PID', 'SYSLOG_TIMESTAMP', 'SYSLOG_FACILITY', 'PRIORITY',
  '_COMM', '_PID', '_HOSTNAME', '_SYSTEMD_UNIT', '_TRANSPORT',
];

export interface JournaldSourceConfig {
  /** Source name (origin.name) and cursor file name: <stateDir>/journald-<name>.cursor. Default "journal". */
  readonly name?: string;
  /** Directory for the cursor file (created if missing). */
  readonly stateDir: string;
  /** Read this journal directory instead of the local journal (containers, tests). */
  readonly directory?: string;
  /** Read these journal files instead (replay). */
  readonly files?: readonly string[];
  /** The rule pack's program list: exact SYSLOG_IDENTIFIERs and `*` globs. Empty: every entry. */
  readonly programs?: readonly string[];
  /** Also take entries of these systemd units (_SYSTEMD_UNIT, exact). */
  readonly units?: readonly string[];
  /** Where the first start (no saved cursor) begins. Default "now". */
  readonly startAt?: 'now' | 'head' | { readonly lookbackMs: number };
  /** Keep following new entries. Default true, false when `files` are given (replay ends at the end). */
  readonly follow?: boolean;
  /** Reader: "auto" (native if built, else journalctl), "native", "journalctl". Default "auto". */
  readonly backend?: 'auto' | 'native' | 'journalctl';
  /** How entries are acknowledged as handed on. Default "on-next". */
  readonly ack?: 'on-next' | 'explicit';
  /** Cursor write interval. Default 1000 ms. */
  readonly commitIntervalMs?: number;
  /** Largest batch. Default 1024. */
  readonly maxBatch?: number;
  /** Extra fields to hand on beyond DEFAULT_JOURNAL_FIELDS. */
  readonly fields?: readonly string[];
  /** journalctl binary for the fallback. Default "journalctl" (PATH). */
  readonly journalctl?: string;
  /** Warnings (cursor gone, fallback chosen); the daemon logs them. */
  readonly onWarn?: (code: string, message: string) => void;
}

export interface JournaldStats {
  readonly name: string;
  readonly backend: 'native' | 'journalctl';
  readonly entries: number;
  readonly batches: number;
  readonly filtered: number;
  readonly cursorWrites: number;
  readonly cursorGone: number;
  /** Native reader: reopened after the journal's file set changed. */
  readonly reopens: number;
  readonly committed: string | undefined;
}

/** Cursor of the last journal entry of a batch (what to `commit` after handing the batch on). */
export function lastCursor(batch: readonly RawRecord[]): string | undefined {
  for (let i = batch.length - 1; i >= 0; i--) {
    const r = batch[i]!;
    if (r.kind === 'journal' && r.origin.cursor) return r.origin.cursor;
  }
  return undefined;
}

type Start = { cursor: string } | { at: 'head' | 'tail' } | { sinceUsec: number };

export class JournaldSource implements Source {
  readonly name: string;
  readonly backend: 'native' | 'journalctl';
  private readonly cfg: JournaldSourceConfig;
  private readonly store: CursorStore;
  private readonly filter: JournalFilter;
  private readonly fields: readonly string[];
  private readonly native: NativeJournal | undefined;
  private committed: string | undefined;
  private written: string | undefined;
  private readonly c = { entries: 0, batches: 0, filtered: 0, cursorWrites: 0, cursorGone: 0, reopens: 0 };

  constructor(cfg: JournaldSourceConfig) {
    this.cfg = cfg;
    this.name = cfg.name ?? 'journal';
    if (!/^[A-Za-z0-9_.-]+$/.test(this.name)) {
      throw new MailjailError('MJ_SRC_CONFIG', `journald source name "${this.name}" must be [A-Za-z0-9_.-]+`);
    }
    this.store = new CursorStore(cfg.stateDir, `journald-${this.name}.cursor`);
    this.filter = journalFilter(cfg.programs, cfg.units);
    this.fields = [...new Set([...DEFAULT_JOURNAL_FIELDS, ...(cfg.fields ?? [])])];
    const want = cfg.backend ?? 'auto';
    this.native = want === 'journalctl' ? undefined : loadNativeJournal();
    if (want === 'native' && !this.native) {
      throw new MailjailError('MJ_JOURNAL_NATIVE', `sd-journal binding not available: ${nativeLoadError() ?? 'not built'}`);
    }
    this.backend = this.native ? 'native' : 'journalctl';
    this.committed = this.store.load();
    this.written = this.committed;
  }

  /** Marks every entry up to and including `cursor` as handed on (persisted at the next flush). */
  commit(cursor: string): void {
    this.committed = cursor;
  }

  /** Writes the committed cursor now if it changed. */
  flush(): void {
    const c = this.committed;
    if (c === undefined || c === this.written) return;
    this.store.save(c);
    this.written = c;
    this.c.cursorWrites++;
  }

  stats(): JournaldStats {
    return { name: this.name, backend: this.backend, ...this.c, committed: this.committed };
  }

  private warn(code: string, msg: string): void {
    this.cfg.onWarn?.(code, `${this.name}: ${msg}`);
  }

  private get follow(): boolean {
    return this.cfg.follow ?? !(this.cfg.files && this.cfg.files.length > 0);
  }

  private start(): Start {
    if (this.committed) return { cursor: this.committed };
    const s = this.cfg.startAt ?? 'now';
    if (s === 'head') return { at: 'head' };
    if (s === 'now') return { at: 'tail' };
    return { sinceUsec: (Date.now() - s.lookbackMs) * 1000 };
  }

  private toRecords(entries: readonly JournalFields[]): RawRecord[] {
    const out: RawRecord[] = new Array(entries.length);
    for (let i = 0; i < entries.length; i++) {
      const fields = entries[i]!;
      out[i] = { kind: 'journal', fields, origin: { kind: 'journald', name: this.name, cursor: fields.__CURSOR ?? '' } };
    }
    return out;
  }

  async *records(signal: AbortSignal): AsyncIterable<readonly RawRecord[]> {
    const timer = setInterval(() => {
      try {
        this.flush();
      } catch (e) {
        this.warn('MJ_JOURNAL_CURSOR', (e as Error).message);
      }
    }, this.cfg.commitIntervalMs ?? 1000);
    timer.unref();
    const onNext = (this.cfg.ack ?? 'on-next') === 'on-next';
    let pending: string | undefined;
    try {
      const inner = this.native ? this.readNative(this.native, signal) : this.readJournalctl(signal);
      for await (const batch of inner) {
        if (batch.length === 0) continue;
        this.c.entries += batch.length;
        this.c.batches++;
        pending = lastCursor(batch);
        yield batch;
        // The consumer asked for more: it has handed the batch on.
        if (onNext && pending !== undefined) this.commit(pending);
        pending = undefined;
      }
    } finally {
      // Ending the iteration (break/return, abort, end of files) acknowledges the last batch in
      // on-next mode: the consumer drained it before letting go.
      if (onNext && pending !== undefined) this.commit(pending);
      clearInterval(timer);
      this.flush();
    }
  }

  // ---- native sd-journal reader ----

  private async *readNative(nj: NativeJournal, signal: AbortSignal): AsyncIterable<readonly RawRecord[]> {
    const f = this.filter;
    // sd-journal (systemd 252) with matches misses entries appended after the reader reached the
    // end of the journal (the same bug behind journalctl's "filter drops a burst"). So while
    // following, the filter runs in C on each entry's SYSLOG_IDENTIFIER/_SYSTEMD_UNIT instead
    // (a field lookup, no object made); journal matches are used only for a finite read.
    const inC = this.follow || f.matches.length === 0;
    const filtering = f.patterns.length > 0 || (this.cfg.units?.length ?? 0) > 0;
    const open = (): NativeHandle => nj.open({
      ...(this.cfg.directory !== undefined ? { directory: this.cfg.directory } : {}),
      ...(this.cfg.files ? { files: this.cfg.files } : {}),
      matches: inC ? [] : f.matches,
      fields: this.fields,
      globs: inC && filtering ? f.patterns : [],
      units: inC && filtering ? [...(this.cfg.units ?? [])] : [],
    });
    let h = open();
    let waiting: Promise<number> | undefined;
    try {
      const st = this.start();
      if ('cursor' in st) {
        if (!nj.seekCursor(h, st.cursor)) this.cursorGone(st.cursor);
      } else nj.seek(h, 'at' in st ? st.at : st.sinceUsec);
      // Where we are (last entry read or skipped), to reopen at after the journal's file set changed.
      let pos = nj.cursor(h);
      let waitsSinceOpen = 0;
      const max = this.cfg.maxBatch ?? 1024;
      while (!signal.aborted) {
        const got = nj.read(h, max);
        pos = nj.cursor(h) ?? pos;
        if (got.length > 0) {
          yield this.toRecords(got);
          continue;
        }
        if (got.more) {
          await new Promise((r) => setImmediate(r));
          continue;
        }
        if (!this.follow) return;
        waiting = nj.wait(h, 250);
        const ev = await waiting;
        waiting = undefined;
        // SD_JOURNAL_INVALIDATE (2): files were added or removed (rotation, vacuum). sd-journal
        // should pick them up itself, but a file caught half-initialised can be missed; reopening
        // and seeking back to where we were rescans the directory. Rare, cheap. (The first wait
        // after an open always answers INVALIDATE: ignore that one.)
        if (ev === 2 && waitsSinceOpen++ > 0 && pos !== undefined) {
          nj.close(h);
          h = open();
          this.c.reopens++;
          waitsSinceOpen = 0;
          nj.seekCursor(h, pos);
        }
      }
    } finally {
      if (waiting) await waiting.catch(() => 0);
      nj.close(h);
    }
  }

  private cursorGone(cursor: string): void {
    this.c.cursorGone++;
    this.warn('MJ_JOURNAL_CURSOR_GONE', `saved cursor no longer in the journal (rotated or vacuumed): continuing from the oldest entry after it [${cursor}]`);
  }

  // ---- journalctl -o export child (fallback) ----

  private sourceArgs(): string[] {
    const a: string[] = [];
    if (this.cfg.directory !== undefined) a.push(`--directory=${this.cfg.directory}`);
    for (const f of this.cfg.files ?? []) a.push(`--file=${f}`);
    return a;
  }

  /** Cursor of the newest entry (any entry, unfiltered), or undefined for an empty journal. */
  private async tailCursor(): Promise<string | undefined> {
    const { stdout } = await execFileP(this.cfg.journalctl ?? 'journalctl',
      [...this.sourceArgs(), '--no-pager', '-q', '-n', '1', '-o', 'export', '--output-fields=__CURSOR'],
      { encoding: 'buffer', maxBuffer: 1 << 20 });
    let cur: string | undefined;
    const p = new ExportParser(['__CURSOR'], (f) => {
      cur = f.__CURSOR;
    });
    p.push(stdout);
    p.end();
    return cur;
  }

  private async *readJournalctl(signal: AbortSignal): AsyncIterable<readonly RawRecord[]> {
    // Pitfalls of journalctl (systemd 252) handled here: a follow with a field filter is always
    // started from a cursor (from "now" too: the newest entry's cursor), since starting it
    // unanchored can drop most of a burst; `--lines=all` so --follow with a cursor does not stop
    // after 10 entries; export format, so values are never the JSON string/array/bytes/null mix;
    // the cursor is saved by us, not with --cursor-file (not updated when the child is signalled).
    let st = this.start();
    let expectFirst: string | undefined;
    let quietSkip = false;
    if ('at' in st && st.at === 'tail') {
      const tail = await this.tailCursor();
      st = tail ? { cursor: tail } : { at: 'head' };
      quietSkip = true; // the newest entry may not match the filter: no "gone" warning for it
    }
    const args = [...this.sourceArgs(), '--no-pager', '-q', '-o', 'export', '--lines=all',
      `--output-fields=${this.fields.join(',')}`];
    if (this.follow) args.push('--follow');
    if ('cursor' in st) {
      args.push(`--cursor=${st.cursor}`);
      expectFirst = st.cursor;
    } else if ('sinceUsec' in st) {
      args.push(`--since=@${Math.floor(st.sinceUsec / 1e6)}`);
    }
    args.push(...this.filter.matches);

    const q = new BatchQueue({ highWater: 8 * (this.cfg.maxBatch ?? 1024), maxBatch: this.cfg.maxBatch ?? 1024 });
    const child: ChildProcess = spawn(this.cfg.journalctl ?? 'journalctl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
    const out = child.stdout!;
    q.onDrain(() => out.resume());
    let stderr = '';
    child.stderr!.on('data', (d: Buffer) => {
      if (stderr.length < 4096) stderr += d.toString('utf8');
    });
    let first = true;
    const accept = this.filter.accept;
    const sinceUsec = 'sinceUsec' in st ? st.sinceUsec : 0;
    const parser = new ExportParser(this.fields.concat('__CURSOR', '__REALTIME_TIMESTAMP'), (f) => {
      if (first) {
        first = false;
        if (expectFirst !== undefined) {
          if (f.__CURSOR === expectFirst) return; // resume right after the saved entry
          if (!quietSkip) this.cursorGone(expectFirst);
        }
      }
      if (sinceUsec > 0 && Number(f.__REALTIME_TIMESTAMP ?? 0) < sinceUsec) return;
      if (!accept(f)) {
        this.c.filtered++;
        return;
      }
      const fields = f as Record<string, string>;
      const rec: RawRecord = { kind: 'journal', fields, origin: { kind: 'journald', name: this.name, cursor: fields.__CURSOR ?? '' } };
      if (!q.push(rec)) out.pause();
    });
    out.on('data', (d: Buffer) => {
      try {
        parser.push(d);
      } catch (e) {
        q.close(new MailjailError('MJ_JOURNAL_READ', (e as Error).message));
        child.kill();
      }
    });
    child.on('error', (e) => q.close(new MailjailError('MJ_JOURNAL_READ', `cannot run journalctl: ${e.message}`, { cause: e })));
    child.on('close', (code, sig) => {
      parser.end();
      if (code === 0 || signal.aborted || sig === 'SIGTERM') q.close();
      else q.close(new MailjailError('MJ_JOURNAL_READ', `journalctl exited ${code ?? sig}: ${stderr.trim()}`));
    });
    const onAbort = (): void => {
      child.kill('SIGTERM');
    };
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) onAbort();
    try {
      for (;;) {
        const b = await q.next();
        if (!b) return;
        if (signal.aborted) return; // queued after abort: not handed on, re-read next start
        yield b;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
    }
  }
}
