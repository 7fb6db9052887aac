process.env.TZ = 'UTC';

import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { parseLine, parseRecord } from '../../src/parse/index.js';
import { BSD_TS, bsdTime } from '../../src/parse/timestamp.js';
import type { LogEvent } from '../../src/types.js';

const NOW = Date.UTC(2024, 10, 20, 12, 0, 0);
const o = { kind: 'file' as const };
const p = (s: string): LogEvent => parseLine(s, o, { now: NOW });
const iso = (t: number): string => new Date(t).toISOString();

test('BSD syslog: host, tag, pid, message, and the year from the reference time', () => {
  const e = p('Nov  4 00:00:01 mx1 postfix/submission/smtpd[1234]: warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: x');
  assert.equal(e.host, 'mx1');
  assert.equal(e.program, 'postfix/submission/smtpd');
  assert.equal(e.pid, 1234);
  assert.equal(e.message, 'warning: unknown[192.0.2.1]: SASL LOGIN authentication failed: x');
  assert.equal(iso(e.time), '2024-11-04T00:00:01.000Z');
  // A December date seen in November is last year's.
  assert.equal(iso(p('Dec 25 10:00:00 h prog: x').time), '2023-12-25T10:00:00.000Z');
  // Unpadded day, no pid, <PRI> prefix, facility word.
  const f = p('<22>Jan 4 21:51:05 hostname cyrus/imap[5355]: badlogin: x');
  assert.deepEqual([f.host, f.program, f.pid, f.message], ['hostname', 'cyrus/imap', 5355, 'badlogin: x']);
  const g = p('Jun 17 14:37:39 <mail.notice> robin sm-mta[2794]: 55HIbcGI002794: x');
  assert.deepEqual([g.host, g.program, g.message], ['robin', 'sm-mta', '55HIbcGI002794: x']);
});

test('tags without a host, with a blank before the pid, and with (pid)', () => {
  const a = p('Feb 20 17:23:32 cyrus/pop3[4297]: badlogin: example.com [1.2.3.4] plaintext x');
  assert.deepEqual([a.host, a.program, a.pid], ['', 'cyrus/pop3', 4297]);
  const b = p('Mar 24 08:58:32 sogod [26818]: SOGoRootPage Login from x');
  assert.deepEqual([b.program, b.pid, b.message], ['sogod', 26818, 'SOGoRootPage Login from x']);
  const c = p('Nov 04 00:00:01 auth-worker(4242): Info: pam(u,192.0.2.1): unknown user');
  assert.deepEqual([c.program, c.pid, c.message], ['auth-worker', 4242, 'Info: pam(u,192.0.2.1): unknown user']);
  const v24 = p('Nov 04 00:04:01 auth(info@example.com,192.0.2.80,sasl:login)<CvN+E95Uf4e7wxyz>: Info: sql: Password mismatch');
  assert.deepEqual([v24.program, v24.message], ['', 'auth(info@example.com,192.0.2.80,sasl:login)<CvN+E95Uf4e7wxyz>: Info: sql: Password mismatch']);
  const d = p('Nov  4 00:00:01 imap1 dovecot: imap-login: Login: user=<a>');
  assert.deepEqual([d.host, d.program, d.message], ['imap1', 'dovecot', 'imap-login: Login: user=<a>']);
});

test('RFC 3339 syslog and RFC 5424', () => {
  const a = p('2024-11-04T00:00:01.123456+01:00 mx1 postfix/smtpd[77]: connect from x');
  assert.deepEqual([a.host, a.program, a.pid, a.message], ['mx1', 'postfix/smtpd', 77, 'connect from x']);
  assert.equal(iso(a.time), '2024-11-03T23:00:01.123Z');
  const b = p('<38>1 2024-11-04T00:00:01.5Z mx1.example.com postfix/smtpd 1234 - [meta x="a\\]b" y="\\"q"][t@1 z="1"] \uFEFFwarning: y');
  assert.deepEqual([b.host, b.program, b.pid, b.message], ['mx1.example.com', 'postfix/smtpd', 1234, 'warning: y']);
  assert.equal(iso(b.time), '2024-11-04T00:00:01.500Z');
  const r = p('<38>1 2024-11-04T00:00:01Z mx1 postfix - - -  warning: rsyslog keeps the blank');
  assert.deepEqual([r.program, r.message], ['postfix', 'warning: rsyslog keeps the blank']);
  const c = p('<13>1 - - - - - -');
  assert.deepEqual([c.host, c.program, c.message], ['', '', '']);
});

