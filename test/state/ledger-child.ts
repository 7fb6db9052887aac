// Child process of the SIGKILL test: replays the attack with a real ledger and prints each ban
// (after the ledger has it) on stdout. With a stop line it prints READY there and blocks, so the
// parent kills it at a known point; without, the parent kills it whenever it likes.
import { writeSync } from 'node:fs';
import { Decider } from '../../src/state/decider.js';
import { Ledger } from '../../src/state/ledger.js';
import { attackScript } from './attack.js';
import { DEFAULT_POLICY } from './helpers.js';

const [dir, attackers, stopAt] = process.argv.slice(2);
const { ledger, state } = Ledger.open(dir!);
const d = new Decider({ policies: [DEFAULT_POLICY], ledger });
d.restore(state, Date.now());
for (const m of attackScript(Number(attackers))) {
  for (const b of d.observe(m, m.event.time).decisions) {
    if (b.action === 'ban') writeSync(1, `${JSON.stringify({ target: b.target, until: b.until, line: m.event.origin.line })}\n`);
  }
  if (m.event.origin.line === Number(stopAt)) {
    writeSync(1, 'READY\n');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0); // blocks until killed
  }
}
writeSync(1, 'DONE\n');
