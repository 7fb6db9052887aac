// A tiny IMAP / POP3 client and TCP probe, run inside a client network namespace:
//   ip netns exec NS node client.js '{"proto":"imap","host":"192.0.2.1","logins":[{"user":"u","pass":"p"}]}'
// Prints one JSON line: {"connect":"open"|"timeout"|"refused"|"error","results":["fail","ok",...]}.
// One connection per run; every LOGIN (IMAP), USER+PASS (POP3) or AUTHENTICATE PLAIN (ManageSieve)
// is one attempt; it stops after a success. `tls: 'implicit'` speaks TLS from the first byte
// (993/995), `tls: 'starttls'` upgrades first (IMAP STARTTLS, POP3 STLS, ManageSieve STARTTLS, SMTP
// EHLO+STARTTLS); the lab's certificate is self-signed and accepted unless `verify` is set: then the
// handshake fails as it does for a real client that does not trust the server's certificate.
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

export interface ClientJob {
  readonly proto: 'imap' | 'pop3' | 'sieve' | 'smtp' | 'probe';
  /** TLS from the first byte, or after the protocol's STARTTLS; none when absent. */
  readonly tls?: 'implicit' | 'starttls';
  /** Verify the server's certificate (the lab's is self-signed: the handshake then fails). */
  readonly verify?: boolean;
  /** Speak plaintext to an implicit-TLS port (a client with TLS switched off): the server's handshake fails. */
  readonly plainOnTls?: boolean;
  readonly host: string;
  readonly port?: number;
  readonly local?: string;
  readonly logins?: readonly { readonly user: string; readonly pass: string }[];
  /** Connect timeout: a dropped SYN shows up as "timeout". */
  readonly connectMs?: number;
  /** How long to wait for each server reply (a ban landing mid-session leaves the client waiting). */
  readonly replyMs?: number;
}

export interface ClientResult { connect: 'open' | 'timeout' | 'refused' | 'error'; results: ('ok' | 'fail' | 'error')[]; detail?: string; tls?: 'ok' | 'failed' }

class Lines {
  private buf = '';
  private waiters: ((l: string | undefined) => void)[] = [];
  private queue: (string | undefined)[] = [];
  constructor(s: Socket) {
    s.setEncoding('utf8');
    s.on('data', this.onData);
    s.on('close', () => this.push(undefined));
    s.on('error', () => this.push(undefined));
  }
  private readonly onData = (d: string): void => {
    this.buf += d;
    let i;
    while ((i = this.buf.indexOf('\n')) >= 0) { this.push(this.buf.slice(0, i).replace(/\r$/, '')); this.buf = this.buf.slice(i + 1); }
  };
  /** Stops reading `s` (before it is handed to TLS). */
  detach(s: Socket): void { s.removeListener('data', this.onData); s.removeAllListeners('close'); s.removeAllListeners('error'); }
  private push(l: string | undefined): void { const w = this.waiters.shift(); if (w) w(l); else this.queue.push(l); }
  next(ms = 60_000): Promise<string | undefined> {
    if (this.queue.length) return Promise.resolve(this.queue.shift());
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(undefined), ms);
      this.waiters.push((l) => { clearTimeout(t); resolve(l); });
    });
  }
}

function open(job: ClientJob, port: number): Promise<{ s?: Socket; state: ClientResult['connect']; detail?: string }> {
  return new Promise((resolve) => {
    const s = connect({ host: job.host, port, ...(job.local ? { localAddress: job.local } : {}) });
    const t = setTimeout(() => { s.destroy(); resolve({ state: 'timeout' }); }, job.connectMs ?? 5000);
    s.once('connect', () => { clearTimeout(t); resolve({ s, state: 'open' }); });
    s.once('error', (e: NodeJS.ErrnoException) => { clearTimeout(t); resolve({ state: e.code === 'ECONNREFUSED' ? 'refused' : 'error', detail: String(e.code ?? e.message) }); });
  });
}

const DEFAULT_PORT: Record<ClientJob['proto'], number> = { imap: 143, pop3: 110, sieve: 4190, smtp: 25, probe: 25 };

/** Reads lines until one satisfies `done`; returns it (undefined on close or timeout). */
async function until(lines: Lines, done: (l: string) => boolean, ms: number): Promise<string | undefined> {
  for (;;) {
    const l = await lines.next(ms);
    if (l === undefined || done(l)) return l;
  }
}

/** The protocol's STARTTLS dialogue on a plain connection; true when the server said go. */
async function startTls(job: ClientJob, s: Socket, lines: Lines, ms: number): Promise<boolean> {
  switch (job.proto) {
    case 'imap': s.write('s0 STARTTLS\r\n'); return (await until(lines, (l) => l.startsWith('s0 '), ms))?.startsWith('s0 OK') ?? false;
    case 'pop3': s.write('STLS\r\n'); return (await lines.next(ms))?.startsWith('+OK') ?? false;
    case 'sieve': s.write('STARTTLS\r\n'); return (await until(lines, (l) => /^(OK|NO|BYE)\b/.test(l), ms))?.startsWith('OK') ?? false;
    case 'smtp':
      s.write('EHLO tls-client.test\r\n');
      if (!(await until(lines, (l) => /^\d{3} /.test(l), ms))?.startsWith('250')) return false;
      s.write('STARTTLS\r\n');
      return (await lines.next(ms))?.startsWith('220') ?? false;
    default: return false;
  }
}

