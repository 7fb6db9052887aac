// The syslog listener against real clients: util-linux logger (TCP octet-counted RFC 5424, UDP
// RFC 3164, LF framing, IPv6), raw sockets for hostile input, and TLS with a test CA.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { promisify } from 'node:util';
import { SyslogSource, type SyslogListenerConfig } from '../../src/sources/syslog.js';
import type { RawRecord } from '../../src/types.js';
import { waitFor } from '../helpers/wait.js';
import { collect, makePki, sleep, texts, which } from './helpers.js';

const run = promisify(execFile);
const LOGGER = which('logger');

async function started(cfg: Partial<SyslogListenerConfig> & Pick<SyslogListenerConfig, 'protocol'>): Promise<{ src: SyslogSource; port: number }> {
  const src = new SyslogSource({ name: `t-${cfg.protocol}`, host: '127.0.0.1', port: 0, allow: ['127.0.0.0/8', '::1'], ...cfg });
  const { port } = await src.listen();
  return { src, port };
}

const lineOf = (r: RawRecord | undefined): Extract<RawRecord, { kind: 'line' }> => {
  assert.ok(r && r.kind === 'line');
  return r;
};

test('logger --tcp --octet-count --rfc5424 arrives framed, with peer and structured data intact', async (t) => {
  if (!LOGGER) return t.skip('SKIP: util-linux logger not installed');
  const { src, port } = await started({ protocol: 'tcp' });
  const p = run(LOGGER, ['--server', '127.0.0.1', '--port', String(port), '--tcp', '--octet-count', '--rfc5424',
    '--sd-id', 'mj@32473', '--sd-param', 'k="v \\"q\\""', '-t', 'postfix/smtpd', '-p', 'mail.warn',
    'warning: unknown[192.0.2.7]: SASL LOGIN authentication failed: UGFzc3dvcmQ6']);
  const rs = await collect(src, (a) => a.length >= 1);
  await p;
  const r = lineOf(rs[0]);
  assert.match(r.text, /^<20>1 \S+ \S+ postfix\/smtpd \S+ - (\[[^\]]*\])*\[mj@32473 k="v \\"q\\""\] warning: unknown\[192\.0\.2\.7\]: SASL LOGIN authentication failed: UGFzc3dvcmQ6$/);
  assert.equal(r.origin.kind, 'syslog-tcp');
  assert.equal(r.origin.name, 't-tcp');
  assert.match(r.origin.peer ?? '', /^127\.0\.0\.1:\d+$/);
  assert.equal(typeof r.received, 'number');
  assert.equal(src.stats().received, 1);
});

test('logger --udp --rfc3164 and logger --tcp (LF framing) both arrive', async (t) => {
  if (!LOGGER) return t.skip('SKIP: util-linux logger not installed');
  const udp = await started({ protocol: 'udp' });
  const pu = run(LOGGER, ['--server', '127.0.0.1', '--port', String(udp.port), '--udp', '--rfc3164', '-t', 'dovecot', 'imap-login: hello over udp']);
  const ru = await collect(udp.src, (a) => a.length >= 1);
  await pu;
  assert.match(lineOf(ru[0]).text, /^<13>\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ dovecot: imap-login: hello over udp$/);
  assert.equal(ru[0]!.origin.kind, 'syslog-udp');

  const tcp = await started({ protocol: 'tcp' });
  const pt = run(LOGGER, ['--server', '127.0.0.1', '--port', String(tcp.port), '--tcp', '--rfc3164', '-t', 'exim', 'one', 'two']);
  const rt = await collect(tcp.src, (a) => a.length >= 1);
  await pt;
  assert.match(lineOf(rt[0]).text, /exim: one two$/);
});

test('IPv6 listener takes logger over ::1', async (t) => {
  if (!LOGGER) return t.skip('SKIP: util-linux logger not installed');
  let src: SyslogSource, port: number;
  try {
    ({ src, port } = await started({ protocol: 'tcp', host: '::1' }));
  } catch {
    return t.skip('SKIP: no IPv6 loopback here');
  }
  const p = run(LOGGER, ['--server', '::1', '--port', String(port), '--tcp', '--octet-count', '--rfc5424', '-t', 'postfix/smtpd', 'over v6']);
  const rs = await collect(src, (a) => a.length >= 1);
  await p;
  assert.match(lineOf(rs[0]).text, /over v6$/);
  assert.match(rs[0]!.origin.peer ?? '', /^\[::1\]:\d+$/);
});

