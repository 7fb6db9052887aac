// The parse stage: RawRecord → LogEvent. Pure; a record that cannot be read is a counted error,
// never an exception.
import type { LogEvent, RawRecord } from '../types.js';
import { fromJournal, parseJournalJson } from './journal.js';
import { parseLine } from './syslog.js';

export type LineFormat = 'auto' | 'syslog' | 'rfc5424' | 'journal-json';
export const LINE_FORMATS: readonly LineFormat[] = ['auto', 'syslog', 'rfc5424', 'journal-json'];

/** Lines longer than this are skipped (and counted): no legitimate mail log line comes close. */
export const MAX_LINE = 64 * 1024;

export type ParseResult = { readonly event: LogEvent } | { readonly error: string };

export interface ParseContext {
  readonly format: LineFormat;
  /** Reference time in ms: "now" live, or the replay's reference. */
  readonly now: number;
}

export function parseRecord(r: RawRecord, ctx: ParseContext): ParseResult {
  if (r.kind === 'journal') {
    const ev = fromJournal(r.fields, r.origin, ctx.now);
    return ev ? { event: ev } : { error: 'journal entry without MESSAGE' };
  }
  const text = r.text;
  if (text.length > MAX_LINE) return { error: `line longer than ${MAX_LINE} characters` };
  const now = r.received ?? ctx.now;
  const json = ctx.format === 'journal-json' || (ctx.format === 'auto' && text.charCodeAt(0) === 123 /* { */);
  if (json) {
    const f = parseJournalJson(text);
    if (!f) return { error: 'not a journal JSON object' };
    const ev = fromJournal(f, r.origin, now);
    return ev ? { event: ev } : { error: 'journal entry without MESSAGE' };
  }
  if (ctx.format === 'rfc5424' && !/^<\d{1,3}>1 /.test(text)) return { error: 'not an RFC 5424 message' };
  return { event: parseLine(text, r.origin, { now }) };
}

export { parseLine } from './syslog.js';
export { fromJournal, parseJournalJson } from './journal.js';
