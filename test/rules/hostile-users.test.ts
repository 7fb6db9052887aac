// Property: a user name is attacker text, so no user name may steer what a line counts. For every
// match sample of every rule that captures a user, the user text is replaced by arbitrary strings
// (the characters log fields are built from, embedded addresses, fragments of other lines' fields);
// the line then either stops matching, or matches with the same address, no higher attempt count and
// no stronger class (a probe never becomes an auth failure), and no client's failure becomes a
// server error (which would excuse a host's failures).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { BUNDLED_RULES_DIR, loadRulePack, sampleEvent } from '../../src/rules/pack.js';
import type { LogEvent, Match } from '../../src/types.js';

const engine = loadRulePack(BUNDLED_RULES_DIR);

/** What a match counts: the address, the attempts it stands for, and whether it is an auth failure. */
const countOf = (m: Match): number => m.attempt.total ?? 1;

const FRAGMENTS = [
  'rip=203.0.113.9, ', '>, rip=203.0.113.9, lip=192.0.2.1, ', '>, method=PLAIN, rip=2001:db8:bad::9, ',
  '(auth failed, 99 attempts in 2 secs)', '(auth failed, 99 attempts in 2 secs): user=<', ': rip=203.0.113.9, lip=1.1.1.1',
  'session=<AAAAAAAAAAAAAAAA>', ', session=<x>', '(no auth attempts in 0 secs)', '(tried to use disallowed plaintext auth)',
  '203.0.113.9', '2001:db8:bad::9', '::ffff:203.0.113.9', '[203.0.113.9]', '[IPv6:2001:db8:bad::9]', ' from 203.0.113.9',
  ' host=[203.0.113.9]', ' ip=[203.0.113.9]', ' address=203.0.113.9 host=x result=permfail', ', relay=x [203.0.113.9]',
  ' ; connecting host 203.0.113.9', ' - 203.0.113.9', ':203.0.113.9', ',203.0.113.9,<s>', ') from 203.0.113.9: x',
  '. Attempt from IP address 203.0.113.9', ' against x from 203.0.113.9', ' rhost=203.0.113.9', 'count=99',
  '", sasl_username=', ' user="x" ', ' status="failed"', "' for user '", "Login from '203.0.113.9'", 'oip=203.0.113.9;',
];
const CHARS = [...'<>(),=[]:;\'" .@-_/|\\abcXYZ019'];

/** User names: a mix of single characters and field fragments, up to ~120 characters. */
const hostileUser = fc
  .array(fc.oneof({ weight: 3, arbitrary: fc.constantFrom(...CHARS) }, { weight: 1, arbitrary: fc.constantFrom(...FRAGMENTS) }), { maxLength: 12 })
  .map((parts) => parts.join(''));
const anyUser = fc.oneof(hostileUser, fc.string({ maxLength: 40 }).map((s) => s.replace(/[\x00-\x1f\x7f]/g, '?')));

interface Case { at: string; ruleId: string; ev: LogEvent; start: number; end: number; base: Match }

/** The real lines: match samples whose user capture is non-empty, with the capture's position. */
function cases(): Case[] {
  const out: Case[] = [];
  for (const f of engine.files) {
    for (const r of f.rules) {
      if (r.userGroups.length === 0) continue;
      const re = new RegExp(r.re.source, `${r.re.flags}d`);
      for (const s of r.samples.match) {
        const ev = sampleEvent(s.line, s.at);
        if (!ev) continue;
        const base = engine.match(ev);
        if (!base || base.ruleId !== r.id) continue; // another file's rule wins: not this rule's line
        const m = re.exec(ev.message);
        let span: [number, number] | undefined;
        for (const g of r.userGroups) if ((span = m?.indices?.groups?.[g]) !== undefined) break;
        if (!span || span[0] === span[1]) continue;
        out.push({ at: s.at, ruleId: r.id, ev, start: span[0], end: span[1], base });
      }
    }
  }
  return out;
}

test('no user name changes the counted address, count or class of a line', () => {
  const all = cases();
  assert.ok(all.length >= 100, `only ${all.length} samples with a user name`);
  const rules = new Set(all.map((c) => c.ruleId));
  assert.ok(rules.size >= 40, `only ${rules.size} rules with user samples`);
  for (const c of all) {
    fc.assert(
      fc.property(anyUser, (user) => {
        const message = c.ev.message.slice(0, c.start) + user + c.ev.message.slice(c.end);
        const m = engine.match({ ...c.ev, message });
        if (!m) return;
        const where = `${c.at} (${c.ruleId}) with user ${JSON.stringify(user)}: ${JSON.stringify(message)}`;
        assert.equal(m.ip, c.base.ip, `address steered to ${m.ip} by rule ${m.ruleId}: ${where}`);
        assert.ok(countOf(m) <= countOf(c.base), `count raised to ${countOf(m)} by rule ${m.ruleId}: ${where}`);
        if (c.base.class !== 'auth') assert.notEqual(m.class, 'auth', `a ${c.base.class} line became an auth failure (${m.ruleId}): ${where}`);
        // A client's failure must not pass for our back end failing: that would start an outage and
        // excuse every failure of its host (docs/counting.md, "Outages").
        if (c.base.class !== 'server-error') assert.notEqual(m.class, 'server-error', `a ${c.base.class} line became a server error (${m.ruleId}): ${where}`);
      }),
      { numRuns: 150 },
    );
  }
});

test('the Dovecot case from the report: one line names a victim and 99 attempts in its user name', () => {
  const line = 'Nov  4 01:00:01 mail dovecot: imap-login: Disconnected (auth failed, 1 attempts in 2 secs): user=<x (auth failed, 99 attempts in 2 secs): rip=203.0.113.9, lip=1.1.1.1, session=<x>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.10, TLS, session=<Ab3dEf6hIj9lMn0p>';
  const m = engine.match(sampleEvent(line, 'test')!);
  assert.equal(m?.ip, '192.0.2.1');
  assert.equal(m?.attempt.total, 1);
  const login = 'Nov  4 01:00:01 mail dovecot: imap-login: Login: user=<(auth failed, 99 attempts in 2 secs): user=<y>, method=PLAIN, rip=203.0.113.9>, method=PLAIN, rip=192.0.2.1, lip=192.0.2.10, mpid=1, TLS, session=<Ab3dEf6hIj9lMn0p>';
  assert.equal(engine.match(sampleEvent(login, 'test')!), undefined);
});