test('a peer outside the allowlist gets nothing in, over TCP and UDP, and is counted', async () => {
  const tcp = await started({ protocol: 'tcp', allow: ['127.0.0.2/32', '2001:db8::/32'] });
  const udp = await started({ protocol: 'udp', allow: ['127.0.0.2'] });
  const c = connect(tcp.port, '127.0.0.1');
  c.on('error', () => {});
  c.write('<13>Nov  4 00:00:00 h postfix/smtpd[1]: let me in\n');
  const u = createSocket('udp4');
  u.send('<13>Nov  4 00:00:00 h postfix/smtpd[1]: let me in', udp.port, '127.0.0.1');
  // Both sources run until both refusals are counted (the event), then must have delivered nothing.
  const refused = waitFor(() => tcp.src.stats().denied === 1 && udp.src.stats().denied === 1,
    { timeoutMs: 15_000, what: 'the TCP and UDP refusals to be counted', observe: () => [tcp.src.stats().denied, udp.src.stats().denied] });
  const [rt, ru] = await Promise.all([collect(tcp.src, () => false, 20_000, undefined, refused), collect(udp.src, () => false, 20_000, undefined, refused)]);
  await refused;
  u.close();
  c.destroy();
  assert.deepEqual(rt, []);
  assert.deepEqual(ru, []);
  assert.equal(tcp.src.stats().denied, 1);
  assert.equal(tcp.src.stats().peers['127.0.0.1']?.denied, 1);
  assert.equal(udp.src.stats().denied, 1);
  assert.equal(tcp.src.stats().received, 0);
});

test('malformed octet count and oversize frames are counted and skipped; the connection lives on', async () => {
  const { src, port } = await started({ protocol: 'tcp', maxMessageBytes: 100 });
  const c = connect(port, '127.0.0.1');
  await new Promise((r) => c.once('connect', r));
  c.write('5 hello');
  await sleep(50);
  c.write('12x garbage here\n');
  c.write(`200 ${'z'.repeat(200)}`);
  await sleep(50);
  c.write('5 world');
  const rs = await collect(src, (a) => a.length >= 2);
  c.destroy();
  assert.deepEqual(texts(rs), ['hello', 'world']);
  const s = src.stats();
  assert.equal(s.badFrames, 1);
  assert.equal(s.oversize, 1);
  assert.equal(s.peers['127.0.0.1']?.badFrames, 1);
});

test('backpressure: a lagging consumer pauses TCP reading, and nothing is lost', async () => {
  const { src, port } = await started({ protocol: 'tcp', highWater: 100, maxBatch: 50 });
  const N = 20000;
  const c = connect(port, '127.0.0.1');
  const body = Array.from({ length: N }, (_, i) => `<13>Nov  4 00:00:00 h prog: m${i}\n`).join('');
  c.end(body);
  let sawPause = false;
  const rs = await collect(src, (a) => a.length >= N, 15000, () => {
    if (src.stats().paused) sawPause = true;
  });
  assert.equal(rs.length, N);
  assert.equal(lineOf(rs[N - 1]).text, `<13>Nov  4 00:00:00 h prog: m${N - 1}`);
  assert.ok(sawPause && src.stats().pauses > 0, 'reading was paused at least once');
});

test('UDP drops are counted when the consumer is behind, never silent', async () => {
  const { src, port } = await started({ protocol: 'udp', highWater: 10 });
  const u = createSocket('udp4');
  for (let i = 0; i < 50; i++) u.send(`<13>m${i}`, port, '127.0.0.1');
  await waitFor(() => src.stats().received + src.stats().dropped === 50, { timeoutMs: 15_000, what: 'all 50 datagrams received or dropped', observe: () => src.stats() });
  u.close();
  const s = src.stats();
  assert.equal(s.received + s.dropped, 50 - 0, `received ${s.received} + dropped ${s.dropped}`);
  assert.ok(s.dropped > 0);
  await src.close();
});

