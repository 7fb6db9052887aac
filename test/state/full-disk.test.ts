// A real full disk: the state directory on a small tmpfs (root only), filled by a filler file
// while bans are appended and while the ledger compacts. Nothing that was acknowledged may be lost,
// nothing that failed may be listed, and everything carries on once the filler is gone.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { closeSync, existsSync, openSync, readFileSync, statSync, ftruncateSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { Decider } from '../../src/state/decider.js';
import { Ledger, LEDGER_FILE } from '../../src/state/ledger.js';
import type { LedgerEntry } from '../../src/state/records.js';
import type { BanDecision, Match } from '../../src/types.js';
import { DEFAULT_POLICY, T0, match } from './helpers.js';
import { fill, mountTmpfs, unmount } from './tmpfs.js';

/** A distinct attacker address per index. */
const attacker = (a: number): string => `10.${(a >> 8) & 255}.${a & 255}.7`;
/** Five failures of attacker `a`, 1 ms apart, from `t`. */
const attack = (a: number, t: number): Match[] => Array.from({ length: 5 }, (_, i) => match(attacker(a), t + i));
const sorted = (xs: Iterable<string>): string[] => [...xs].sort();

test('full disk during appends: every acknowledged ban survives, failed ones are not listed and are decided again later', (t) => {
  const mnt = mountTmpfs(t, '1m');
  if (!mnt) return;
  let ledger: Ledger | undefined;
  try {
    const dir = join(mnt, 'state');
    ledger = Ledger.open(dir).ledger;
    const writer = ledger;
    const d = new Decider({ policies: [DEFAULT_POLICY], ledger });
    const acknowledged = new Set<string>();
    const ack = (ds: readonly BanDecision[]): void => { for (const x of ds) acknowledged.add(x.target); };
    let clock = T0;
    const observe = (a: number): boolean => {
      for (const m of attack(a, clock)) {
        try {
          ack(d.observe(m, m.event.time).decisions);
        } catch (e) {
          assert.match((e as Error).message, /MJ_STATE_LEDGER/);
          return false;
        }
      }
      return true;
    };
    let a = 0;
    for (; a < 200; a++, clock += 10) assert.ok(observe(a));
    assert.equal(acknowledged.size, 200);

    // The disk fills up. Appends go on while the ledger's last page has room, then one is written
    // short (it crosses into a page the disk does not have) and from there on they fail.
    const filler = join(mnt, 'filler');
    fill(filler);
    const failed: number[] = [];
    while (failed.length < 30) {
      if (!observe(a)) failed.push(a);
      a++;
      clock += 10;
      assert.ok(a < 5000, 'the disk never filled up');
    }
    // Group commit on the full disk: the whole batch fails and none of its bans is kept.
    const batchAttackers = [a, a + 1, a + 2, a + 3];
    a += 4;
    assert.throws(() => d.observeBatch(batchAttackers.flatMap((b) => attack(b, clock)), (m) => m.event.time).decisions, /MJ_STATE_LEDGER/);
    clock += 10;
    // The daemon lists only what the ledger holds.
    assert.deepEqual(sorted(d.activeBans(clock).map((b) => b.target)), sorted(acknowledged));
    assert.equal(d.stats().bansUnpersisted, failed.length + batchAttackers.length);

    // Room again: appends go on, and each offender that could not be banned is banned at its next line.
    unlinkSync(filler);
    for (const f of failed) {
      const ds = d.observe(match(attacker(f), clock), clock).decisions;
      assert.deepEqual(ds.map((x) => x.target), [attacker(f)], `attacker ${f} is decided again at its next line`);
      ack(ds);
      clock++;
    }
    const again = d.observeBatch(batchAttackers.map((b) => match(attacker(b), clock)), () => clock).decisions;
    assert.deepEqual(sorted(again.map((x) => x.target)), sorted(batchAttackers.map(attacker)));
    ack(again);
    assert.ok(observe(a + 1), 'new attackers are banned as before');
    assert.deepEqual(sorted(d.activeBans(clock).map((b) => b.target)), sorted(acknowledged));
    ledger.close();

    // After a restart exactly the acknowledged bans come back, from a ledger without torn lines.
    const o = Ledger.open(dir);
    ledger = o.ledger;
    assert.equal(o.badLines, 0);
    assert.deepEqual(sorted(o.state.bans.map((b) => b.target)), sorted(acknowledged));
    assert.equal(o.state.bans.length, acknowledged.size, 'each ban once');
    assert.ok(writer.writeFailures >= failed.length + 1, 'each failed append was counted');
  } finally {
    ledger?.close();
    unmount(mnt);
  }
});

