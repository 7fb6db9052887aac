// Short writes and write errors, simulated. A real full disk is in full-disk.test.ts (root, tmpfs);
// here fs.writeSync is wrapped (the one mock: a kernel that returns short counts or ENOSPC on
// demand cannot be had without root), so these run everywhere and pin each failure mode exactly.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs, { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { replaceFileDurably } from '../../src/lib/durable-file.js';
import { Decider } from '../../src/state/decider.js';
import { Ledger, LEDGER_FILE } from '../../src/state/ledger.js';
import type { LedgerEntry, LedgerSink } from '../../src/state/records.js';
import type { BanDecision, Match } from '../../src/types.js';
import { DEFAULT_POLICY, T0, match } from './helpers.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'mj-durable-'));
const realWriteSync = fs.writeSync;

type Fault = (fd: number, len: number) => number | 'enospc' | undefined;

/** Runs `f` with fs.writeSync wrapped: `fault` may cap a write's length or fail it with ENOSPC. */
function withWrites<T>(fault: Fault, f: () => T): T {
  const wrapped = (fd: number, buf: unknown, ...rest: unknown[]): number => {
    // A string is written as its UTF-8 bytes at the current position (how the callers use it).
    const bytes = typeof buf === 'string' && rest.length === 0 ? Buffer.from(buf, 'utf8') : buf;
    if (!(bytes instanceof Uint8Array)) return (realWriteSync as (...a: unknown[]) => number)(fd, buf, ...rest);
    const off = bytes === buf && typeof rest[0] === 'number' ? rest[0] : 0;
    const len = bytes === buf && typeof rest[1] === 'number' ? rest[1] : bytes.length - off;
    const r = fault(fd, len);
    if (r === 'enospc') throw Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC', errno: -28, syscall: 'write' });
    return realWriteSync(fd, bytes, off, r === undefined ? len : Math.min(len, r));
  };
  (fs as { writeSync: unknown }).writeSync = wrapped;
  syncBuiltinESMExports();
  try {
    return f();
  } finally {
    (fs as { writeSync: unknown }).writeSync = realWriteSync;
    syncBuiltinESMExports();
  }
}

const ban = (i: number, until = T0 + 3_600_000): LedgerEntry => ({ t: 'ban', policy: 'p', target: `192.0.2.${i}` as never, since: T0 + i, until, level: 0, ruleId: 'r' });

