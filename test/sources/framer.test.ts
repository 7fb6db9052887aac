import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Framer, type FrameFault } from '../../src/sources/framer.js';

function run(chunks: readonly Buffer[], max = 65536): { frames: string[]; faults: FrameFault[] } {
  const frames: string[] = [];
  const faults: FrameFault[] = [];
  const f = new Framer(max, { frame: (m) => frames.push(m.toString('utf8')), fault: (k) => faults.push(k) });
  for (const c of chunks) f.push(c);
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
