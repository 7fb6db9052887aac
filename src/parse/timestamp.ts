// Timestamps of syslog headers and of mail daemons' own log files → ms since the epoch.
// A time without a zone is local time; a date without a year gets the latest year that does not
// put it more than a day after the reference time ("now" live, or the replay's reference).

const MONTHS: Record<string, number> = {
  Jan: 0, Feb: 1, Mar: 2, Apr: 3, May: 4, Jun: 5, Jul: 6, Aug: 7, Sep: 8, Oct: 9, Nov: 10, Dec: 11,
};
const DAY_MS = 86_400_000;

export function monthIndex(mon: string): number | undefined {
  return MONTHS[mon];
}

function fracMs(frac: string | undefined): number {
  if (!frac) return 0;
  return Math.floor(Number(`0.${frac.replace(/^[.,]/, '')}`) * 1000);
}

/** Zone text (Z, +01:00, +0100, -05, GMT, UTC) → offset in minutes east of UTC; undefined when absent/unknown. */
function zoneMinutes(z: string | undefined): number | undefined {
  if (!z) return undefined;
  if (z === 'Z' || z === 'GMT' || z === 'UTC') return 0;
  const m = /^([+-])(\d\d):?(\d\d)?$/.exec(z);
  if (!m) return undefined;
  const v = Number(m[2]) * 60 + Number(m[3] ?? 0);
  return m[1] === '-' ? -v : v;
}

/** Builds a time from calendar fields, in the given zone or local time. */
export function makeTime(y: number, mo: number, d: number, h: number, mi: number, s: number, ms: number, zone?: string): number {
  const off = zoneMinutes(zone);
  if (off === undefined) return new Date(y, mo, d, h, mi, s, ms).getTime();
  return Date.UTC(y, mo, d, h, mi, s, ms) - off * 60_000;
}

/** Time of a year-less date: the year of `ref`, or the one before when that would lie > 1 day ahead. */
export function yearless(mo: number, d: number, h: number, mi: number, s: number, ms: number, ref: number): number {
  const y = new Date(ref).getFullYear();
  const t = makeTime(y, mo, d, h, mi, s, ms);
  return t > ref + DAY_MS ? makeTime(y - 1, mo, d, h, mi, s, ms) : t;
}

/**
 * One year-less minute `Mmm dd hh:mm` relative to a reference time, for the seconds within it:
 * minuteTime(yearlessMinute(mo, d, h, mi, ref), ss) === yearless(mo, d, h, mi, ss, 0, ref) for ss
 * 0..59, because a zone's offset changes only on whole minutes (a second's time is its minute's
 * plus ss s); only the choice of year depends on ss, so both candidate years are kept.
 */
export interface YearlessMinute { readonly cur: number; readonly prev: number; readonly limit: number }

export function yearlessMinute(mo: number, d: number, h: number, mi: number, ref: number): YearlessMinute {
  const y = new Date(ref).getFullYear();
  return { cur: makeTime(y, mo, d, h, mi, 0, 0), prev: makeTime(y - 1, mo, d, h, mi, 0, 0), limit: ref + DAY_MS };
}

export function minuteTime(m: YearlessMinute, sec: number): number {
  const t = m.cur + sec * 1000;
  return t > m.limit ? m.prev + sec * 1000 : t;
}

// ---- syslog header timestamps (sticky, so the caller scans in place) ----

/** `Nov  4 00:00:01`, `Jan 4 21:51:05`, optional fraction and year. */
export const BSD_TS = /([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d)(\.\d{1,9})?(?: (\d{4}))? +/y;
/** RFC 3339: `2024-11-04T00:00:01.123456+01:00`. */
export const RFC3339_TS = /(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,9})?(Z|[+-]\d\d:?\d\d)? +/y;
/** daemontools multilog TAI64N label. */
export const TAI64N_TS = /@([0-9a-f]{16})([0-9a-f]{8}) +/y;

export function bsdTime(m: RegExpExecArray, ref: number): number {
  const mo = MONTHS[m[1]!];
  if (mo === undefined) return NaN;
  const [d, h, mi, s] = [Number(m[2]), Number(m[3]), Number(m[4]), Number(m[5])];
  if (m[7]) return makeTime(Number(m[7]), mo, d, h, mi, s, fracMs(m[6]));
  return yearless(mo, d, h, mi, s, fracMs(m[6]), ref);
}

export function rfc3339Time(m: RegExpExecArray): number {
  return makeTime(Number(m[1]), Number(m[2]) - 1, Number(m[3]), Number(m[4]), Number(m[5]), Number(m[6]), fracMs(m[7]), m[8]);
}

export function tai64nTime(m: RegExpExecArray): number {
  // Label = 2^62 + 10 + seconds since 1970 (djb's convention, as tai64nlocal prints it).
  const secs = Number(BigInt(`0x${m[1]}`) - (1n << 62n) - 10n);
  return secs * 1000 + Math.floor(parseInt(m[2]!, 16) / 1e6);
}

// ---- own-file timestamps at the start of a headerless line ----

interface Form { re: RegExp; time(m: RegExpExecArray, ref: number): number }

