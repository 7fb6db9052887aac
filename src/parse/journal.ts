// journald entries → LogEvent. Entries come either as structured fields from a reader, or as one
// line of `journalctl -o json` (values may be a string, an array of values, a byte array, or null).
import type { JournalFields, LogEvent, Origin } from '../types.js';

const utf8 = new TextDecoder('utf-8', { fatal: false });

export function fromJournal(f: JournalFields, origin: Origin, now: number): LogEvent | undefined {
  const message = f.MESSAGE;
  if (message === undefined) return undefined;
  const us = f.__REALTIME_TIMESTAMP;
  const time = us && /^\d{1,20}$/.test(us) ? Math.floor(Number(us) / 1000) : now;
  const pidText = f.SYSLOG_PID ?? f._PID;
  const pid = pidText && /^\d{1,10}$/.test(pidText) ? Number(pidText) : undefined;
  const base = {
    time,
    host: f._HOSTNAME ?? '',
    program: f.SYSLOG_IDENTIFIER ?? f._COMM ?? '',
    message,
    origin: f.__CURSOR && !origin.cursor ? { ...origin, cursor: f.__CURSOR } : origin,
  };
  return pid === undefined ? base : { ...base, pid };
}

/** One JSON value of `journalctl -o json` as text, or undefined when it cannot be one. */
function jsonValue(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (Array.isArray(v)) {
    if (v.length > 0 && v.every((x) => typeof x === 'number' && Number.isInteger(x) && x >= 0 && x < 256)) {
      return utf8.decode(Uint8Array.from(v as number[]));
    }
    // A field logged several times: the first value is the one syslog would have shown.
    for (const x of v) { const s = jsonValue(x); if (s !== undefined) return s; }
  }
  return undefined;
}

/** Parses one line of `journalctl -o json`. Returns undefined for anything that is not such an object. */
export function parseJournalJson(line: string): JournalFields | undefined {
  let obj: unknown;
  try {
    obj = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (obj === null || typeof obj !== 'object' || Array.isArray(obj)) return undefined;
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(obj as Record<string, unknown>)) {
    const s = jsonValue(v);
    if (s !== undefined) out[k] = s;
  }
  return out;
}
