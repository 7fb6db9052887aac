// A deterministic replayed attack (not a test file): attackers each send one burst of attempts in
// turn, so a kill right after a ban leaves no half-counted attacker behind.
import type { Match } from '../../src/types.js';
import { T0, match } from './helpers.js';

export function attackScript(attackers: number, seed = 1): Match[] {
  let x = seed >>> 0;
  const rnd = (n: number): number => {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    return x % n;
  };
  const out: Match[] = [];
  let t = T0;
  let line = 0;
  for (let a = 0; a < attackers; a++) {
    const v6 = a % 3 === 0;
    const tries = 3 + rnd(6); // 3..8: some are banned, some stay below maxretry
    for (let i = 0; i < tries; i++) {
      t += 1000 + rnd(20_000);
      const addr = v6 ? `2001:db8:${(a >> 8).toString(16)}:${(a & 255).toString(16)}::${(i + 1).toString(16)}` : `10.${(a >> 16) & 255}.${(a >> 8) & 255}.${a & 255}`;
      out.push(match(addr, t, { line: ++line, source: 'attack.log' }));
    }
  }
  return out;
}
