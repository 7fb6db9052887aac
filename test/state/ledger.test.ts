import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Decider } from '../../src/state/decider.js';
import { Ledger, LEDGER_FILE } from '../../src/state/ledger.js';
import type { BanDecision } from '../../src/types.js';
import { attackScript } from './attack.js';
import { DEFAULT_POLICY, T0, match, s } from './helpers.js';

const tmp = (): string => mkdtempSync(join(tmpdir(), 'mj-ledger-'));

test('ledger: bans and unbans survive reopen; escalation history comes back', () => {
  const dir = tmp();
  try {
    let { ledger } = Ledger.open(dir);
    let d = new Decider({ policies: [DEFAULT_POLICY], ledger });
    for (let i = 0; i < 5; i++) d.observe(match('192.0.2.1', T0 + i), T0 + i);
    for (let i = 0; i < 5; i++) d.observe(match('192.0.2.2', T0 + i), T0 + i);
    d.unban({ target: '192.0.2.2', now: T0 + s(10) });
    d.ban({ target: '2001:db8::/48', now: T0 + s(20), bantime: s(600) });
    ledger.close();

    const opened = Ledger.open(dir);
    assert.equal(opened.badLines, 0);
    d = new Decider({ policies: [DEFAULT_POLICY], ledger: opened.ledger });
    const now = T0 + s(30);
    const re = d.restore(opened.state, now);
    assert.deepEqual(re.map((b) => b.action === 'ban' && [b.target, b.until - now]).sort(), [
      ['192.0.2.1', s(3600) + 4 - s(30)],
      ['2001:db8::/48', s(620) - s(30)],
    ].sort());
    // 192.0.2.2 was unbanned; its history still escalates the next ban.
    let out: BanDecision[] = [];
    for (let i = 0; i < 5; i++) out = out.concat(d.observe(match('192.0.2.2', now + i), now + i).decisions);
    assert.ok(out[0]?.action === 'ban' && out[0].level === 1 && out[0].until === now + 4 + s(7200));
    opened.ledger.close();
    ({ ledger } = Ledger.open(dir));
    assert.equal(ledger.state().bans.length, 4);
    ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ledger: a torn last line (killed mid-write) is cut off; foreign or non-canonical lines are refused', () => {
  const dir = tmp();
  try {
    const { ledger } = Ledger.open(dir);
    ledger.record([{ t: 'ban', policy: 'p', target: '192.0.2.1' as never, since: T0, until: T0 + 1000, level: 0, ruleId: 'r' }]);
    ledger.close();
    const path = join(dir, LEDGER_FILE);
    const good = statSync(path).size;
    appendFileSync(path, '{"t":"ban","policy":"p","target":"192.0.2.9","since":1');
    let o = Ledger.open(dir);
    assert.equal(o.badLines, 1);
    assert.equal(o.state.bans.length, 1);
    assert.equal(statSync(path).size, good, 'torn tail truncated');
    o.ledger.close();
    appendFileSync(path, '{"t":"ban","policy":"p","target":"192.0.2.010","since":1,"until":2,"level":0,"ruleId":"r"}\nnot json\n');
    o = Ledger.open(dir);
    assert.equal(o.badLines, 2);
    assert.equal(o.state.bans.length, 1);
    o.ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ledger: compaction keeps active bans and history, drops the rest, and the file stays small', () => {
  const dir = tmp();
  try {
    // No fsync here: this test is about what compaction keeps, not durability.
    const { ledger } = Ledger.open(dir, { compactAfter: 100, historyMs: s(7200), sync: false });
    const d = new Decider({ policies: [DEFAULT_POLICY], ledger });
    let t = T0;
    for (let a = 0; a < 2000; a++) {
      for (let i = 0; i < 5; i++) d.observe(match(`10.0.${a >> 8}.${a & 255}`, t), t);
      t += s(60); // 2000 bans over ~33 h: most are expired and out of the 2 h history window
    }
    assert.ok(ledger.compactions > 5);
    const lines = readFileSync(join(dir, LEDGER_FILE), 'utf8').trim().split('\n').length;
    assert.ok(lines < 400, `ledger has ${lines} lines`);
    ledger.close();
    const o = Ledger.open(dir, { historyMs: s(7200) });
    assert.ok(o.state.bans.length >= 120 && o.state.bans.length < 400, 'the last 2 h of history kept');
    const d2 = new Decider({ policies: [DEFAULT_POLICY] });
    const active = d2.restore(o.state, t);
    assert.equal(active.length, 59, 'bans whose hour is not over');
    assert.deepEqual(new Set(active.map((b) => b.target)), new Set(d.activeBans(t).map((b) => b.target)));
    o.ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

interface ChildBan { target: string; until: number; line: number }

/** Runs the child; kills it with SIGKILL on READY or after `killAfterBans` bans. */
function runChild(dir: string, attackers: number, stopAt: number, killAfterBans = Infinity): Promise<{ bans: ChildBan[]; signal: string | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [new URL('./ledger-child.js', import.meta.url).pathname, dir, String(attackers), String(stopAt)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const bans: ChildBan[] = [];
    let buf = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buf += chunk.toString('utf8');
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line === 'READY') child.kill('SIGKILL');
        else if (line !== 'DONE') {
          bans.push(JSON.parse(line) as ChildBan);
          if (bans.length >= killAfterBans) child.kill('SIGKILL');
        }
      }
    });
    child.on('error', reject);
    child.on('close', (_code, signal) => resolve({ bans, signal }));
  });
}

