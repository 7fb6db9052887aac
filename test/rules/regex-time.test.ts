// V8's `--enable-experimental-regexp-engine-on-excessive-backtracks` (on in the CLI and the test
// runner) reruns a regex in a slow linear-time engine once it has backtracked ~50,000 times. A
// pattern that backtracks once per character (an unbounded `.*` before the address, a lazy scan to
// `$`) crosses that on any long line, benign or not, and then costs 50–400× more. Every rule file's
// own samples, padded to 64 KiB (see bench/regex-long-lines.ts), must cost about the same with the
// flag as without. Compared within one run (best of two children per setting, interleaved) so a
// loaded machine slows both sides alike.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const BENCH = fileURLToPath(new URL('../../bench/regex-long-lines.js', import.meta.url));
const FLAG = '--enable-experimental-regexp-engine-on-excessive-backtracks';

interface Row { file: string; kind: string; size: number; us: number }

function run(flags: string[]): Row[] {
  const r = spawnSync(process.execPath, [...flags, BENCH, '--child', '--sizes', '65536', '--reps', '64', '--per-rule', '3'], { encoding: 'utf8', maxBuffer: 1 << 26 });
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as Row[];
}

test('64 KiB lines cost about the same with the backtracking fallback flag as without', () => {
  const best = new Map<string, { plain: number; flagged: number }>();
  for (let i = 0; i < 2; i++) {
    for (const [flags, side] of [[[], 'plain'], [[FLAG], 'flagged']] as const) {
      for (const row of run([...flags])) {
        const k = `${row.file}/${row.kind}`;
        const b = best.get(k) ?? { plain: Infinity, flagged: Infinity };
        b[side] = Math.min(b[side], row.us);
        best.set(k, b);
      }
    }
  }
  assert.ok(best.size >= 40, `only ${best.size} file/kind rows`);
  const slow = [...best].filter(([, b]) => b.flagged > 8 * b.plain + 2000);
  assert.deepEqual(slow.map(([k, b]) => `${k}: ${b.plain.toFixed(0)} µs without, ${b.flagged.toFixed(0)} µs with the flag`), []);
});
