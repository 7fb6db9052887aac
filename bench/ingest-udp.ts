// UDP ingest benchmark: received and lost messages at fixed send rates on loopback.
// The sender is a separate process pacing datagrams per millisecond tick.
// Usage: node dist/bench/ingest-udp.js [seconds-per-rate] [rate,rate,...]
import { fork } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { fileURLToPath } from 'node:url';
import { SyslogSource } from '../src/sources/syslog.js';

if (process.argv[2] === 'send') {
  const [port, rate, secs] = process.argv.slice(3).map(Number) as [number, number, number];
  const s = createSocket('udp4');
  const total = Math.round(rate * secs);
  const msg = (i: number): string => `<22>Nov  4 00:00:00 mx1 postfix/smtpd[1234]: warning: unknown[203.0.113.${i % 250}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6 seq=${i}`;
  const t0 = Date.now();
  let sent = 0;
  await new Promise<void>((done) => {
    const tick = (): void => {
      const due = Math.min(total, Math.round(((Date.now() - t0) / 1000) * rate));
      while (sent < due) s.send(msg(sent++), port, '127.0.0.1');
      if (sent >= total) done();
      else setImmediate(tick);
    };
    tick();
  });
  await new Promise((r) => setTimeout(r, 200));
  process.send?.({ sent, secs: (Date.now() - t0) / 1000 });
  s.close();
  process.exit(0);
}

const secs = Number(process.argv[2] ?? 3);
const rates = (process.argv[3] ?? '20000,50000,100000,200000').split(',').map(Number);
const me = fileURLToPath(import.meta.url);
for (const rate of rates) {
  const src = new SyslogSource({ name: 'bench', protocol: 'udp', host: '127.0.0.1', port: 0, allow: ['127.0.0.1'] });
  const { port } = await src.listen();
  const ac = new AbortController();
  const kid = fork(me, ['send', String(port), String(rate), String(secs)]);
  const report = new Promise<{ sent: number; secs: number }>((r) => kid.once('message', (m) => r(m as { sent: number; secs: number })));
  let n = 0;
  const consume = (async () => {
    for await (const b of src.records(ac.signal)) n += b.length;
  })();
  const { sent, secs: took } = await report;
  await new Promise((r) => setTimeout(r, 300));
  const st = src.stats();
  ac.abort();
  await consume;
  console.log(`udp at ${rate.toLocaleString('en')}/s offered (achieved ${Math.round(sent / took).toLocaleString('en')}/s): sent ${sent}, received ${n}, counted drops (queue full) ${st.dropped}, lost in kernel ${sent - n - st.dropped} (${(((sent - n) / sent) * 100).toFixed(2)} % total loss)`);
}
