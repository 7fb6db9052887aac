// Shared helpers for daemon tests: a source fed by the test, a log sink, a config in a temp dir.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { configFromTexts, type MailjailConfig } from '../../src/daemon/config.js';
import type { RawRecord, Source } from '../../src/types.js';
import { waitFor as waitUntil } from '../helpers/wait.js';

export const RULES = fileURLToPath(new URL('../../../test/fixtures/rules-good/', import.meta.url));

export const sasl = (ip: string, n = 0): string =>
  `Nov  4 00:00:${String(n % 60).padStart(2, '0')} mx1 postfix/smtpd[1234]: warning: unknown[${ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`;

/** A live source the test pushes lines into. `failFirst` makes its first run throw (supervisor test). */
export class PushSource implements Source {
  private q: RawRecord[][] = [];
  private wake: (() => void) | undefined;
  runs = 0;
  constructor(readonly name: string, private failFirst = false) {}

  push(lines: readonly string[]): void {
    this.q.push(lines.map((text) => ({ kind: 'line' as const, text, origin: { kind: 'syslog-tcp' as const, name: this.name }, received: Date.now() })));
    this.wake?.();
  }

  /** Journal entries (as the journald source hands them on) with their journald time. */
  pushJournal(entries: readonly { message: string; time: number }[]): void {
    this.q.push(entries.map((e, i) => ({
      kind: 'journal' as const,
      fields: {
        MESSAGE: e.message, SYSLOG_IDENTIFIER: 'postfix/smtpd', _PID: '1234', _HOSTNAME: 'mx1',
        __REALTIME_TIMESTAMP: String(e.time * 1000), __CURSOR: `s=1;i=${i}`,
      },
      origin: { kind: 'journald' as const, name: this.name, cursor: `s=1;i=${i}` },
    })));
    this.wake?.();
  }

  async *records(signal: AbortSignal): AsyncIterable<readonly RawRecord[]> {
    this.runs++;
    if (this.failFirst && this.runs === 1) throw new Error('listener exploded');
    while (!signal.aborted) {
      const b = this.q.shift();
      if (b) {
        yield b;
        continue;
      }
      await new Promise<void>((r) => {
        this.wake = r;
        signal.addEventListener('abort', () => r(), { once: true });
      });
      this.wake = undefined;
    }
  }
}

export function logSink(): { stream: Writable; lines: () => Record<string, unknown>[]; raw: () => string } {
  const chunks: string[] = [];
  const stream = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } });
  return {
    stream,
    raw: () => chunks.join(''),
    lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>),
  };
}

export function tempDir(prefix = 'mj-daemon-'): string {
  return mkdtempSync(join(tmpdir(), prefix));
}

export function testConfig(dir: string, policy = 'maxretry: 5\n    findtime: 10m\n    bantime: 1h', extra = ''): MailjailConfig {
  return configFromTexts([{
    file: join(dir, 'mailjail.yaml'),
    text: `logLevel: debug
rules: { dir: ${RULES} }
state: { dir: ${join(dir, 'state')} }
sources:
  feed: { type: syslog-tcp, listen: "127.0.0.1:6514", allow: [127.0.0.0/8] }
policies:
  auth:
    ${policy}
firewall: { backend: dry-run }
metrics: { enabled: false }
control: { socket: ${join(dir, 'control.sock')} }
${extra}`,
  }]);
}

/** Polls `cond` every 10 ms until it holds; throws after `ms`, naming `what` (see test/helpers/wait.ts). */
export async function waitFor(cond: () => boolean | Promise<boolean>, ms = 10_000, what?: string): Promise<void> {
  await waitUntil(cond, { timeoutMs: ms, intervalMs: 10, ...(what !== undefined ? { what } : {}) });
}
