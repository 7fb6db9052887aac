import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import fc from 'fast-check';
import { FileSource } from '../../src/sources/file.js';

async function lines(src: FileSource): Promise<[string, number][]> {
  const out: [string, number][] = [];
  for await (const b of src.records(new AbortController().signal)) {
    for (const r of b) if (r.kind === 'line') out.push([r.text, r.origin.line ?? -1]);
  }
  return out;
}

test('file source: any chunk size gives the same lines and line numbers (UTF-8, CRLF, over-long lines)', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'mj-file-'));
  try {
    const line = fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('héllo wörld ✓ 🚀', 'x'.repeat(120), ''))
      .map((s) => s.replace(/[\r\n]/g, ' '));
    await fc.assert(fc.asyncProperty(fc.array(line, { maxLength: 30 }), fc.integer({ min: 1, max: 200 }), fc.boolean(), fc.boolean(), async (ls, chunk, crlf, finalNl) => {
      const path = join(dir, 'x.log');
      writeFileSync(path, ls.join(crlf ? '\r\n' : '\n') + (finalNl ? '\n' : ''));
      const want: [string, number][] = [];
      ls.forEach((l, i) => { if (l !== '' && l.length <= 100) want.push([l, i + 1]); });
      const src = new FileSource(path, { chunk, maxLine: 100 });
      assert.deepEqual(await lines(src), want);
      const content = ls.join('\n') + (finalNl ? '\n' : '');
      assert.equal(src.stats().lines, (content.match(/\n/g)?.length ?? 0) + (content !== '' && !content.endsWith('\n') ? 1 : 0));
      assert.equal(src.stats().oversize, ls.filter((l) => l.length > 100).length);
    }), { numRuns: 200 });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('file source reads stdin ("-") the same way', async () => {
  const src = new FileSource('-', {}, Readable.from([Buffer.from('a\nb'), Buffer.from('c\r\n\nd')]));
  assert.deepEqual(await lines(src), [['a', 1], ['bc', 2], ['d', 4]]);
  assert.equal(src.name, 'stdin');
});