test('headerless own-file lines: leading timestamp removed, program empty', () => {
  const cases: [string, string, string][] = [
    ['2013-01-04 17:03:46 login authenticator failed for x', '2013-01-04T17:03:46.000Z', 'login authenticator failed for x'],
    ['2013-06-15 11:19:33 [2249] H=([2.181.148.95]) x', '2013-06-15T11:19:33.000Z', '[2249] H=([2.181.148.95]) x'],
    ['[22-Jan-2013 22:28:21 +0200]: FAILED login for u from 192.0.2.1', '2013-01-22T20:28:21.000Z', 'FAILED login for u from 192.0.2.1'],
    ['[17/Jun/2011 17:00:45] Attempt to deliver', '2011-06-17T17:00:45.000Z', 'Attempt to deliver'],
    ['Apr-07-13 07:08:36 [SSL-out] 192.0.2.9 SSL negotiation', '2013-04-07T07:08:36.000Z', '[SSL-out] 192.0.2.9 SSL negotiation'],
    ['03-07-2005 23:07:20   SMTP Server: Authentication failed', '2005-07-03T23:07:20.000Z', 'SMTP Server: Authentication failed'],
    ['10/06/2013 15:50:41 [LOGIN_ERROR] x', '2013-10-06T15:50:41.000Z', '[LOGIN_ERROR] x'],
    ['10/06/2013 03:50:41 PM   SMTP Server: x', '2013-10-06T15:50:41.000Z', 'SMTP Server: x'],
    ['10/06/2013 12:05:00 AM x', '2013-10-06T00:05:00.000Z', 'x'],
    ['Sat Dec 28 19:03:53 2013 - [72926] (192.0.2.3) x', '2013-12-28T19:03:53.000Z', '- [72926] (192.0.2.3) x'],
    ['[2014-01-06 10:59:38]LOGIN FAILED for user', '2014-01-06T10:59:38.000Z', 'LOGIN FAILED for user'],
  ];
  for (const [line, time, msg] of cases) {
    const e = p(line);
    assert.equal(e.program, '', line);
    assert.equal(e.message, msg, line);
    assert.equal(iso(e.time), time, line);
  }
  // A BSD date with no tag after it keeps the rest, host-like word included.
  const h = p('Nov 11 18:57:57 HORDE [error] [horde] FAILED LOGIN for x');
  assert.deepEqual([h.program, h.message], ['', 'HORDE [error] [horde] FAILED LOGIN for x']);
  // Inner timestamps are found but not removed.
  const t = p('78017 00cff -- none -- - 2014-01-13T05:02:22+00:00 WARN (4): x');
  assert.deepEqual([t.program, iso(t.time)], ['', '2014-01-13T05:02:22.000Z']);
  assert.ok(t.message.startsWith('78017'));
  // TAI64N (multilog).
  const m = p('@400000004c91b044077a9e94 imap-login: Info: Aborted login');
  assert.deepEqual([m.program, m.message, iso(m.time)], ['imap-login', 'Info: Aborted login', '2010-09-16T05:50:50.125Z']);
});

