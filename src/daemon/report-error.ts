// How CLI commands end on an error: one clear line (or the config's problem list) on stderr and
// the documented exit code, never a stack trace for a fault the admin can fix.
import { MailjailError } from '../types.js';
import { ControlRefusal } from '../control/client.js';
import { EXIT, exitCodeFor } from './exit-codes.js';

function reportError(e: unknown): number {
  if (e instanceof MailjailError) {
    process.stderr.write(`mailjail: ${e.message}\n`);
    return e instanceof ControlRefusal ? EXIT.REFUSED : exitCodeFor(e.code);
  }
  process.stderr.write(`mailjail: unexpected error: ${(e as Error)?.stack ?? String(e)}\n`);
  return exitCodeFor(undefined);
}

/** Wraps a commander action so that errors set process.exitCode instead of crashing. */
export function action<A extends unknown[]>(fn: (...args: A) => Promise<void> | void): (...args: A) => Promise<void> {
  return async (...args: A) => {
    try {
      await fn(...args);
    } catch (e) {
      process.exitCode = reportError(e);
    }
  };
}
