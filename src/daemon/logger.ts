// The daemon's logger: pino JSON lines on stdout (journald stores them as they are), or
// pino-pretty's colored lines when stdout is a terminal. Synchronous in both cases, so that the
// last lines before an exit are never lost.
import { pino, type Logger } from 'pino';
import pretty from 'pino-pretty';
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
  if (wantPretty) {
    return pino(base, pretty({ colorize: true, sync: true, translateTime: 'SYS:standard', ignore: 'pid', destination: opts.destination ?? 1 }));
  }
  return pino(base, opts.destination ?? pino.destination({ dest: 1, sync: true }));
}