const mon = (s: string): number => MONTHS[s] ?? NaN;
const FORMS: readonly Form[] = [
  // 2013-01-04 17:03:46, 2014-01-13T05:02:22+00:00, 2024-11-04 00:00:01.123 +0100, [2014-01-06 10:59:38]
  {
    re: /^\[?(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)([.,]\d{1,9})? ?(Z|[+-]\d\d:?\d\d)?\]?:? */,
    time: (m) => makeTime(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, fracMs(m[7]), m[8]),
  },
  // 03-07-2005 23:07:20 (DD-MM-YYYY, Domino)
  { re: /^(\d\d)-(\d\d)-(\d{4}) (\d\d):(\d\d):(\d\d) */, time: (m) => makeTime(+m[3]!, +m[2]! - 1, +m[1]!, +m[4]!, +m[5]!, +m[6]!, 0) },
  // 10/06/2013 15:50:41 (MM/DD/YYYY), and US locale 10/06/2013 03:50:41 PM (Domino)
  {
    re: /^(\d\d)\/(\d\d)\/(\d{4}) (\d\d):(\d\d):(\d\d)(?: ([AP]M))? */,
    time: (m) => makeTime(+m[3]!, +m[1]! - 1, +m[2]!, (+m[4]! % 12) + (m[7] === 'PM' ? 12 : m[7] === 'AM' ? 0 : +m[4]! >= 12 ? 12 : 0), +m[5]!, +m[6]!, 0),
  },
  // Apr-07-13 07:08:36 (ASSP)
  { re: /^([A-Z][a-z]{2})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d) */, time: (m) => makeTime(2000 + +m[3]!, mon(m[1]!), +m[2]!, +m[4]!, +m[5]!, +m[6]!, 0) },
  // [17/Jun/2011 17:00:45] (Kerio), [24/Mar/2013:08:58:32 GMT] (access logs)
  {
    re: /^\[(\d\d)\/([A-Z][a-z]{2})\/(\d{4})[: ](\d\d):(\d\d):(\d\d)(?: ([+-]\d{4}|GMT|UTC))?\]:? */,
    time: (m) => makeTime(+m[3]!, mon(m[2]!), +m[1]!, +m[4]!, +m[5]!, +m[6]!, 0, m[7]),
  },
  // [22-Jan-2013 22:28:21 +0200] (Roundcube, PHP)
  {
    re: /^\[(\d\d)-([A-Z][a-z]{2})-(\d{4}) (\d\d):(\d\d):(\d\d)(?: ([+-]\d{4}|UTC|GMT))?\]:? */,
    time: (m) => makeTime(+m[3]!, mon(m[2]!), +m[1]!, +m[4]!, +m[5]!, +m[6]!, 0, m[7]),
  },
  // Sat Dec 28 19:03:53 2013 (ctime)
  {
    re: /^[A-Z][a-z]{2} ([A-Z][a-z]{2}) {1,2}(\d{1,2}) (\d\d):(\d\d):(\d\d) (\d{4}) */,
    time: (m) => makeTime(+m[6]!, mon(m[1]!), +m[2]!, +m[3]!, +m[4]!, +m[5]!, 0),
  },
];

/** A leading own-file timestamp: its time and where the rest of the line starts. */
export function leadingTimestamp(line: string, ref: number): { time: number; end: number } | undefined {
  const c = line.charCodeAt(0);
  // Every form starts with a digit, '[' or an upper-case letter: skip the regexes for anything else.
  if (!((c >= 48 && c <= 57) || c === 91 || (c >= 65 && c <= 90))) return undefined;
  for (const f of FORMS) {
    const m = f.re.exec(line);
    if (m) {
      const t = f.time(m, ref);
      if (!Number.isNaN(t)) return { time: t, end: m[0].length };
    }
  }
  return undefined;
}

// A timestamp somewhere in the first part of a line whose start is not one (Tine 2.0, Oracle IMS
// `ts="..."`, Domino with a thread prefix, web access logs).
const INNER_ISO = /(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d):(\d\d)([.,]\d{1,9})?(Z|[+-]\d\d:?\d\d)?/;
const INNER_DMY = /\b(\d\d)-(\d\d)-(\d{4}) (\d\d):(\d\d):(\d\d)/;
const INNER_CLF = /\[(\d\d)\/([A-Z][a-z]{2})\/(\d{4}):(\d\d):(\d\d):(\d\d)(?: ([+-]\d{4}|GMT|UTC))?\]/;

export function innerTimestamp(line: string): number | undefined {
  const head = line.length > 120 ? line.slice(0, 120) : line;
  let m = INNER_ISO.exec(head);
  if (m) return makeTime(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, fracMs(m[7]), m[8]);
  m = INNER_DMY.exec(head);
  if (m) return makeTime(+m[3]!, +m[2]! - 1, +m[1]!, +m[4]!, +m[5]!, +m[6]!, 0);
  m = INNER_CLF.exec(head);
  if (m) return makeTime(+m[3]!, mon(m[2]!), +m[1]!, +m[4]!, +m[5]!, +m[6]!, 0, m[7]);
  return undefined;
}
