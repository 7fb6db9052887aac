// One text line (BSD syslog, RFC 3339 syslog, RFC 5424, or a daemon's own log file) → LogEvent.
// Never throws: a line with no recognisable header becomes a headerless event (program ""), which
// only rules marked `files: true` look at.
import type { LogEvent, Origin } from '../types.js';
import {
  BSD_TS, RFC3339_TS, TAI64N_TS, bsdTime, innerTimestamp, leadingTimestamp, minuteTime, monthIndex, rfc3339Time,
  tai64nTime, yearlessMinute,
} from './timestamp.js';
import type { YearlessMinute } from './timestamp.js';
import { parseRfc5424 } from './rfc5424.js';

/** `<PRI>` at the start of a network syslog message. */
const PRI = /<(\d{1,3})>/y;
/** A BSD facility/priority word some syslogds print after the date: `<mail.info> `. */
const FACPRI = /<[a-z0-9]+\.[a-z]+> /y;
export interface ParseOptions {
  /** Reference time (ms) for dates without a year, and the time of lines with no timestamp. */
  readonly now: number;
}

function sticky(re: RegExp, s: string, at: number): RegExpExecArray | null {
  re.lastIndex = at;
  return re.exec(s);
}

const isDigit = (c: number): boolean => c >= 48 && c <= 57;

// tagAt's results. Module state instead of a returned object: this runs once per line, and the
// parse stage is synchronous, so nothing can interleave.
let tagNameEnd = 0;
let tagPid = -1;
let tagEnd = 0;

/**
 * Whether a tag starts at `at`: `prog: `, `prog[123]: `, `prog [123]: ` (SOGo), `prog(123): `
 * (Dovecot's own log), with no blanks, brackets, parentheses or colons in the name. Scanned by hand.
 */
function tagAt(s: string, at: number): boolean {
  const n = Math.min(s.length, at + 128);
  let i = at;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 32 || c === 58 || c === 91 || c === 93 || c === 40 || c === 41 || c === 9) break;
  }
  if (i === at) return false;
  tagNameEnd = i;
  tagPid = -1;
  let c = s.charCodeAt(i);
  if (c === 32 && s.charCodeAt(i + 1) === 91) c = s.charCodeAt(++i);
  if (c === 91 || c === 40) {
    const close = c === 91 ? 93 : 41;
    const d0 = ++i;
    let pid = 0;
    while (i < d0 + 10 && isDigit(s.charCodeAt(i))) pid = pid * 10 + s.charCodeAt(i++) - 48;
    if (i === d0 || s.charCodeAt(i) !== close) return false;
    tagPid = pid;
    i++;
  }
  if (s.charCodeAt(i) !== 58 /* : */) return false;
  i++;
  if (i < s.length) {
    if (s.charCodeAt(i) !== 32) return false;
    i++;
  }
  tagEnd = i;
  return true;
}

// bsdEnd's results besides its return value: where the seconds digits are, and whether the date is
// the plain `Mmm dd hh:mm:ss` (no fraction, no year) that bsdTimeCached can take by the minute.
let bsdSecAt = 0;
let bsdPlain = false;

/**
 * End of a BSD timestamp `Mmm dd hh:mm:ss` (day space-padded or not, optional fraction and year)
 * and the blanks after it, or -1. Scanned by hand; the time itself is computed by bsdTimeCached.
 */
function bsdEnd(s: string, at: number): number {
  const up = s.charCodeAt(at);
  if (up < 65 || up > 90 || s.charCodeAt(at + 3) !== 32) return -1;
  let p = at + 4;
  if (s.charCodeAt(p) === 32) p++;
  if (!isDigit(s.charCodeAt(p))) return -1;
  p++;
  if (isDigit(s.charCodeAt(p))) p++;
  if (s.charCodeAt(p) !== 32) return -1;
  p++;
  if (!(isDigit(s.charCodeAt(p)) && isDigit(s.charCodeAt(p + 1)) && s.charCodeAt(p + 2) === 58 &&
    isDigit(s.charCodeAt(p + 3)) && isDigit(s.charCodeAt(p + 4)) && s.charCodeAt(p + 5) === 58 &&
    isDigit(s.charCodeAt(p + 6)) && isDigit(s.charCodeAt(p + 7)))) return -1;
  bsdSecAt = p + 6;
  p += 8;
  bsdPlain = true;
  if (s.charCodeAt(p) === 46 /* . */) { p++; while (isDigit(s.charCodeAt(p))) p++; bsdPlain = false; }
  if (s.charCodeAt(p) === 32 && isDigit(s.charCodeAt(p + 1)) && isDigit(s.charCodeAt(p + 4)) && s.charCodeAt(p + 5) === 32) { p += 5; bsdPlain = false; }
  if (s.charCodeAt(p) !== 32) return -1;
  while (s.charCodeAt(p) === 32) p++;
  return p;
}

// A plain date's time depends only on its month letters, day, hour, minute and second (and the
// reference): bsdKeys packs them into two numbers from the characters bsdEnd already checked, so
// the caches below compare numbers instead of text.
let keyMonth = 0;
let keyMinute = 0;

function bsdKeys(s: string, at: number): void {
  keyMonth = s.charCodeAt(at) * 4294967296 + s.charCodeAt(at + 1) * 65536 + s.charCodeAt(at + 2);
  const d1 = s.charCodeAt(bsdSecAt - 9); // day "14", " 4" or "4" ends right before " hh:"
  const day = (isDigit(d1) ? (d1 - 48) * 10 : 0) + s.charCodeAt(bsdSecAt - 8) - 48;
  const h = (s.charCodeAt(bsdSecAt - 6) - 48) * 10 + s.charCodeAt(bsdSecAt - 5) - 48;
  const mi = (s.charCodeAt(bsdSecAt - 3) - 48) * 10 + s.charCodeAt(bsdSecAt - 2) - 48;
  keyMinute = (day * 100 + h) * 100 + mi;
}

