// The daemon's end of the control socket. Commands are pluggable (`handle(cmd, fn)`); the daemon
// binds its typed ControlHandlers with `bindHandlers`, which validates arguments first so that a
// bad address or duration never reaches the state stage.
import { chmodSync, lstatSync, mkdirSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { MailjailError } from '../types.js';
import { MAX_REQUEST_BYTES, PROTOCOL_VERSION, type ControlHandlers, type ControlRequest, type ControlResponse } from './protocol.js';
import { parseTarget } from './target.js';

export type RawHandler = (args: Readonly<Record<string, unknown>>) => Promise<unknown>;

export interface ControlServerOptions {
  readonly path: string;
  /** Called for handler failures that are not MailjailErrors (bugs), for the log. */
  readonly onError?: (err: unknown, cmd: string) => void;
  readonly maxConnections?: number;
  /** Close a connection idle this long (ms). */
  readonly idleTimeoutMs?: number;
}

export class ControlServer {
  private readonly handlers = new Map<string, RawHandler>();
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly opts: ControlServerOptions) {}

  handle(cmd: string, fn: RawHandler): this {
    this.handlers.set(cmd, fn);
    return this;
  }

  get path(): string {
    return this.opts.path;
  }

  /** Binds the socket (mode 0600). Refuses to take over a socket another live daemon answers on. */
  async listen(): Promise<void> {
    const path = this.opts.path;
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    await removeStale(path);
    const server = createServer((s) => this.onConnection(s));
    server.maxConnections = this.opts.maxConnections ?? 32;
    // The umask covers the moment between bind() and chmod(): nobody else may connect meanwhile.
    const old = process.umask(0o177);
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => {
          server.off('error', reject);
          resolve();
        });
      });
    } finally {
      process.umask(old);
    }
    chmodSync(path, 0o600);
    this.server = server;
  }

  async close(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    if (!server) return;
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    try {
      unlinkSync(this.opts.path);
    } catch {
      // already gone
    }
  }

  private onConnection(sock: Socket): void {
    this.sockets.add(sock);
    sock.setTimeout(this.opts.idleTimeoutMs ?? 30_000, () => sock.destroy());
    sock.on('close', () => this.sockets.delete(sock));
    sock.on('error', () => sock.destroy());
    let buf = '';
    let chain = Promise.resolve();
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (line.trim() === '') continue;
        // Requests on one connection are answered in order.
        chain = chain.then(() => this.answer(line)).then((resp) => {
          if (!sock.destroyed) sock.write(`${JSON.stringify(resp)}\n`);
        });
      }
      if (buf.length > MAX_REQUEST_BYTES) {
        const resp: ControlResponse = { v: PROTOCOL_VERSION, id: 0, ok: false, error: { code: 'MJ_CTL_TOO_LARGE', message: `request over ${MAX_REQUEST_BYTES} bytes` } };
        sock.end(`${JSON.stringify(resp)}\n`);
        buf = '';
      }
    });
  }

  private async answer(line: string): Promise<ControlResponse> {
    let req: ControlRequest;
    try {
      req = JSON.parse(line) as ControlRequest;
    } catch {
      return fail(0, 'MJ_CTL_BAD_REQUEST', 'request is not valid JSON');
    }
    if (typeof req !== 'object' || req === null) return fail(0, 'MJ_CTL_BAD_REQUEST', 'request must be a JSON object');
    const id = Number.isSafeInteger(req.id) ? req.id : 0;
    if (req.v !== PROTOCOL_VERSION) {
      return fail(id, 'MJ_CTL_VERSION', `protocol version ${JSON.stringify(req.v)} not supported; this daemon speaks version ${PROTOCOL_VERSION} (is the CLI from another mailjail release?)`);
    }
    const fn = typeof req.cmd === 'string' ? this.handlers.get(req.cmd) : undefined;
    if (!fn) return fail(id, 'MJ_CTL_UNKNOWN_COMMAND', `unknown command ${JSON.stringify(req.cmd)}; known: ${[...this.handlers.keys()].join(', ')}`);
    const args = typeof req.args === 'object' && req.args !== null && !Array.isArray(req.args) ? req.args : {};
    try {
      const result = await fn(args);
      return { v: PROTOCOL_VERSION, id, ok: true, result: result ?? null };
    } catch (e) {
      if (e instanceof MailjailError) return fail(id, e.code, e.message.startsWith(`${e.code}: `) ? e.message.slice(e.code.length + 2) : e.message);
      this.opts.onError?.(e, req.cmd);
      return fail(id, 'MJ_CTL_INTERNAL', `internal error: ${(e as Error)?.message ?? String(e)}`);
    }
  }
}

function fail(id: number, code: string, message: string): ControlResponse {
  return { v: PROTOCOL_VERSION, id, ok: false, error: { code, message } };
}

/** A leftover socket from a crashed daemon is removed; a live one (another daemon) is an error. */
async function removeStale(path: string): Promise<void> {
  let st;
  try {
    st = lstatSync(path);
  } catch {
    return;
  }
  if (!st.isSocket()) throw new MailjailError('MJ_CTL_PATH', `${path} exists and is not a socket; refusing to replace it`);
  const alive = await new Promise<boolean>((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => { c.destroy(); resolve(true); });
    c.once('error', () => resolve(false));
  });
  if (alive) throw new MailjailError('MJ_CTL_IN_USE', `another mailjail daemon is answering on ${path}`);
  unlinkSync(path);
}

/** Registers the daemon's typed commands, validating arguments before they reach the handlers. */
export function bindHandlers(server: ControlServer, h: ControlHandlers): ControlServer {
  return server
    .handle('status', () => h.status())
    .handle('bans', async () => ({ bans: await h.bans() }))
    .handle('ban', (args) => {
      const target = parseTarget(args['target']);
      const policy = args['policy'];
      if (policy !== undefined && (typeof policy !== 'string' || policy === '')) {
        throw new MailjailError('MJ_CTL_BAD_REQUEST', 'policy must be a non-empty string');
      }
      const d = args['durationMs'];
      if (d !== undefined && (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 1000)) {
        throw new MailjailError('MJ_CTL_BAD_DURATION', 'duration must be at least 1s');
      }
      return h.ban({ target, ...(policy !== undefined ? { policy } : {}), ...(d !== undefined ? { durationMs: d } : {}) });
    })
    .handle('unban', (args) => h.unban({ target: parseTarget(args['target']) }))
    .handle('reload', () => h.reload());
}
