// Waiting in tests: poll for an event, a log line or a status value with a deadline, never sleep a
// fixed time and hope it happened by then (a loaded 2-core CI machine makes every guess wrong).
// On timeout the error names what was awaited and the last value seen, so a red run says why.
import { inspect } from 'node:util';

export interface WaitOptions {
  /** Give up after this long (default 10 s: generous, because a loaded machine is slow). */
  readonly timeoutMs?: number;
  /** Pause between polls (default 25 ms). */
  readonly intervalMs?: number;
  /** What is awaited, for the timeout message ("ban line in collector 1's log"). */
  readonly what?: string;
  /** What to report as the last observed value (default: the predicate's last result). */
  readonly observe?: () => unknown;
}

const pause = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Polls `predicate` until it returns a truthy value, and returns that value. A predicate that
 * throws counts as "not yet" (its error is the last observation). Throws after the deadline.
 */
export async function waitFor<T>(
  predicate: () => T | Promise<T>,
  opts: WaitOptions = {},
): Promise<Exclude<T, false | 0 | '' | null | undefined>> {
  const { timeoutMs = 10_000, intervalMs = 25, what = predicate.toString() } = opts;
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await predicate();
      if (v) return v as Exclude<T, false | 0 | '' | null | undefined>;
      last = v;
    } catch (e) {
      last = e instanceof Error ? `threw: ${e.message}` : e;
    }
    if (Date.now() >= end) {
      if (opts.observe) {
        try { last = await opts.observe(); } catch (e) { last = `observe threw: ${(e as Error).message}`; }
      }
      const shown = typeof last === 'string' ? last.slice(-2000) : inspect(last, { depth: 4, breakLength: 120 }).slice(-2000);
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; last observed: ${shown}`);
    }
    await pause(intervalMs);
  }
}

/** Waits for `emitter` to emit `event` (e.g. a child's 'exit'), with a deadline. */
export function waitForEvent(
  emitter: NodeJS.EventEmitter,
  event: string,
  opts: { readonly timeoutMs?: number; readonly what?: string } = {},
): Promise<unknown[]> {
  const { timeoutMs = 10_000, what = `event "${event}"` } = opts;
  return new Promise((resolve, reject) => {
    const onEvent = (...args: unknown[]): void => {
      clearTimeout(timer);
      resolve(args);
    };
    const timer = setTimeout(() => {
      emitter.off(event, onEvent);
      reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}`));
    }, timeoutMs);
    emitter.once(event, onEvent);
  });
}