/** Bans of an uninterrupted run of the same script. */
function reference(attackers: number): ChildBan[] {
  const d = new Decider({ policies: [DEFAULT_POLICY] });
  const out: ChildBan[] = [];
  for (const m of attackScript(attackers)) for (const b of d.observe(m, m.event.time).decisions) if (b.action === 'ban') out.push({ target: b.target, until: b.until, line: m.event.origin.line! });
  return out;
}

test('SIGKILL mid-replay: every ban decided before the kill is restored with its remaining time; resume counts nothing twice', async () => {
  const attackers = 400;
  const script = attackScript(attackers);
  const ref = reference(attackers);
  // Stop right after the 60th ban of the uninterrupted run, then kill.
  const stopAt = ref[59]!.line;
  const dir = tmp();
  try {
    const { bans, signal } = await runChild(dir, attackers, stopAt);
    assert.equal(signal, 'SIGKILL');
    assert.deepEqual(bans, ref.slice(0, 60), 'the child decided what an uninterrupted run decides');

    // The parent's own writes need no fsync: durability is what the killed child proved.
    const { ledger, state, badLines } = Ledger.open(dir, { sync: false });
    assert.equal(badLines, 0);
    assert.equal(state.through['file:attack.log']?.line, stopAt, 'counted-through position persisted');
    const resumeAt = state.through['file:attack.log']!.time;
    const d = new Decider({ policies: [DEFAULT_POLICY], ledger });
    const restored = d.restore(state, resumeAt);
    const active = new Map<string, number>(restored.map((b) => [b.target, b.action === 'ban' ? b.until : 0]));
    for (const b of bans) {
      if (b.until > resumeAt) assert.equal(active.get(b.target), b.until, `${b.target} restored with ${b.until - resumeAt} ms left`);
      else assert.ok(state.bans.some((r) => r.target === b.target && r.until === b.until), `${b.target} kept as history`);
    }
    // Resume: the source re-feeds the whole file; lines up to the position are skipped, the rest count once.
    const after: ChildBan[] = [];
    for (const m of script) for (const b of d.observe(m, m.event.time).decisions) if (b.action === 'ban') after.push({ target: b.target, until: b.until, line: m.event.origin.line! });
    const st = d.stats();
    assert.equal(st.skippedReplayed, stopAt);
    assert.equal(st.matches - st.skippedReplayed, script.length - stopAt);
    assert.equal(st.counted + st.whileBanned, script.length - stopAt, 'each line after the position counted exactly once');
    assert.deepEqual([...bans, ...after], ref, 'killed + resumed decides exactly the uninterrupted bans');
    ledger.close();
    assert.equal(Ledger.open(dir).state.bans.length, ref.length);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('SIGKILL at an arbitrary moment: nothing printed is lost, nothing is banned twice', async (t) => {
  const attackers = 10_000;
  const script = attackScript(attackers, 1);
  const ref = reference(attackers);
  const dir = tmp();
  try {
    const { bans, signal } = await runChild(dir, attackers, -1, 40);
    // On a disk where fsync is free (tmpfs) the child may finish first: the checks below still hold.
    if (signal !== 'SIGKILL') t.diagnostic(`child finished before the kill (${bans.length} bans): checked a complete run`);
    const { ledger, state } = Ledger.open(dir, { sync: false });
    // Everything the child handed on is on disk (it may have written a few more before dying).
    assert.ok(state.bans.length >= bans.length);
    assert.deepEqual(state.bans.slice(0, bans.length).map((b) => [b.target, b.until]), bans.map((b) => [b.target, b.until]));
    const d = new Decider({ policies: [DEFAULT_POLICY], ledger });
    const wm = state.through['file:attack.log']!;
    d.restore(state, wm.time);
    const after: ChildBan[] = [];
    for (const m of script) for (const b of d.observe(m, m.event.time).decisions) if (b.action === 'ban') after.push({ target: b.target, until: b.until, line: m.event.origin.line! });
    assert.equal(d.stats().skippedReplayed, wm.line);
    const all = [...state.bans.map((b) => b.target), ...after.map((b) => b.target)];
    assert.equal(new Set(all).size, all.length, 'no target banned twice');
    assert.deepEqual(all, ref.map((b) => b.target));
    ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('ledger rejects writes after close with a stable code', () => {
  const dir = tmp();
  try {
    const { ledger } = Ledger.open(dir);
    ledger.close();
    assert.throws(() => ledger.mark({}), /MJ_STATE_LEDGER/);
    writeFileSync(join(dir, LEDGER_FILE), '');
    assert.equal(Ledger.open(dir).state.bans.length, 0);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('observeBatch: one ledger write for the whole batch, before the decisions are returned', () => {
  const writes: number[] = [];
  const d = new Decider({ policies: [DEFAULT_POLICY], ledger: { record: (e) => writes.push(e.length) } });
  const batch = [];
  for (let a = 0; a < 10; a++) for (let i = 0; i < 5; i++) batch.push(match(`192.0.2.${a}`, T0 + a * 10 + i));
  const out = d.observeBatch(batch).decisions;
  assert.equal(out.length, 10);
  assert.deepEqual(writes, [10]);
  d.observeBatch([match('192.0.2.200', T0 + 100)]);
  assert.deepEqual(writes, [10], 'no empty writes');
});

test('ledger: one writer per state directory; a dead holder\'s lock is taken over', () => {
  const dir = tmp();
  try {
    const a = Ledger.open(dir);
    assert.throws(() => Ledger.open(dir), /MJ_STATE_LEDGER_LOCKED.*already open/);
    a.ledger.close();
    Ledger.open(dir).ledger.close();
    writeFileSync(join(dir, 'bans.lock'), '999999999\n'); // no such process
    const b = Ledger.open(dir);
    b.ledger.close();
    writeFileSync(join(dir, 'bans.lock'), '1\n'); // init: alive
    assert.throws(() => Ledger.open(dir), /MJ_STATE_LEDGER_LOCKED.*process 1/);
    // After a reboot the old pid may be a live, unrelated process: another boot id frees the lock.
    writeFileSync(join(dir, 'bans.lock'), '1 00000000-0000-4000-8000-000000000000 5\n');
    Ledger.open(dir).ledger.close();
    // Same boot, pid reused by a process that started at another time: stale as well.
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
    writeFileSync(join(dir, 'bans.lock'), `1 ${boot} 999999999\n`);
    Ledger.open(dir).ledger.close();
    // What a live holder writes: pid, boot id, start time.
    const c = Ledger.open(dir);
    assert.match(readFileSync(join(dir, 'bans.lock'), 'utf8'), new RegExp(`^${process.pid} ${boot} \\d+\\n$`));
    assert.throws(() => Ledger.open(dir), /MJ_STATE_LEDGER_LOCKED/);
    c.ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