test('TLS: a client with a cert from our CA gets in; one without, or from another CA, does not', async () => {
  const pki = makePki();
  const { src, port } = await started({
    protocol: 'tls',
    tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.ca, requireClientCert: true },
  });
  const send = (cert?: string, key?: string): Promise<boolean> => new Promise((resolve) => {
    const s = tlsConnect({
      host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(pki.ca),
      ...(cert && key ? { cert: readFileSync(cert), key: readFileSync(key) } : {}),
    }, () => {
      s.end(`${cert ? 'good' : 'nocert'}\n`.replace(/^/, '<13>'));
    });
    s.on('error', () => resolve(false));
    s.on('close', () => resolve(true));
  });
  await send(pki.clientCert, pki.clientKey);
  await send();
  await send(pki.rogueCert, pki.rogueKey);
  const rs = await collect(src, (a) => a.length >= 1, 15_000);
  assert.deepEqual(texts(rs), ['<13>good']);
  assert.equal(rs[0]!.origin.kind, 'syslog-tls');
  assert.ok(src.stats().tlsErrors >= 1 || src.stats().received === 1);
});

test('hostile peers: a stalled partial frame does not hold up others; a huge LF-less stream is skipped, not buffered; idle peers are closed', async () => {
  const { src, port } = await started({ protocol: 'tcp', maxMessageBytes: 1024, idleTimeoutMs: 300 });
  const stall = connect(port, '127.0.0.1');
  stall.on('error', () => {});
  stall.write('500 <13>this frame never ends');
  const flood = connect(port, '127.0.0.1');
  flood.on('error', () => {});
  await new Promise((r) => flood.once('connect', r));
  for (let i = 0; i < 16; i++) flood.write(Buffer.alloc(64 * 1024, 0x41)); // 1 MiB without LF
  flood.write('\n<13>after the flood\n');
  const good = connect(port, '127.0.0.1');
  good.write('<13>from a good peer\n');
  const rs = await collect(src, (a) => a.length >= 2, 5000);
  assert.deepEqual(texts(rs).sort(), ['<13>after the flood', '<13>from a good peer']);
  assert.equal(src.stats().oversize, 1);
  await new Promise((r) => setTimeout(r, 100));
  for (const s of [stall, flood, good]) s.destroy();
});

test('idle connections are closed after idleTimeoutMs and counted', async () => {
  const { src, port } = await started({ protocol: 'tcp', idleTimeoutMs: 200 });
  const c = connect(port, '127.0.0.1');
  c.on('error', () => {});
  const closed = new Promise<boolean>((r) => c.once('close', () => r(true)));
  // The source runs until the server closes the idle connection (deadline 15 s on a loaded machine).
  const rs = collect(src, () => false, 15_000, undefined, closed);
  assert.equal(await Promise.race([closed, new Promise<boolean>((r) => setTimeout(() => r(false), 15_000))]), true);
  await rs;
  assert.equal(src.stats().idleTimeouts, 1);
});

test('one sender cannot hold more than maxConnectionsPerPeer connections; its open ones and others still deliver', async () => {
  const { src, port } = await started({ protocol: 'tcp', maxConnectionsPerPeer: 2, allow: ['127.0.0.0/8'] });
  const open = async (host: string): Promise<ReturnType<typeof connect>> => {
    const c = connect({ port, host: '127.0.0.1', localAddress: host });
    await new Promise((r) => c.once('connect', r));
    return c;
  };
  const a = await open('127.0.0.1');
  const b = await open('127.0.0.1');
  const third = await open('127.0.0.1');
  const closed = new Promise((r) => third.once('close', r));
  const other = await open('127.0.0.2');
  a.write('1 a');
  b.write('1 b');
  other.write('1 c');
  const rs = await collect(src, (all) => all.length >= 3);
  await closed;
  for (const c of [a, b, other]) c.destroy();
  assert.deepEqual(texts(rs).sort(), ['a', 'b', 'c']);
  assert.equal(src.stats().peerLimited, 1);
});
