// One text line (BSD syslog, RFC 3339 syslog, RFC 5424, or a daemon's own log file) → LogEvent.
// Never throws: a line with no recognisable header becomes a headerless event (program ""), which
// only rules marked `files: true` look at.
import type { LogEvent, Origin } from '../types.js';
import {
  BSD_TS, RFC3339_TS, TAI64N_TS, bsdTime, innerTimestamp, leadingTimestamp, rfc3339Time, tai64nTime,
} from './timestamp.js';
import { parseRfc5424 } from './rfc5424.js';

/** `<PRI>` at the start of a network syslog message. */
const PRI = /<(\d{1,3})>/y;
/** A BSD facility/priority word some syslogds print after the date: `<mail.info> `. */
const FACPRI = /<[a-z0-9]+\.[a-z]+> /y;
/** A host name (no blanks). */
const HOST = /([^\s]{1,255}) +/y;
/**
 * A tag: `prog: `, `prog[123]: `, `prog [123]: ` (SOGo), `prog(123): ` (Dovecot's own log).
 * No blanks, brackets or colons inside the name.
 */
const TAG = /([^\s[\]:()]{1,128})(?: ?\[(\d{1,10})\]|\((\d{1,10})\))?:(?: |$)/y;

export interface ParseOptions {
  /** Reference time (ms) for dates without a year, and the time of lines with no timestamp. */
  readonly now: number;
}

function sticky(re: RegExp, s: string, at: number): RegExpExecArray | null {
  re.lastIndex = at;
  return re.exec(s);
}

interface Tag { program: string; pid?: number; end: number }

function tagAt(s: string, at: number): Tag | undefined {
  const m = sticky(TAG, s, at);
  if (!m) return undefined;
  const pid = m[2] ?? m[3];
  const end = at + m[0].length;
  return pid === undefined ? { program: m[1]!, end } : { program: m[1]!, pid: Number(pid), end };
}

function event(time: number, host: string, tag: Tag | undefined, message: string, origin: Origin): LogEvent {
  if (!tag) return { time, host, program: '', message, origin };
  if (tag.pid === undefined) return { time, host, program: tag.program, message, origin };
  return { time, host, program: tag.program, pid: tag.pid, message, origin };
}

/** A line with no syslog header: the daemon's own log format. */
function headerless(s: string, at: number, origin: Origin, opts: ParseOptions): LogEvent {
  const rest = at === 0 ? s : s.slice(at);
  const lead = leadingTimestamp(rest, opts.now);
  if (lead) return event(lead.time, '', undefined, rest.slice(lead.end), origin);
  return event(innerTimestamp(rest) ?? opts.now, '', undefined, rest, origin);
}

export function parseLine(s: string, origin: Origin, opts: ParseOptions): LogEvent {
  let at = 0;
  const pri = s.charCodeAt(0) === 60 /* < */ ? sticky(PRI, s, 0) : null;
  if (pri) {
    at = pri[0].length;
    // RFC 5424: "<PRI>1 " — a version number right after the PRI.
    if (s.charCodeAt(at) === 49 /* 1 */ && s.charCodeAt(at + 1) === 32) {
      const ev = parseRfc5424(s, at + 2, origin, opts.now);
      if (ev) return ev;
    }
  }
  const c = s.charCodeAt(at);
  let time: number;
  let m: RegExpExecArray | null;
  let hostOptional: boolean;
  if (c >= 65 && c <= 90 && (m = sticky(BSD_TS, s, at))) {
    time = bsdTime(m, opts.now);
    hostOptional = true;
  } else if (c >= 48 && c <= 57 && (m = sticky(RFC3339_TS, s, at))) {
    time = rfc3339Time(m);
    hostOptional = false;
  } else if (c === 64 /* @ */ && (m = sticky(TAI64N_TS, s, at))) {
    // multilog: no host, and the tag is optional.
    const t = tai64nTime(m);
    const tag = tagAt(s, at + m[0].length);
    return tag ? event(t, '', tag, s.slice(tag.end), origin) : event(t, '', undefined, s.slice(at + m[0].length), origin);
  } else {
    return headerless(s, at, origin, opts);
  }
  if (Number.isNaN(time)) return headerless(s, at, origin, opts);
  let p = at + m[0].length;
  const fp = sticky(FACPRI, s, p);
  if (fp) p += fp[0].length;
  // "date tag: msg" (no host; Dovecot's own log file, some BSD syslogds) before "date host tag: msg".
  if (hostOptional) {
    const tag = tagAt(s, p);
    if (tag) return event(time, '', tag, s.slice(tag.end), origin);
  }
  const h = sticky(HOST, s, p);
  if (h) {
    const tag = tagAt(s, p + h[0].length);
    if (tag) return event(time, h[1]!, tag, s.slice(tag.end), origin);
  }
  // A date but no tag: the daemon's own format (e.g. Horde's "date HORDE [error] ..."); keep the rest.
  return event(time, '', undefined, s.slice(p), origin);
}
