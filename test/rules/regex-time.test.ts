// V8's `--enable-experimental-regexp-engine-on-excessive-backtracks` (on in the CLI and the test
// runner) reruns a regex in a slow linear-time engine once it has backtracked ~50,000 times. A
// pattern that backtracks once per character (an unbounded `.*` before the address, a lazy scan to
// `$`) crosses that on any long line, benign or not, and then costs 50–400× more
// (bench/regex-long-lines.ts measures it). Instead of timing it, this counts it: V8's
// `--trace-experimental-regexp-engine` prints one line per regexp run in the fallback engine, and
// no rule may get there on every rule file's own samples padded to 8 and 64 KiB.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('../../bench/regex-long-lines.js', import.meta.url));
const FLAGS = ['--enable-experimental-regexp-engine-on-excessive-backtracks', '--trace-experimental-regexp-engine'];

test('no rule falls back to the linear-time engine on 8 and 64 KiB lines (benign and hostile)', () => {
  const r = spawnSync(process.execPath, [...FLAGS, BENCH, '--child', '--sizes', '8192,65536', '--reps', '1', '--per-rule', '3'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  const rows = JSON.parse(lines.at(-1) || lines.at(-2)!) as { file: string; kind: string }[];
  assert.ok(new Set(rows.map((x) => `${x.file}/${x.kind}`)).size >= 40, `only ${rows.length} file/kind rows`);
  const fallbacks = lines.filter((l) => l.startsWith('Experimental execution')).map((l) => l.replace(/^.*?<String\[\d+\]: #?/, '').slice(0, 160));
  assert.deepEqual([...new Set(fallbacks)], [], 'these patterns backtrack on long lines');
});
