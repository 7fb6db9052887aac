// Starts a real redis-server on a free loopback port in a temp dir, for the cluster tests.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export function haveRedis(): boolean {
  return spawnSync('redis-server', ['--version']).status === 0;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const a = s.address();
      s.close(() => (typeof a === 'object' && a ? resolve(a.port) : reject(new Error('no port'))));
    });
  });
}

export class RedisServer {
  proc: ChildProcess | undefined;
  readonly dir = mkdtempSync(join(tmpdir(), 'mj-redis-'));
  constructor(readonly port: number, private readonly extra: readonly string[] = []) {}

  get url(): string {
    return `redis://127.0.0.1:${this.port}`;
  }

  static async start(extra: readonly string[] = []): Promise<RedisServer> {
    const s = new RedisServer(await freePort(), extra);
    await s.up();
    return s;
  }

  /** (Re)starts the server on the same port and dir (appendonly keeps data across restarts). */
  async up(): Promise<void> {
    const p = spawn('redis-server', ['--port', String(this.port), '--bind', '127.0.0.1', '--dir', this.dir, '--save', '', '--appendonly', 'yes', ...this.extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.proc = p;
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const t = setTimeout(() => reject(new Error(`redis-server did not start within 30 s: ${out}`)), 30_000);
      p.stdout!.on('data', (b: Buffer) => {
        out += b.toString();
        if (out.includes('Ready to accept connections')) {
          clearTimeout(t);
          resolve();
        }
      });
      p.on('exit', (c) => {
        clearTimeout(t);
        reject(new Error(`redis-server exited ${c}: ${out}`));
      });
    });
    p.stdout!.resume();
    p.removeAllListeners('exit');
  }

  async down(): Promise<void> {
    const p = this.proc;
    if (!p || p.exitCode !== null) return;
    await new Promise<void>((r) => {
      p.once('exit', () => r());
      p.kill('SIGTERM');
    });
    this.proc = undefined;
  }

  async destroy(): Promise<void> {
    await this.down();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
