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

test('octet counting: a malformed count is counted and skipped, later frames still come through', () => {
  const r = run([Buffer.from('5 hello12x garbage\n3 abc11 hello world')]);
  assert.deepEqual(r.frames, ['hello', 'abc', 'hello world']);
  assert.deepEqual(r.faults, ['bad-octet-count']);
  const r2 = run([Buffer.from('99999999999999 x\n4 good')]);
  assert.deepEqual(r2.frames, ['good']);
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