/** Wraps the connected `s` in TLS; resolves with the TLS socket, or the handshake's error. */
function handshake(job: ClientJob, s: Socket): Promise<{ t?: Socket; err?: string }> {
  return new Promise((resolve) => {
    const t = tlsConnect({ socket: s, rejectUnauthorized: job.verify === true, servername: 'mx.test' });
    const timer = setTimeout(() => { t.destroy(); resolve({ err: 'handshake timeout' }); }, job.connectMs ?? 10_000);
    t.once('secureConnect', () => { clearTimeout(timer); resolve({ t }); });
    t.once('error', (e: NodeJS.ErrnoException) => { clearTimeout(timer); t.destroy(); resolve({ err: String(e.code ?? e.message) }); });
  });
}

export async function runJob(job: ClientJob): Promise<ClientResult> {
  const port = job.port ?? DEFAULT_PORT[job.proto];
  const o = await open(job, port);
  const res: ClientResult = { connect: o.state, results: [], ...(o.detail ? { detail: o.detail } : {}) };
  if (!o.s) return res;
  let s: Socket = o.s;
  if (job.proto === 'probe') { s.destroy(); return res; }
  const wait = job.replyMs ?? 60_000;
  let lines: Lines;
  if (job.plainOnTls) {
    // What a mail client set to port 993 with TLS off sends first; the server reads it as a TLS record.
    s.write(job.proto === 'smtp' ? 'EHLO plain.client.test\r\n' : job.proto === 'pop3' ? 'CAPA\r\n' : 'a1 CAPABILITY\r\n');
    const closed = await new Promise<boolean>((resolve) => {
      const t = setTimeout(() => resolve(false), job.replyMs ?? 15_000);
      s.on('data', () => { /* the server's TLS alert, if any */ });
      s.once('close', () => { clearTimeout(t); resolve(true); });
    });
    s.destroy();
    if (closed) res.tls = 'failed';
    else res.detail = 'the server kept the connection open';
    return res;
  }
  if (job.tls === 'implicit') {
    // The TCP connect above proved the port is open; TLS goes over that same connection.
    const h = await handshake(job, s);
    if (!h.t) { res.tls = 'failed'; res.detail = h.err ?? 'handshake failed'; return res; }
    res.tls = 'ok';
    s = h.t;
    lines = new Lines(s);
    if (!(await greeting(job, lines))) { s.destroy(); res.detail = 'no greeting'; return res; }
  } else {
    lines = new Lines(s);
    if (!(await greeting(job, lines))) { s.destroy(); res.detail = 'no greeting'; return res; }
    if (job.tls === 'starttls') {
      if (!(await startTls(job, s, lines, wait))) { s.destroy(); res.detail = 'STARTTLS refused'; return res; }
      lines.detach(s);
      const h = await handshake(job, s);
      if (!h.t) { res.tls = 'failed'; res.detail = h.err ?? 'handshake failed'; return res; }
      res.tls = 'ok';
      s = h.t;
      lines = new Lines(s);
      // ManageSieve repeats its capabilities after STARTTLS.
      if (job.proto === 'sieve' && !(await until(lines, (l) => /^(OK|NO|BYE)\b/.test(l), wait))) { s.destroy(); res.detail = 'no capabilities after STARTTLS'; return res; }
    }
  }
  if (job.proto === 'smtp') { s.write('QUIT\r\n'); await lines.next(5000); s.destroy(); return res; }
  let tag = 0;
  for (const l of job.logins ?? []) {
    let verdict: 'ok' | 'fail' | 'error' = 'error';
    if (job.proto === 'imap') {
      const t = `a${++tag}`;
      s.write(`${t} LOGIN ${quote(l.user)} ${quote(l.pass)}\r\n`);
      const r = await until(lines, (x) => x.startsWith(`${t} `), wait);
      if (r !== undefined) verdict = r.startsWith(`${t} OK`) ? 'ok' : 'fail';
    } else if (job.proto === 'sieve') {
      s.write(`AUTHENTICATE "PLAIN" "${Buffer.from(`\0${l.user}\0${l.pass}`).toString('base64')}"\r\n`);
      const r = await until(lines, (x) => /^(OK|NO|BYE)\b/.test(x), wait);
      if (r !== undefined) verdict = r.startsWith('OK') ? 'ok' : 'fail';
    } else {
      s.write(`USER ${l.user}\r\n`);
      const u = await lines.next(wait);
      if (u?.startsWith('+OK')) {
        s.write(`PASS ${l.pass}\r\n`);
        const p = await lines.next(wait);
        verdict = p === undefined ? 'error' : p.startsWith('+OK') ? 'ok' : 'fail';
      } else if (u?.startsWith('-ERR')) {
        // Refused before a password was asked for (plaintext USER without TLS): the server's "no".
        verdict = 'fail';
      }
    }
    res.results.push(verdict);
    if (verdict !== 'fail') break;
  }
  s.write(job.proto === 'imap' ? `a${++tag} LOGOUT\r\n` : job.proto === 'sieve' ? 'LOGOUT\r\n' : 'QUIT\r\n');
  while ((await lines.next(Math.min(wait, 5000))) !== undefined) { /* read to close */ }
  s.destroy();
  return res;
}

/** The server's greeting: one line (IMAP, POP3), or up to the final line (SMTP 220, ManageSieve OK). */
async function greeting(job: ClientJob, lines: Lines): Promise<string | undefined> {
  if (job.proto === 'smtp') return until(lines, (l) => /^\d{3} /.test(l), 15_000);
  if (job.proto === 'sieve') return until(lines, (l) => /^(OK|NO|BYE)\b/.test(l), 15_000);
  return lines.next(15_000);
}

const quote = (x: string): string => `"${x.replace(/["\\]/g, '\\$&')}"`;

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!) && process.argv[2]) {
  const job = JSON.parse(process.argv[2]) as ClientJob;
  runJob(job).then((r) => { process.stdout.write(`${JSON.stringify(r)}\n`); }, (e: unknown) => { process.stdout.write(`${JSON.stringify({ connect: 'error', results: [], detail: String(e) })}\n`); });
}