test('full disk during compaction: the old ledger is kept whole, every active ban comes back; compaction succeeds once there is room', (t) => {
  const mnt = mountTmpfs(t, '4m');
  if (!mnt) return;
  let ledger: Ledger | undefined;
  try {
    const dir = join(mnt, 'state');
    const day = 86_400_000;
    // The case: 8,000 bans long over and 6,000 active ones.
    ledger = Ledger.open(dir, { compactAfter: 1e9, sync: false }).ledger;
    const entries: LedgerEntry[] = [];
    for (let i = 0; i < 8000; i++) entries.push({ t: 'ban', policy: 'auth', target: attacker(i) as never, since: T0 - 40 * day + i, until: T0 - 40 * day + i + 3_600_000, level: 0, ruleId: 'r' });
    for (let i = 0; i < 6000; i++) entries.push({ t: 'ban', policy: 'auth', target: `192.168.${i >> 8}.${i & 255}` as never, since: T0 + i, until: T0 + 10 * day, level: 0, ruleId: 'r' });
    for (let i = 0; i < entries.length; i += 1000) ledger.record(entries.slice(i, i + 1000));
    ledger.close();
    ledger = undefined;
    const path = join(dir, LEDGER_FILE);
    const before = readFileSync(path);

    // Nearly full: less room than the compacted ledger needs (~700 KB), but not none, so the new
    // file gets a short write.
    const filler = join(mnt, 'filler');
    const size = fill(filler);
    const fd = openSync(filler, 'r+');
    ftruncateSync(fd, size - 128 * 1024);
    closeSync(fd);

    // Opening compacts (dead entries outnumber live ones): it cannot, and says so; nothing is lost.
    const o = Ledger.open(dir);
    ledger = o.ledger;
    assert.ok(readFileSync(path).equals(before), 'the old ledger is untouched');
    assert.ok(!existsSync(`${path}.tmp`), 'the partial temp file is removed');
    assert.equal(o.state.bans.filter((b) => b.until > T0 + 6000).length, 6000);
    assert.equal(ledger.compactionFailures, 1);
    assert.equal(ledger.compactions, 0);
    assert.match(ledger.lastCompactionError ?? '', /MJ_STATE_LEDGER.*bans\.jsonl/);
    assert.throws(() => ledger!.compact(T0 + 6000), /MJ_STATE_LEDGER/);
    // The appending descriptor still works on the old file (there is room for a line or two).
    ledger.record([{ t: 'ban', policy: 'auth', target: '198.51.100.1' as never, since: T0 + 7000, until: T0 + 10 * day, level: 0, ruleId: 'r' }]);
    ledger.close();
    ledger = undefined;

    // Stop, start on the full disk again: still every ban.
    let r = Ledger.open(dir);
    ledger = r.ledger;
    assert.equal(r.state.bans.filter((b) => b.until > T0 + 7000).length, 6001);
    ledger.close();
    ledger = undefined;

    // The filler goes: the next start compacts, and still every active ban is there.
    unlinkSync(filler);
    r = Ledger.open(dir);
    ledger = r.ledger;
    assert.equal(ledger.compactions, 1);
    assert.ok(statSync(path).size < before.length / 2);
    ledger.close();
    r = Ledger.open(dir);
    ledger = r.ledger;
    assert.equal(r.badLines, 0);
    assert.equal(r.state.bans.filter((b) => b.until > T0 + 7000).length, 6001);
  } finally {
    ledger?.close();
    unmount(mnt);
  }
});
