import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import { Framer, HeldBudget, type FrameFault } from '../../src/sources/framer.js';

function run(chunks: readonly Buffer[], max = 65536): { frames: string[]; faults: FrameFault[] } {
  const frames: string[] = [];
  const faults: FrameFault[] = [];
  const budget = new HeldBudget(Infinity);
  const f = new Framer(max, { frame: (m) => frames.push(m.toString('utf8')), fault: (k) => faults.push(k) }, budget);
  for (const c of chunks) {
    f.push(c);
    // What is charged is exactly what is held, and never more than a frame needs.
    assert.equal(budget.held, f.heldBytes);
    assert.ok(f.heldBytes <= max + 10);
  }
  f.dispose();
  assert.equal(budget.held, 0);
  return { frames, faults };
}

/** Splits a buffer at the given cut points (any byte, also inside multi-byte UTF-8). */
function split(buf: Buffer, cuts: readonly number[]): Buffer[] {
  const at = [...new Set(cuts.map((c) => c % (buf.length + 1)))].sort((a, b) => a - b);
  const out: Buffer[] = [];
  let prev = 0;
  for (const c of at) {
    out.push(buf.subarray(prev, c));
    prev = c;
  }
  out.push(buf.subarray(prev));
  return out;
}

const message = fc
  .string({ unit: fc.constantFrom('a', 'Z', ' ', '<', '>', '1', '9', 'é', '€', '😀', '[', ']', '"', '=', '\t'), minLength: 1, maxLength: 60 })
  .map((s) => `<34>1 2024-11-04T00:00:00Z mx postfix/smtpd 12 - - ${s}`);

test('octet-counted stream split at random byte boundaries yields the same messages', () => {
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), (msgs, cuts) => {
      const wire = Buffer.concat(msgs.map((m) => {
        const b = Buffer.from(m, 'utf8');
        return Buffer.concat([Buffer.from(`${b.length} `), b]);
      }));
      const r = run(split(wire, cuts));
      assert.deepEqual(r.faults, []);
      assert.deepEqual(r.frames, msgs);
    }),
  );
});

test('LF-delimited stream split at random byte boundaries yields the same messages', () => {
  fc.assert(
    fc.property(fc.array(message, { minLength: 1, maxLength: 20 }), fc.array(fc.nat(), { maxLength: 30 }), fc.boolean(), (msgs, cuts, crlf) => {
      const wire = Buffer.from(msgs.map((m) => m + (crlf ? '\r\n' : '\n')).join(''), 'utf8');
      const r = run(split(wire, cuts));
      assert.deepEqual(r.faults, []);
      assert.deepEqual(r.frames, msgs);
    }),
  );
});

test('a first line of digits not followed by a space means LF framing (PRI-less ISO-dated lines)', () => {
  const lines = ['2024-11-04T00:00:00Z mx postfix/smtpd[1]: a', '2024-11-04T00:00:01Z mx dovecot: b', '12 is not a count here'];
  const wire = Buffer.from(lines.map((l) => `${l}\n`).join(''));
  for (const cut of [1, 3, 4, 5, 10]) {
    const r = run([wire.subarray(0, cut), wire.subarray(cut)]);
    assert.deepEqual(r.faults, []);
    assert.deepEqual(r.frames, lines);
  }
});

test('octet counting: a malformed count is counted and skipped, later frames still come through', () => {
  const r = run([Buffer.from('5 hello12x garbage\n3 abc11 hello world')]);
  assert.deepEqual(r.frames, ['hello', 'abc', 'hello world']);
  assert.deepEqual(r.faults, ['bad-octet-count']);
  const r2 = run([Buffer.from('3 abc99999999999999 x\n4 good')]);
  assert.deepEqual(r2.frames, ['abc', 'good']);
  assert.deepEqual(r2.faults, ['bad-octet-count']);
});

