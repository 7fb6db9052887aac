// RFC 5424 syslog: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID STRUCTURED-DATA [MSG]`.
// Called with the offset just after "<PRI>1 ". Returns undefined when the header is malformed, so
// the caller can fall back to treating the line as headerless.
import type { LogEvent, Origin } from '../types.js';
import { makeTime } from './timestamp.js';

const TS = /^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(\.\d{1,9})?(Z|[+-]\d\d:\d\d)$/;

/** Next space-delimited header field starting at `at`: [value, offset after the space]. */
function field(s: string, at: number): [string, number] | undefined {
  const sp = s.indexOf(' ', at);
  if (sp < 0 || sp === at) return undefined;
  return [s.slice(at, sp), sp + 1];
}

/** Offset just past the STRUCTURED-DATA element(s) at `at`, honouring `\"`, `\\` and `\]` escapes in values. */
function skipStructuredData(s: string, at: number): number | undefined {
  if (s.charCodeAt(at) === 45 /* - */) return at + 1;
  let i = at;
  while (s.charCodeAt(i) === 91 /* [ */) {
    let inValue = false;
    for (i++; i < s.length; i++) {
      const c = s.charCodeAt(i);
      if (inValue) {
        if (c === 92 /* \ */) i++;
        else if (c === 34 /* " */) inValue = false;
      } else if (c === 34) inValue = true;
      else if (c === 93 /* ] */) break;
    }
    if (i >= s.length) return undefined;
    i++;
  }
  return i === at ? undefined : i;
}

export function parseRfc5424(s: string, at: number, origin: Origin, now: number): LogEvent | undefined {
  const ts = field(s, at);
  if (!ts) return undefined;
  let time = now;
  if (ts[0] !== '-') {
    const m = TS.exec(ts[0]);
    if (!m) return undefined;
    time = makeTime(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!, m[7] ? Math.floor(Number(`0${m[7]}`) * 1000) : 0, m[8]);
  }
  const host = field(s, ts[1]);
  const app = host && field(s, host[1]);
  const proc = app && field(s, app[1]);
  const msgid = proc && field(s, proc[1]);
  if (!host || !app || !proc || !msgid) return undefined;
  const sdEnd = skipStructuredData(s, msgid[1]);
  if (sdEnd === undefined) return undefined;
  let message = '';
  if (sdEnd < s.length) {
    if (s.charCodeAt(sdEnd) !== 32) return undefined;
    message = s.slice(sdEnd + 1);
    if (message.charCodeAt(0) === 0xfeff) message = message.slice(1);
    // rsyslog's RFC 5424 templates forward "%msg%" with the blank that followed the BSD tag.
    if (message.charCodeAt(0) === 32) message = message.replace(/^ +/, '');
  }
  const nil = (v: string): string => (v === '-' ? '' : v);
  const pid = /^\d{1,10}$/.test(proc[0]) ? Number(proc[0]) : undefined;
  const base = { time, host: nil(host[0]), program: nil(app[0]), message, origin };
  return pid === undefined ? base : { ...base, pid };
}
