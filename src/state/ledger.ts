// The ban ledger: an append-only JSON-lines file in the state directory. Every record() is
// written and fdatasync'ed before it returns, so a decision handed to the firewall is already on
// disk when `kill -9` comes. A torn last line (killed mid-write) is cut off on open. Compaction
// rewrites the file with only what a restart needs (active bans, history inside the window, the
// counted-through position) via write-temp + fsync + rename + fsync(dir).
//
// A full disk (docs/daemon.md, "When the disk is full"): an append that cannot be written whole
// and synced is cut back to where it started, so no torn line stays behind for the next append to
// be glued onto, and throws; nothing of it counts as recorded. A compaction that cannot be written
// keeps the old file and the appending descriptor: it is an optimisation, retried later.
import { closeSync, existsSync, fdatasyncSync, fstatSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { isIpv6, parseCidr, splitCidr } from '../parse/ip.js';
import { MailjailError } from '../types.js';
import type { BanRecord, LedgerEntry, LedgerSink, LedgerState, Through } from './records.js';
import { replaceFileDurably, writeAllSync } from '../lib/durable-file.js';

export const LEDGER_FILE = 'bans.jsonl';
/** Holds the pid of the process that has the ledger open: two writers would interleave bans. */
export const LOCK_FILE = 'bans.lock';

export interface LedgerOptions {
  /** Keep past bans this long for escalation/recidive history (ms). Default 30 days. */
  readonly historyMs?: number;
  /** Check for compaction every this many appended entries (at least); compact when dead entries outnumber live ones. Default 10 000. */
  readonly compactAfter?: number;
  /** fdatasync after each record (default true; false only for benchmarks of the format itself). */
  readonly sync?: boolean;
}

export interface LedgerOpenResult {
  readonly ledger: Ledger;
  readonly state: LedgerState;
  /** Lines that could not be read (a torn last line is cut off and counted here too). */
  readonly badLines: number;
}

export class Ledger implements LedgerSink {
  readonly path: string;
  private fd: number;
  private readonly dir: string;
  private historyMs: number;
  private readonly compactAfter: number;
  private readonly sync: boolean;
  private bans: BanRecord[] = [];
  private through: Through = {};
  private appended = 0;
  private latest = 0;
  private nextCheck: number;
  /** Bytes of the file that hold recorded entries: where a failed append is cut back to. */
  private size = 0;
  /** A failed append could not be cut back: the next one cuts it first (or fails too). */
  private torn = false;
  compactions = 0;
  /** Appends that could not be written and synced (full disk, I/O error): nothing of them was recorded. */
  writeFailures = 0;
  /** Compactions that could not be written; the old file was kept, and it is tried again later. */
  compactionFailures = 0;
  lastCompactionError: string | undefined;

  private constructor(dir: string, o: LedgerOptions) {
    this.dir = dir;
    this.path = join(dir, LEDGER_FILE);
    this.historyMs = o.historyMs ?? 30 * 86400_000;
    this.compactAfter = o.compactAfter ?? 10_000;
    this.sync = o.sync ?? true;
    this.fd = -1;
    this.nextCheck = this.compactAfter;
  }

  /** Opens (creating) the ledger in `dir` and reads back its state. */
  static open(dir: string, o: LedgerOptions = {}): LedgerOpenResult {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    takeLock(dir);
    const l = new Ledger(dir, o);
    let badLines = 0;
    if (existsSync(l.path)) {
      const buf = readFileSync(l.path);
      let good = 0; // byte length of the well-formed prefix
      let start = 0;
      while (start < buf.length) {
        const nl = buf.indexOf(0x0a, start);
        if (nl < 0) { badLines++; break; } // torn tail: no newline, written by a killed process
        const line = buf.subarray(start, nl).toString('utf8');
        start = nl + 1;
        let e: LedgerEntry | undefined;
        try { e = parseEntry(line); } catch { e = undefined; }
        if (e) { l.apply(e); l.appended++; } else if (line.trim() !== '') badLines++;
        good = start;
      }
      l.fd = openSync(l.path, 'r+');
      if (good < buf.length) {
        ftruncateSync(l.fd, good);
        fsyncSync(l.fd);
      }
      closeSync(l.fd);
    }
    const created = !existsSync(l.path);
    l.fd = openSync(l.path, 'a', 0o600);
    l.size = fstatSync(l.fd).size;
    if (created) l.syncDir(); // the new file's directory entry must survive a power cut too
    if (l.appended > l.compactAfter) l.maybeCompact();
    l.nextCheck = l.appended + Math.max(l.compactAfter, l.bans.length);
    return { ledger: l, state: l.state(), badLines };
  }

  /** Appends entries and makes them durable before returning. */
  record(entries: readonly LedgerEntry[]): void {
    if (entries.length === 0) return;
    if (this.fd < 0) throw new MailjailError('MJ_STATE_LEDGER', 'ledger is closed');
    let text = '';
    for (const e of entries) text += JSON.stringify(e) + '\n';
    const buf = Buffer.from(text, 'utf8');
    const start = this.size;
    try {
      if (this.torn) {
        ftruncateSync(this.fd, start);
        this.torn = false;
      }
      writeAllSync(this.fd, buf);
      if (this.sync) fdatasyncSync(this.fd);
    } catch (err) {
      this.writeFailures++;
      // Cut back what did reach the file: a torn line would swallow the next append, and a whole
      // but unsynced one would bring back at restart a ban the caller was told had failed.
      try {
        ftruncateSync(this.fd, start);
      } catch {
        this.torn = true;
      }
      throw new MailjailError('MJ_STATE_LEDGER', `cannot write ${this.path} (${entries.length} entries not recorded): ${(err as Error).message}`, { cause: err });
    }
    this.size = start + buf.length;
    for (const e of entries) this.apply(e);
    this.appended += entries.length;
    if (this.appended >= this.nextCheck) {
      this.maybeCompact();
      this.nextCheck = this.appended + Math.max(this.compactAfter, this.bans.length);
    }
  }

  /** Prunes, and compacts when dead entries outnumber live ones; a failed compaction is only counted. */
  private maybeCompact(): void {
    this.prune(this.latest);
    if (this.appended <= 2 * this.bans.length + 1) return;
    try {
      this.compact(this.latest);
    } catch {
      // Counted in compactionFailures (the daemon logs and exports it); appends go on to the old file.
    }
  }

  /** Forgets bans that are over and older than the history window. */
  private prune(now: number): void {
    this.bans = this.bans.filter((b) => b.until > now || b.since >= now - this.historyMs);
  }

  /** A new history window (ms) after a config reload; what compaction keeps from now on. */
  keepHistory(ms: number): void {
    this.historyMs = ms;
  }

  /** Writes a checkpoint of the counted-through position (orderly shutdown). */
  mark(through: Through): void {
    this.record([{ t: 'mark', through }]);
  }

  /** What a restart needs, as the decider's `restore` takes it. */
  state(): LedgerState {
    return { bans: this.bans.map((b) => ({ ...b })), through: this.through };
  }

  /**
   * Rewrites the file with live state only. `now` decides what history is still inside the window.
   * Throws MJ_STATE_LEDGER when the new file cannot be written (full disk): the old file and the
   * appending descriptor are kept, nothing is lost.
   */
  compact(now: number): void {
    if (this.fd < 0) throw new MailjailError('MJ_STATE_LEDGER', 'ledger is closed');
    this.prune(now);
    let text = '';
    for (const b of this.bans) text += JSON.stringify({ t: 'ban', ...b }) + '\n';
    text += JSON.stringify({ t: 'mark', through: this.through }) + '\n';
    let failure: unknown;
    try {
      replaceFileDurably(this.path, text, 0o600, 'MJ_STATE_LEDGER');
    } catch (err) {
      failure = err;
      this.compactionFailures++;
      this.lastCompactionError = (err as Error).message;
      // Not renamed: the old file is still the ledger and our descriptor still appends to it.
      if (!this.replaced()) throw err;
    }
    // The new file is in place (perhaps with its directory entry not yet synced): append to it.
    // Open it before closing the old descriptor, so a failure here leaves the ledger writable.
    let fd: number;
    try {
      fd = openSync(this.path, 'a', 0o600);
    } catch (err) {
      // Appending to the old, now unlinked, file would lose every later ban: refuse writes instead.
      closeSync(this.fd);
      this.fd = -1;
      throw new MailjailError('MJ_STATE_LEDGER', `compacted ${this.path} but cannot reopen it: ${(err as Error).message}`, { cause: err });
    }
    closeSync(this.fd);
    this.fd = fd;
    this.size = fstatSync(fd).size;
    this.torn = false;
    this.appended = this.bans.length + 1;
    this.compactions++;
    if (failure) throw failure;
  }

  /** Whether the file at `path` is no longer the one our descriptor appends to (a rename replaced it). */
  private replaced(): boolean {
    try {
      const now = statSync(this.path);
      const ours = fstatSync(this.fd);
      return now.ino !== ours.ino || now.dev !== ours.dev;
    } catch {
      return false;
    }
  }

  close(): void {
    if (this.fd < 0) return;
    closeSync(this.fd);
    this.fd = -1;
    try { unlinkSync(join(this.dir, LOCK_FILE)); } catch { /* already gone */ }
  }

  private syncDir(): void {
    const dfd = openSync(this.dir, 'r');
    try { fsyncSync(dfd); } finally { closeSync(dfd); }
  }

  private apply(e: LedgerEntry): void {
    if (e.t === 'ban') {
      const { t: _t, through, ...rec } = e;
      this.bans.push(rec);
      if (through) this.through = through;
      this.latest = Math.max(this.latest, rec.since);
    } else if (e.t === 'unban') {
      for (let i = 0; i < this.bans.length; i++) {
        const b = this.bans[i]!;
        if (b.target === e.target && (e.policy === undefined || b.policy === e.policy) && b.until > e.at) this.bans[i] = { ...b, until: e.at };
      }
      this.latest = Math.max(this.latest, e.at);
    } else {
      this.through = e.through;
    }
  }
}

function parseEntry(line: string): LedgerEntry | undefined {
  if (line.trim() === '') return undefined;
  const e = JSON.parse(line) as Record<string, unknown>;
  const num = (x: unknown): x is number => typeof x === 'number' && Number.isFinite(x);
  const str = (x: unknown): x is string => typeof x === 'string';
  // Targets come back through parse/ip like any other address text: only canonical ones are taken.
  if (str(e.target) && canonicalTarget(e.target) !== e.target) return undefined;
  if (e.t === 'ban' && str(e.policy) && str(e.target) && num(e.since) && num(e.until) && num(e.level) && str(e.ruleId)) return e as unknown as LedgerEntry;
  if (e.t === 'unban' && str(e.target) && num(e.at) && str(e.reason)) return e as unknown as LedgerEntry;
  if (e.t === 'mark' && typeof e.through === 'object' && e.through !== null) return e as unknown as LedgerEntry;
  return undefined;
}

/** The canonical form of an address (no /len) or network, as the decider writes targets. */
export function canonicalTarget(s: string): string | undefined {
  const c = parseCidr(s);
  if (!c) return undefined;
  const { addr, len } = splitCidr(c);
  return len === (isIpv6(addr) ? 128 : 32) && !s.includes('/') ? addr : c;
}

/**
 * Takes the state directory's lock, or throws MJ_STATE_LEDGER_LOCKED when a live process holds it.
 * A lock left by a dead process (kill -9, or a reboot) is taken over. The lock names the holder by
 * pid, boot id and process start time: after a reboot the old pid may belong to another process,
 * and a pid alone would then keep the daemon from starting.
 */
function takeLock(dir: string): void {
  const path = join(dir, LOCK_FILE);
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(path, 'wx', 0o600);
      try { writeSync(fd, `${process.pid} ${bootId() ?? '-'} ${startTime(process.pid) ?? '-'}\n`); } finally { closeSync(fd); }
      return;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw new MailjailError('MJ_STATE_LEDGER', `cannot lock ${path}`, { cause: err });
    }
    let holder: string[] = [];
    try { holder = readFileSync(path, 'utf8').trim().split(' '); } catch { /* removed meanwhile */ }
    const pid = Number(holder[0]);
    if (Number.isInteger(pid) && pid > 0 && holds(pid, holder[1], holder[2])) {
      throw new MailjailError('MJ_STATE_LEDGER_LOCKED', `${dir} is in use by process ${pid}${pid === process.pid ? ' (this one: the ledger is already open)' : ''}`);
    }
    try { unlinkSync(path); } catch { /* raced with another taker: retry once */ }
  }
  throw new MailjailError('MJ_STATE_LEDGER_LOCKED', `cannot take ${path}`);
}

/** Whether the process that wrote a lock still runs: same boot, pid alive, same start time. */
function holds(pid: number, boot: string | undefined, start: string | undefined): boolean {
  if (!alive(pid)) return false;
  const nowBoot = bootId();
  if (boot && boot !== '-' && nowBoot && boot !== nowBoot) return false;
  const nowStart = startTime(pid);
  if (start && start !== '-' && nowStart && start !== nowStart) return false;
  return true;
}

function bootId(): string | undefined {
  try { return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(); } catch { return undefined; }
}

/** Start time of a process in clock ticks since boot (field 22 of /proc/PID/stat), Linux only. */
function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name (field 2) may hold blanks and parentheses: count fields after its last ')'.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}
