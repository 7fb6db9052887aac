// The CLI's end of the control socket: one request, one response, then close.
import { createConnection } from 'node:net';
import { MailjailError } from '../types.js';
import { MAX_RESPONSE_BYTES, PROTOCOL_VERSION, type ControlResponse } from './protocol.js';

export const DEFAULT_SOCKET = '/run/mailjail/control.sock';

let nextId = 1;

/** Sends one command; resolves with its result, or throws the daemon's MailjailError (same code). */
export function controlRequest(
  path: string,
  cmd: string,
  args: Readonly<Record<string, unknown>> = {},
  opts: { timeoutMs?: number } = {},
): Promise<unknown> {
  const id = nextId++;
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    let done = false;
    const finish = (err: Error | undefined, value?: unknown): void => {
      if (done) return;
      done = true;
      sock.destroy();
      if (err) reject(err);
      else resolve(value);
    };
    sock.setTimeout(opts.timeoutMs ?? 15_000, () =>
      finish(new MailjailError('MJ_CTL_TIMEOUT', `no answer from the daemon on ${path} within ${(opts.timeoutMs ?? 15_000) / 1000}s`)));
    sock.on('connect', () => sock.write(`${JSON.stringify({ v: PROTOCOL_VERSION, id, cmd, args })}\n`));
    sock.on('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT' || e.code === 'ECONNREFUSED') {
        finish(new MailjailError('MJ_CTL_UNREACHABLE', `cannot reach the mailjail daemon at ${path} (${e.code}): is it running? (systemctl status mailjail)`));
      } else if (e.code === 'EACCES' || e.code === 'EPERM') {
        finish(new MailjailError('MJ_CTL_DENIED', `permission denied on ${path}: the control socket is root-only, run with sudo`));
      } else {
        finish(new MailjailError('MJ_CTL_IO', `control socket ${path}: ${e.message}`, { cause: e }));
      }
    });
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      if (buf.length > MAX_RESPONSE_BYTES) return finish(new MailjailError('MJ_CTL_TOO_LARGE', 'response too large'));
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let resp: ControlResponse;
      try {
        resp = JSON.parse(buf.slice(0, nl)) as ControlResponse;
      } catch {
        return finish(new MailjailError('MJ_CTL_BAD_RESPONSE', 'the daemon sent something that is not JSON'));
      }
      if (resp.v !== PROTOCOL_VERSION) {
        return finish(new MailjailError('MJ_CTL_VERSION', `daemon speaks protocol version ${String(resp.v)}, this CLI ${PROTOCOL_VERSION}`));
      }
      if (resp.ok) finish(undefined, resp.result);
      else finish(new MailjailError(resp.error.code, resp.error.message));
    });
    sock.on('end', () => finish(new MailjailError('MJ_CTL_BAD_RESPONSE', 'the daemon closed the connection without answering')));
  });
}
