// Memory and speed of the state table: 1M distinct attacker addresses (2 attempts each, below
// maxretry, so all stay tracked), then a spray of 10M distinct addresses with one attempt each.
// Prints RSS, heap and events/s at intervals.
// Usage: node [--expose-gc] dist/bench/state-memory.js [attackers] [spray] [v4|v6|lines]
// (v6: every address in its own /64, the default IPv6 counting prefix; lines: IPv4, and every spray
// line is a Postfix SASL pair side or a Dovecot session summary, to load the dedupe tables too.)
import { Decider } from '../src/state/decider.js';
import { defaultPolicy } from '../src/daemon/config.js';
import type { AttemptInfo, Ip, LogEvent, Match } from '../src/types.js';

const ATTACKERS = Number(process.argv[2] ?? 1_000_000);
const SPRAY = Number(process.argv[3] ?? 10_000_000);
const V6 = process.argv[4] === 'v6';
const LINES = process.argv[4] === 'lines';
const T0 = Date.UTC(2026, 10, 4);
const mb = (n: number): string => `${(n / 1048576).toFixed(1)} MB`;
const gcNote = global.gc ? 'after a forced GC at each report' : 'no forced GC (run with --expose-gc to force one per report)';

const d = new Decider({ policies: [defaultPolicy()], maxTracked: 1_000_000 });
const origin = { kind: 'file', name: 'bench.log' } as const;

/** Address number → dotted quad (the string the parse stage would have minted). */
const v4 = (n: number): Ip => `${(n >>> 24) & 255}.${(n >>> 16) & 255}.${(n >>> 8) & 255}.${n & 255}` as Ip;
const v6 = (n: number): Ip => `2001:db8:${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}::1` as Ip;
const addr = V6 ? v6 : v4;

const PLAIN: AttemptInfo = {};
const MTA: AttemptInfo = { pair: { group: 'sasl', side: 'mta' } };

function feed(ip: Ip, t: number, k = 0): void {
  const event: LogEvent = { time: t, host: 'mx1', program: 'dovecot', message: '', origin };
  const attempt = !LINES || k === 0 ? PLAIN : (k & 1) === 0 ? MTA : { session: `imap-login:${k.toString(36)}`, total: 2 };
  const m: Match = { ip, ruleId: 'bench', service: 'imap', class: 'auth', attempt, event };
  d.observe(m, t);
}

function report(phase: string, done: number, t0: number, n0: number): void {
  global.gc?.();
  const mu = process.memoryUsage();
  const st = d.stats();
  const rate = (done - n0) / ((performance.now() - t0) / 1000);
  console.log(`${phase.padEnd(9)} events=${String(done).padStart(9)} tracked=${String(st.tracked).padStart(8)} evictions=${String(st.evictions).padStart(9)} rss=${mb(mu.rss).padStart(9)} heapUsed=${mb(mu.heapUsed).padStart(9)} tables=${mb(st.tableBytes).padStart(8)} rate=${Math.round(rate).toLocaleString('en')}/s`);
}

console.log(`node ${process.version}, ${V6 ? 'IPv6 /64s' : LINES ? 'IPv4, pair and session lines' : 'IPv4'}, ${gcNote}, start rss=${mb(process.memoryUsage().rss)}`);
let events = 0;
let t = T0;
let mark = performance.now(), markN = 0;
const every = Math.max(1, Math.floor(ATTACKERS / 5));
// Phase 1: attackers 11.0.0.0 upwards, 2 attempts each, interleaved in blocks so both attempts fall inside findtime.
for (let i = 0; i < ATTACKERS; i += 1000) {
  for (let rep = 0; rep < 2; rep++) {
    for (let j = i; j < Math.min(i + 1000, ATTACKERS); j++) {
      feed(addr(0x0b000000 + j), t);
      events++;
    }
  }
  t += 1;
  if ((i + 1000) % every < 1000) { report('attackers', events, mark, markN); mark = performance.now(); markN = events; }
}
const sprayEvery = Math.max(1, Math.floor(SPRAY / 10));
for (let k = 0; k < SPRAY; k++) {
  feed(addr(0x40000000 + k), t, k + 1);
  events++;
  if ((k & 1023) === 0) t += 1;
  if ((k + 1) % sprayEvery === 0) { report('spray', events, mark, markN); mark = performance.now(); markN = events; }
}
const st = d.stats();
console.log(`done: ${events} events, tracked ${st.tracked}, evictions ${st.evictions}, bans ${st.bans}, counted ${st.counted}`);