// Consecutive lines mostly share their second: remember the last one and its time.
let lastRef = NaN;
let lastMonth = -1;
let lastMinute = -1;
let lastSec = -1;
let lastTime = NaN;
// A busy log moves on to the next second every few lines: also remember the last minute, so a new
// second costs an addition instead of the date regex and two Date constructions.
let minRef = NaN;
let minMonth = -1;
let minMinute = -1;
let lastMin: YearlessMinute | undefined;
// Dates with a fraction or a year: the last one's text and time.
let lastTsText = '';
let lastTsRef = NaN;
let lastTsTime = NaN;

function bsdTimeCached(s: string, at: number, end: number, ref: number): number {
  if (!bsdPlain) {
    if (ref === lastTsRef && end - at === lastTsText.length && s.startsWith(lastTsText, at)) return lastTsTime;
    const text = s.slice(at, end);
    BSD_TS.lastIndex = 0;
    const m = BSD_TS.exec(text);
    lastTsText = text;
    lastTsRef = ref;
    return (lastTsTime = m ? bsdTime(m, ref) : NaN);
  }
  bsdKeys(s, at);
  const sec = (s.charCodeAt(bsdSecAt) - 48) * 10 + s.charCodeAt(bsdSecAt + 1) - 48;
  if (sec === lastSec && keyMinute === lastMinute && keyMonth === lastMonth && ref === lastRef) return lastTime;
  let t: number;
  if (sec <= 59) {
    if (!(keyMinute === minMinute && keyMonth === minMonth && ref === minRef)) {
      BSD_TS.lastIndex = at;
      const m = BSD_TS.exec(s);
      const mo = m ? monthIndex(m[1]!) : undefined;
      lastMin = m && mo !== undefined ? yearlessMinute(mo, Number(m[2]), Number(m[3]), Number(m[4]), ref) : undefined;
      minMinute = keyMinute;
      minMonth = keyMonth;
      minRef = ref;
    }
    t = lastMin ? minuteTime(lastMin, sec) : NaN;
  } else {
    BSD_TS.lastIndex = at;
    const m = BSD_TS.exec(s);
    t = m ? bsdTime(m, ref) : NaN;
  }
  lastSec = sec;
  lastMinute = keyMinute;
  lastMonth = keyMonth;
  lastRef = ref;
  return (lastTime = t);
}

function event(time: number, host: string, program: string, pid: number, message: string, origin: Origin): LogEvent {
  return pid < 0 ? { time, host, program, message, origin } : { time, host, program, pid, message, origin };
}

/** The event for a line whose tag tagAt() just found. */
function tagged(s: string, time: number, host: string, at: number, origin: Origin): LogEvent {
  return event(time, host, s.slice(at, tagNameEnd), tagPid, s.slice(tagEnd), origin);
}

/** A line with no syslog header: the daemon's own log format. */
function headerless(s: string, at: number, origin: Origin, opts: ParseOptions): LogEvent {
  const rest = at === 0 ? s : s.slice(at);
  const lead = leadingTimestamp(rest, opts.now);
  if (lead) return event(lead.time, '', '', -1, rest.slice(lead.end), origin);
  return event(innerTimestamp(rest) ?? opts.now, '', '', -1, rest, origin);
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
  let p: number;
  let hostOptional: boolean;
  let m: RegExpExecArray | null;
  const bsd = c >= 65 && c <= 90 ? bsdEnd(s, at) : -1;
  if (bsd > 0) {
    time = bsdTimeCached(s, at, bsd, opts.now);
    p = bsd;
    hostOptional = true;
  } else if (c >= 48 && c <= 57 && (m = sticky(RFC3339_TS, s, at))) {
    time = rfc3339Time(m);
    p = at + m[0].length;
    hostOptional = false;
  } else if (c === 64 /* @ */ && (m = sticky(TAI64N_TS, s, at))) {
    // multilog: no host, and the tag is optional.
    const t = tai64nTime(m);
    const q = at + m[0].length;
    return tagAt(s, q) ? tagged(s, t, '', q, origin) : event(t, '', '', -1, s.slice(q), origin);
  } else {
    return headerless(s, at, origin, opts);
  }
  if (Number.isNaN(time)) return headerless(s, at, origin, opts);
  const fp = s.charCodeAt(p) === 60 ? sticky(FACPRI, s, p) : null;
  if (fp) p += fp[0].length;
  // "date tag: msg" (no host; Dovecot's own log file, some BSD syslogds) before "date host tag: msg".
  if (hostOptional && tagAt(s, p)) return tagged(s, time, '', p, origin);
  // A host never ends in ':' — "date auth(user,ip)<sess>: Info: ..." is Dovecot's own log, not a host.
  const sp = s.indexOf(' ', p);
  if (sp > p && s.charCodeAt(sp - 1) !== 58) {
    let q = sp + 1;
    while (s.charCodeAt(q) === 32) q++;
    if (tagAt(s, q)) return tagged(s, time, s.slice(p, sp), q, origin);
  }
  // A date but no tag: the daemon's own format (e.g. Horde's "date HORDE [error] ..."); keep the rest.
  return event(time, '', '', -1, s.slice(p), origin);
}
