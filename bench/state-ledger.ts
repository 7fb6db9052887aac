// Ban ledger cost: durable appends per second (one fdatasync per decision batch), the same without
// fsync (the format's own cost), and how long opening + restoring a large ledger takes.
// Usage: node dist/bench/state-ledger.js [dir]
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Decider } from '../src/state/decider.js';
import { Ledger, LEDGER_FILE } from '../src/state/ledger.js';
import { defaultPolicy } from '../src/daemon/config.js';
import type { Ip } from '../src/types.js';

const base = process.argv[2] ?? tmpdir();
const T0 = Date.UTC(2026, 10, 4);
const ban = (i: number) => ({
  t: 'ban' as const, policy: 'mail-auth', target: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}` as Ip,
  since: T0 + i, until: T0 + i + 3_600_000, level: 0, ruleId: 'dovecot-auth-failed',
});

function appends(sync: boolean, n: number): void {
  const dir = mkdtempSync(join(base, 'mj-ledger-bench-'));
  try {
    const { ledger } = Ledger.open(dir, { sync, compactAfter: 1e9 });
    const t0 = performance.now();
    for (let i = 0; i < n; i++) ledger.record([ban(i)]);
    const ms = performance.now() - t0;
    ledger.close();
    console.log(`append ${sync ? 'fdatasync' : 'no sync  '}: ${n} bans in ${ms.toFixed(0)} ms = ${Math.round(n / (ms / 1000)).toLocaleString('en')} bans/s, ${(ms / n * 1000).toFixed(0)} µs each`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function restore(n: number): void {
  const dir = mkdtempSync(join(base, 'mj-ledger-bench-'));
  try {
    const { ledger } = Ledger.open(dir, { sync: false, compactAfter: 1e9 });
    for (let i = 0; i < n; i += 1000) ledger.record(Array.from({ length: 1000 }, (_, j) => ban(i + j)));
    ledger.close();
    const size = statSync(join(dir, LEDGER_FILE)).size;
    const t0 = performance.now();
    const o = Ledger.open(dir, { compactAfter: 1e9 });
    const t1 = performance.now();
    const d = new Decider({ policies: [defaultPolicy()] });
    const active = d.restore(o.state, T0 + n);
    const t2 = performance.now();
    o.ledger.compact(T0 + n);
    const t3 = performance.now();
    console.log(`restore: ${n} bans (${(size / 1048576).toFixed(1)} MB): open ${(t1 - t0).toFixed(0)} ms, decider.restore ${(t2 - t1).toFixed(0)} ms (${active.length} active), compact ${(t3 - t2).toFixed(0)} ms`);
    o.ledger.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

console.log(`ledger directory on ${base}`);
appends(true, 2000);
appends(false, 200_000);
restore(100_000);