test('oversize frames are counted and skipped without buffering them', () => {
  const big = 'x'.repeat(100);
  const r = run([Buffer.from(`${big.length} ${big}3 abc`)], 50);
  assert.deepEqual(r.frames, ['abc']);
  assert.deepEqual(r.faults, ['oversize']);
  const lf = run([Buffer.from(`${'y'.repeat(30)}`), Buffer.from(`${'y'.repeat(30)}\nshort\n`)], 50);
  assert.deepEqual(lf.frames, ['short']);
  assert.deepEqual(lf.faults, ['oversize']);
});

test('LF mode treats NUL as a frame end and drops empty frames', () => {
  const r = run([Buffer.from('<13>a\0<13>b\n\n\n<13>c\n')]);
  assert.deepEqual(r.frames, ['<13>a', '<13>b', '<13>c']);
});

test('property: arbitrary bytes in arbitrary chunks never throw and never yield a frame over the cap', () => {
  fc.assert(
    fc.property(fc.array(fc.uint8Array({ maxLength: 200 }), { maxLength: 20 }), (chunks) => {
      const max = 64;
      const frames: Buffer[] = [];
      const f = new Framer(max, { frame: (m) => frames.push(m), fault: () => {} });
      for (const c of chunks) f.push(Buffer.from(c));
      for (const m of frames) assert.ok(m.length <= max + 2);
    }),
  );
});

test('1-byte segments of unfinished frames: held bytes are accounted and heap growth stays bounded', () => {
  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const conns = 64;
  const perConn = 8192;
  const budget = new HeldBudget(64 * 1024 * 1024);
  const framers = Array.from({ length: conns }, (_, i) => new Framer(65536, { frame: () => {}, fault: () => {} }, budget));
  const used = (): number => {
    gc();
    const m = process.memoryUsage();
    return m.heapUsed + m.arrayBuffers;
  };
  const one = Buffer.from('x');
  const before = used();
  framers.forEach((f, i) => f.push(Buffer.from(i % 2 === 0 ? '<13>' : `${perConn + 100} <13>`)));
  for (let b = 0; b < perConn; b++) for (const f of framers) f.push(one);
  const grown = used() - before;
  const held = framers.reduce((n, f) => n + f.heldBytes, 0);
  assert.equal(budget.held, held);
  for (const f of framers) {
    assert.ok(f.midFrame);
    // Doubling from 256: at most twice what is really waiting (~perConn bytes).
    assert.ok(f.heldBytes >= perConn && f.heldBytes <= 2 * (perConn + 16), `held ${f.heldBytes}`);
  }
  // 512 KiB were received and are waiting. Kept as a chunk per byte this was ~40 MiB of heap;
  // now it is ~1 MiB of buffers. Generous bound: a loaded machine's GC may leave some behind.
  assert.ok(grown < 8 * 1024 * 1024, `memory grew by ${(grown / 1048576).toFixed(1)} MiB for ${(conns * perConn) / 1024} KiB held`);
  for (const f of framers) f.dispose();
  assert.equal(budget.held, 0);
});

test('a framer that would overdraw the shared budget reports over-budget once and takes no more input', () => {
  const budget = new HeldBudget(1024);
  const frames: string[][] = [[], []];
  const faults: FrameFault[][] = [[], []];
  const [a, b] = [0, 1].map((i) => new Framer(65536, { frame: (m) => frames[i]!.push(m.toString()), fault: (k) => faults[i]!.push(k) }, budget));
  a!.push(Buffer.from(`<13>${'a'.repeat(900)}`)); // held: 904 of 1024
  assert.equal(budget.held, a!.heldBytes);
  b!.push(Buffer.from('<13>b')); // needs 256 more: refused
  assert.deepEqual(faults[1], ['over-budget']);
  assert.equal(b!.heldBytes, 0);
  b!.push(Buffer.from('\n<13>later\n'));
  assert.deepEqual(frames[1], []);
  assert.ok(budget.held <= 1024);
  a!.push(Buffer.from('\n<13>next\n'));
  assert.deepEqual(frames[0], [`<13>${'a'.repeat(900)}`, '<13>next']);
  assert.equal(budget.held, 0);
});