test('journald JSON: strings, arrays, byte arrays, null', () => {
  const line = JSON.stringify({
    __REALTIME_TIMESTAMP: '1730678401000000', _HOSTNAME: 'imap1', SYSLOG_IDENTIFIER: 'dovecot', _PID: '812',
    MESSAGE: [105, 109, 97, 112, 45, 108, 111, 103, 105, 110, 58, 32, 195, 169], __CURSOR: 's=1;i=2', X: null,
  });
  const r = parseRecord({ kind: 'line', text: line, origin: o }, { format: 'auto', now: NOW });
  assert.ok('event' in r);
  assert.deepEqual([r.event.host, r.event.program, r.event.pid, r.event.message, r.event.origin.cursor], ['imap1', 'dovecot', 812, 'imap-login: é', 's=1;i=2']);
  assert.equal(iso(r.event.time), '2024-11-04T00:00:01.000Z');
  const bad = parseRecord({ kind: 'line', text: '{"MESSAGE": ', origin: o }, { format: 'auto', now: NOW });
  assert.ok('error' in bad);
  assert.ok('error' in parseRecord({ kind: 'line', text: 'x'.repeat(70_000), origin: o }, { format: 'auto', now: NOW }));
});

test('property: parsing never throws and the message is a suffix of the line', () => {
  const header = fc.constantFrom('', 'Nov  4 00:00:01 ', '<13>', '<38>1 ', '2024-11-04T00:00:01Z ', '@400000004c91b044077a9e94 ', '[', '{');
  fc.assert(fc.property(header, fc.string({ maxLength: 200 }), fc.string({ maxLength: 40 }), (h, a, b) => {
    const line = h + a + b;
    const r = parseRecord({ kind: 'line', text: line, origin: o }, { format: 'auto', now: NOW });
    if ('event' in r && line.charCodeAt(0) !== 123) {
      assert.ok(line.endsWith(r.event.message) || r.event.message === line.slice(line.indexOf(r.event.message)), line);
      assert.equal(typeof r.event.time, 'number');
    }
  }), { numRuns: 3000 });
});

test('BSD dates taken by the minute give the same time as computing each one (DST zones, year turn)', () => {
  // parseLine caches a minute and adds the seconds; bsdTime computes every date on its own.
  const months = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
  const two = (n: number): string => String(n).padStart(2, '0');
  try {
    for (const tz of ['Europe/Berlin', 'America/New_York', 'Australia/Lord_Howe', 'UTC']) {
      process.env.TZ = tz;
      parseLine('Jan  1 00:00:00 h p: x', o, { now: 0 }); // the caches key on the reference, not the zone
      fc.assert(fc.property(
        fc.integer({ min: 0, max: 11 }), fc.integer({ min: 1, max: 31 }), fc.integer({ min: 0, max: 23 }),
        fc.integer({ min: 0, max: 59 }), fc.array(fc.integer({ min: 0, max: 99 }), { minLength: 1, maxLength: 5 }),
        fc.integer({ min: Date.UTC(2023, 0, 1), max: Date.UTC(2026, 0, 1) }),
        (mo, d, h, mi, secs, ref) => {
          for (const sec of secs) {
            const ts = `${months[mo]!} ${String(d).padStart(2, ' ')} ${two(h)}:${two(mi)}:${two(sec)}`;
            BSD_TS.lastIndex = 0;
            const want = bsdTime(BSD_TS.exec(`${ts} `)!, ref);
            assert.equal(parseLine(`${ts} mx1 postfix/smtpd[1]: x`, o, { now: ref }).time, want, `${tz} ${ts}`);
          }
        },
      ), { numRuns: 500 });
      // Every minute around this zone's 2024 DST changes.
      for (const day of [Date.UTC(2024, 2, 9), Date.UTC(2024, 2, 31), Date.UTC(2024, 3, 7), Date.UTC(2024, 9, 6), Date.UTC(2024, 9, 27), Date.UTC(2024, 10, 3)]) {
        for (let t = day - 86_400_000; t < day + 86_400_000; t += 60_000 + 7_000) {
          const dt = new Date(t);
          const ts = `${months[dt.getMonth()]!} ${String(dt.getDate()).padStart(2, ' ')} ${two(dt.getHours())}:${two(dt.getMinutes())}:${two(dt.getSeconds())}`;
          BSD_TS.lastIndex = 0;
          const want = bsdTime(BSD_TS.exec(`${ts} `)!, NOW);
          assert.equal(parseLine(`${ts} mx1 dovecot: x`, o, { now: NOW }).time, want, `${tz} ${ts}`);
        }
      }
    }
  } finally {
    process.env.TZ = 'UTC';
  }
});
