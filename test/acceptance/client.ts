// A tiny IMAP / POP3 client and TCP probe, run inside a client network namespace:
//   ip netns exec NS node client.js '{"proto":"imap","host":"192.0.2.1","logins":[{"user":"u","pass":"p"}]}'
// Prints one JSON line: {"connect":"open"|"timeout"|"refused"|"error","results":["fail","ok",...]}.
// One connection per run; every LOGIN (IMAP) or USER+PASS (POP3) is one attempt; it stops after a success.
import { connect } from 'node:net';
import type { Socket } from 'node:net';

export interface ClientJob {
  readonly proto: 'imap' | 'pop3' | 'probe';
  readonly host: string;
  readonly port?: number;
  readonly local?: string;
  readonly logins?: readonly { readonly user: string; readonly pass: string }[];
  /** Connect timeout: a dropped SYN shows up as "timeout". */
  readonly connectMs?: number;
  /** How long to wait for each server reply (a ban landing mid-session leaves the client waiting). */
  readonly replyMs?: number;
}

export interface ClientResult { connect: 'open' | 'timeout' | 'refused' | 'error'; results: ('ok' | 'fail' | 'error')[]; detail?: string }

class Lines {
  private buf = '';
  private waiters: ((l: string | undefined) => void)[] = [];
  private queue: (string | undefined)[] = [];
  constructor(s: Socket) {
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      this.buf += d;
      let i;
      while ((i = this.buf.indexOf('\n')) >= 0) { this.push(this.buf.slice(0, i).replace(/\r$/, '')); this.buf = this.buf.slice(i + 1); }
    });
    s.on('close', () => this.push(undefined));
    s.on('error', () => this.push(undefined));
  }
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

export async function runJob(job: ClientJob): Promise<ClientResult> {
  const port = job.port ?? (job.proto === 'imap' ? 143 : job.proto === 'pop3' ? 110 : 25);
  const o = await open(job, port);
  const res: ClientResult = { connect: o.state, results: [], ...(o.detail ? { detail: o.detail } : {}) };
  if (!o.s) return res;
  const s = o.s;
  if (job.proto === 'probe') { s.destroy(); return res; }
  const lines = new Lines(s);
  const wait = job.replyMs ?? 60_000;
  const greet = await lines.next(10_000);
  if (!greet) { s.destroy(); res.detail = 'no greeting'; return res; }
  let tag = 0;
  for (const l of job.logins ?? []) {
    let verdict: 'ok' | 'fail' | 'error' = 'error';
    if (job.proto === 'imap') {
      const t = `a${++tag}`;
      s.write(`${t} LOGIN ${quote(l.user)} ${quote(l.pass)}\r\n`);
      for (;;) {
        const r = await lines.next(wait);
        if (r === undefined) break;
        if (r.startsWith(`${t} `)) { verdict = r.startsWith(`${t} OK`) ? 'ok' : 'fail'; break; }
      }
    } else {
      s.write(`USER ${l.user}\r\n`);
      const u = await lines.next(wait);
      if (u?.startsWith('+OK')) {
        s.write(`PASS ${l.pass}\r\n`);
        const p = await lines.next(wait);
        verdict = p === undefined ? 'error' : p.startsWith('+OK') ? 'ok' : 'fail';
      }
    }
    res.results.push(verdict);
    if (verdict !== 'fail') break;
  }
  s.write(job.proto === 'imap' ? `a${++tag} LOGOUT\r\n` : 'QUIT\r\n');
  while ((await lines.next(Math.min(wait, 5000))) !== undefined) { /* read to close */ }
  s.destroy();
  return res;
}

const quote = (x: string): string => `"${x.replace(/["\\]/g, '\\$&')}"`;

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!) && process.argv[2]) {
  const job = JSON.parse(process.argv[2]) as ClientJob;
  runJob(job).then((r) => { process.stdout.write(`${JSON.stringify(r)}\n`); }, (e: unknown) => { process.stdout.write(`${JSON.stringify({ connect: 'error', results: [], detail: String(e) })}\n`); });
}