test('replaceFileDurably: short writes are continued until every byte is written', () => {
  const dir = tmp();
  try {
    const path = join(dir, 'f');
    const text = 'x'.repeat(10_000) + '\n';
    withWrites(() => 7, () => replaceFileDurably(path, text, 0o600));
    assert.equal(readFileSync(path, 'utf8'), text);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('replaceFileDurably: ENOSPC after a short write keeps the old file, removes the temp file, names the path', () => {
  const dir = tmp();
  try {
    const path = join(dir, 'f');
    writeFileSync(path, 'old\n');
    let calls = 0;
    assert.throws(
      () => withWrites(() => (++calls === 1 ? 100 : 'enospc'), () => replaceFileDurably(path, 'n'.repeat(5000), 0o600, 'MJ_STATE_LEDGER')),
      (e: Error & { code?: string }) => e.code === 'MJ_STATE_LEDGER' && e.message.includes(path) && /ENOSPC/.test(e.message),
    );
    assert.equal(calls, 2, 'the short write was continued, and the next one failed');
    assert.equal(readFileSync(path, 'utf8'), 'old\n');
    assert.deepEqual(readdirSync(dir), ['f']);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ledger: an append that fails part-way is cut back; the next append is whole; nothing acknowledged is lost', () => {
  const dir = tmp();
  try {
    const { ledger } = Ledger.open(dir);
    ledger.record([ban(1)]);
    const path = join(dir, LEDGER_FILE);
    const before = statSync(path).size;
    // A short write, then ENOSPC: 20 bytes of the line reached the file.
    let calls = 0;
    assert.throws(() => withWrites(() => (++calls === 1 ? 20 : 'enospc'), () => ledger.record([ban(2), ban(3)])), /MJ_STATE_LEDGER.*bans\.jsonl.*2 entries not recorded/);
    assert.equal(statSync(path).size, before, 'the torn tail is cut back');
    assert.equal(ledger.writeFailures, 1);
    assert.equal(ledger.state().bans.length, 1, 'a failed append is not applied to memory');
    // Short writes that succeed in the end are whole lines.
    withWrites(() => 5, () => ledger.record([ban(4)]));
    ledger.record([ban(5)]);
    ledger.close();
    const o = Ledger.open(dir);
    assert.equal(o.badLines, 0);
    assert.deepEqual(o.state.bans.map((b) => b.target), ['192.0.2.1', '192.0.2.4', '192.0.2.5']);
    o.ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ledger: a compaction that cannot be written keeps the old file and the appending descriptor; it is retried later', () => {
  const dir = tmp();
  try {
    const { ledger } = Ledger.open(dir, { compactAfter: 10 });
    const path = join(dir, LEDGER_FILE);
    // 5 live bans, then checkpoints: at the 20th entry dead entries outnumber live ones and
    // record() compacts.
    for (let i = 0; i < 5; i++) ledger.record([ban(i)]);
    // Any write to a descriptor other than the ledger's (the temp file) fails.
    const ledgerFd = (ledger as unknown as { fd: number }).fd;
    withWrites((fd) => (fd === ledgerFd ? undefined : 'enospc'), () => {
      for (let i = 0; i < 20; i++) ledger.mark({ 'file:x': { line: i, time: T0 + i } }); // never throws for compaction
    });
    assert.equal(ledger.compactionFailures, 1);
    assert.match(ledger.lastCompactionError ?? '', /MJ_STATE_LEDGER.*cannot replace.*ENOSPC/);
    assert.equal(ledger.compactions, 0);
    assert.ok(!existsSync(`${path}.tmp`));
    assert.equal(readFileSync(path, 'utf8').split('\n').filter(Boolean).length, 25, 'the old file is whole and was appended to');
    // Tried again later (the disk has room again): compacted, through the same ledger object.
    for (let i = 0; i < 10; i++) ledger.mark({ 'file:x': { line: 20 + i, time: T0 + 20 + i } });
    assert.equal(ledger.compactions, 1);
    assert.ok(readFileSync(path, 'utf8').split('\n').filter(Boolean).length < 20, 'compacted');
    ledger.record([ban(50)]);
    ledger.close();
    const o = Ledger.open(dir);
    assert.equal(o.badLines, 0);
    assert.deepEqual(o.state.bans.map((b) => b.target), ['192.0.2.0', '192.0.2.1', '192.0.2.2', '192.0.2.3', '192.0.2.4', '192.0.2.50']);
    assert.equal(o.state.through['file:x']?.line, 29);
    o.ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** A ledger that fails while `full` is set, and otherwise keeps what it was given. */
class FlakySink implements LedgerSink {
  full = false;
  readonly kept: LedgerEntry[] = [];
  failures = 0;
  record(entries: readonly LedgerEntry[]): void {
    if (this.full) {
      this.failures++;
      throw new Error('MJ_STATE_LEDGER: cannot write (test)');
    }
    this.kept.push(...entries);
  }
}

const targets = (ds: readonly BanDecision[]): string[] => ds.map((d) => d.target).sort();

test('decider: a ban whose ledger write fails is not kept; the next line of the offender decides it again', () => {
  const sink = new FlakySink();
  const d = new Decider({ policies: [DEFAULT_POLICY], ledger: sink });
  for (let i = 0; i < 4; i++) assert.deepEqual(d.observe(match('192.0.2.1', T0 + i), T0 + i).decisions, []);
  sink.full = true;
  assert.throws(() => d.observe(match('192.0.2.1', T0 + 4), T0 + 4).decisions, /MJ_STATE_LEDGER/);
  assert.deepEqual(d.activeBans(T0 + 5), [], 'not listed: it is not in the ledger and not enforced');
  assert.equal(d.stats().bans, 0);
  assert.equal(d.stats().bansUnpersisted, 1);
  // Still full: the next line tries again (and fails again).
  assert.throws(() => d.observe(match('192.0.2.1', T0 + 5), T0 + 5).decisions, /MJ_STATE_LEDGER/);
  sink.full = false;
  const out = d.observe(match('192.0.2.1', T0 + 6), T0 + 6).decisions;
  assert.equal(out.length, 1);
  assert.ok(out[0]!.action === 'ban' && out[0]!.level === 0, 'the failed attempts left no escalation history');
  assert.deepEqual(d.activeBans(T0 + 7).map((b) => b.target), ['192.0.2.1']);
  assert.deepEqual(sink.kept.map((e) => e.t === 'ban' && e.target), ['192.0.2.1']);
  assert.equal(d.stats().bans, 1);
});

test('decider: observeBatch undoes every ban of a batch whose group commit fails; each is decided again', () => {
  const sink = new FlakySink();
  const d = new Decider({ policies: [DEFAULT_POLICY], ledger: sink });
  const batch: Match[] = [];
  for (let a = 0; a < 10; a++) for (let i = 0; i < 5; i++) batch.push(match(`192.0.2.${a}`, T0 + a * 10 + i));
  sink.full = true;
  assert.throws(() => d.observeBatch(batch).decisions, /MJ_STATE_LEDGER/);
  assert.equal(sink.failures, 1, 'one write for the batch');
  assert.deepEqual(d.activeBans(T0 + 1000), []);
  assert.equal(d.stats().bansUnpersisted, 10);
  sink.full = false;
  const again = d.observeBatch(Array.from({ length: 10 }, (_, a) => match(`192.0.2.${a}`, T0 + 500 + a))).decisions;
  assert.equal(again.length, 10, 'one more line each decides every ban again');
  assert.deepEqual(targets(d.activeBans(T0 + 1000).map((b) => ({ ...b, action: 'ban' as const, evidence: [] }))), targets(again));
  assert.equal(sink.kept.length, 10);
});

test('decider: operator ban and unban write first; a failed write changes nothing and throws to the caller', () => {
  const sink = new FlakySink();
  const d = new Decider({ policies: [DEFAULT_POLICY], ledger: sink });
  sink.full = true;
  assert.throws(() => d.ban({ target: '198.51.100.7', now: T0 }), /MJ_STATE_LEDGER/);
  assert.deepEqual(d.activeBans(T0), []);
  assert.equal(d.stats().operatorBans, 0);
  sink.full = false;
  d.ban({ target: '198.51.100.7', now: T0 });
  for (let i = 0; i < 4; i++) d.observe(match('192.0.2.9', T0 + i), T0 + i);
  sink.full = true;
  assert.throws(() => d.unban({ target: '198.51.100.7', now: T0 + 10 }), /MJ_STATE_LEDGER/);
  assert.deepEqual(d.activeBans(T0 + 10).map((b) => b.target), ['198.51.100.7'], 'still banned: the unban is not in the ledger');
  assert.throws(() => d.unban({ target: '192.0.2.9', now: T0 + 10 }), /MJ_STATE_LEDGER/);
  sink.full = false;
  // The failed unban did not forget 192.0.2.9's four attempts: the fifth bans.
  assert.equal(d.observe(match('192.0.2.9', T0 + 11), T0 + 11).decisions.length, 1);
  d.unban({ target: '198.51.100.7', now: T0 + 12 });
  assert.deepEqual(d.activeBans(T0 + 12).map((b) => b.target), ['192.0.2.9']);
});
