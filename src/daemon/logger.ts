// The daemon's logger: pino JSON lines on stdout (journald stores them as they are), or
// pino-pretty's colored lines when stdout is a terminal. Synchronous in both cases, so that the
// last lines before an exit are never lost.
// pino-pretty is a dev dependency (14 packages only a terminal needs): loaded when present, JSON
// lines when not (the .deb/.rpm and `npm install --omit=dev` leave it out).
import { createRequire } from 'node:module';
import { pino, type DestinationStream, type Logger } from 'pino';
import type { PrettyOptions } from 'pino-pretty';
import type { Writable } from 'node:stream';

export type { Logger } from 'pino';
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Pretty output; default: when stdout is a TTY. */
  readonly pretty?: boolean;
  /** Where lines go; default stdout. */
  readonly destination?: Writable;
}

export function createLogger(opts: LoggerOptions): Logger {
  const base = {
    level: opts.level,
    base: { pid: process.pid },
    // Attacker text (user names, log lines in evidence) is logged as JSON strings: pino escapes
    // control characters, so a crafted username cannot forge a log line.
    formatters: { level: (label: string) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
  const wantPretty = opts.pretty ?? (opts.destination === undefined && process.stdout.isTTY === true);
  const pretty = wantPretty ? loadPretty() : undefined;
  if (pretty) {
    return pino(base, pretty({ colorize: true, sync: true, translateTime: 'SYS:standard', ignore: 'pid', destination: opts.destination ?? 1 }));
  }
  return pino(base, opts.destination ?? pino.destination({ dest: 1, sync: true }));
}

type PrettyFactory = (o: PrettyOptions) => DestinationStream;

/**
 * pino-pretty's factory, or undefined when it is not installed. require, not import(): createLogger
 * is synchronous, and pino-pretty is CommonJS. `req` is for tests.
 */
export function loadPretty(req: (id: string) => unknown = createRequire(import.meta.url)): PrettyFactory | undefined {
  try {
    const m = req('pino-pretty') as PrettyFactory | { default: PrettyFactory };
    return typeof m === 'function' ? m : m.default;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'MODULE_NOT_FOUND') return undefined;
    throw e;
  }
}
