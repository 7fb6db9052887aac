// TCP ingest benchmark: messages/s through SyslogSource on loopback, with zero loss required.
// The sender is a separate process (as a real rsyslog would be), over several connections, in
// octet-counted and LF framing. Usage: node dist/bench/ingest-tcp.js [messages] [connections]
import { fork } from 'node:child_process';
import { connect } from 'node:net';
import { fileURLToPath } from 'node:url';
import { SyslogSource } from '../src/sources/syslog.js';

const line = (i: number): string =>
  `<22>Nov  4 00:00:${String(i % 60).padStart(2, '0')} mx1 postfix/smtpd[${1000 + (i % 5000)}]: warning: unknown[203.0.113.${i % 250}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6 seq=${i}`;

async function sender(port: number, from: number, count: number, octet: boolean): Promise<void> {
  const s = connect(port, '127.0.0.1');
  await new Promise((r) => s.once('connect', r));
  let i = from;
  const end = from + count;
  const chunk = 2000;
  while (i < end) {
    const parts: string[] = [];
    for (let k = 0; k < chunk && i < end; k++, i++) {
      const m = line(i);
      parts.push(octet ? `${Buffer.byteLength(m)} ${m}` : `${m}\n`);
    }
    if (!s.write(parts.join(''))) await new Promise((r) => s.once('drain', r));
  }
  await new Promise<void>((r) => s.end(r));
}

if (process.argv[2] === 'send') {
  const [port, from, count, octet] = process.argv.slice(3).map(Number) as [number, number, number, number];
  await sender(port, from, count, octet === 1);
  process.exit(0);
}

const total = Number(process.argv[2] ?? 1_000_000);
const conns = Number(process.argv[3] ?? 4);
const me = fileURLToPath(import.meta.url);

for (const octet of [true, false]) {
  const src = new SyslogSource({ name: 'bench', protocol: 'tcp', host: '127.0.0.1', port: 0, allow: ['127.0.0.1'] });
  const { port } = await src.listen();
  const ac = new AbortController();
  const per = Math.ceil(total / conns);
  const t0 = process.hrtime.bigint();
  const kids = Array.from({ length: conns }, (_, k) => fork(me, ['send', String(port), String(k * per), String(Math.min(per, total - k * per)), octet ? '1' : '0']));
  let n = 0;
  let bytes = 0;
  for await (const batch of src.records(ac.signal)) {
    n += batch.length;
    for (const r of batch) if (r.kind === 'line') bytes += r.text.length;
    if (n >= total) break;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  await Promise.all(kids.map((k) => new Promise((r) => (k.exitCode !== null ? r(0) : k.once('exit', r)))));
  const st = src.stats();
  console.log(`tcp ${octet ? 'octet-counted' : 'LF-delimited '}: ${n} msgs over ${conns} conns in ${secs.toFixed(2)} s = ${Math.round(n / secs).toLocaleString('en')} msg/s (${(bytes / secs / 1e6).toFixed(0)} MB/s text), lost ${total - n}, bad frames ${st.badFrames}, pauses ${st.pauses}`);
}
