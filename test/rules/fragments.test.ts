// Named fragments and the service taken from a capture: expansion is one plain pass, what runs is
// what lint saw, and one Dovecot login rule names imap / pop3 / smtp / sieve as the per-service
// copies it replaced did.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { expandFragments, readRuleFile } from '../../src/rules/load.js';
import type { RuleFault } from '../../src/rules/load.js';
import { BUNDLED_RULES_DIR, loadRulePack, sampleEvent } from '../../src/rules/pack.js';

test('expansion: every {{name}} replaced once, escaped braces and unknown names left as they are', () => {
  const frags = new Map([['client', 'from (?<ip>\\S+)'], ['level', '(?:Info: )?']]);
  assert.deepEqual(expandFragments('^{{level}}failed {{client}}$', frags), { expanded: '^(?:Info: )?failed from (?<ip>\\S+)$', unknown: [] });
  assert.deepEqual(expandFragments('^a\\{{level}} {{nope}}', frags), { expanded: '^a\\{{level}} {{nope}}', unknown: ['nope'] });
  // A fragment's own text is not expanded again (one level): `{{` inside it stays literal text.
  assert.equal(expandFragments('{{x}}', new Map([['x', '{{level}}']])).expanded, '{{level}}');
});

const RULE = (pattern: string, extra = ''): string => `daemon: t
programs: [t]
fragments:
  client: 'from (?<ip>[0-9A-Fa-f.:]+)'
rules:
  - id: t-rule
    service: mail
    class: auth
    keywords: [failed]${extra}
    pattern: '${pattern}'
    samples: { match: [ { line: 'Nov  4 00:00:01 h t: imap: failed from 192.0.2.1', ip: 192.0.2.1 } ] }
`;

test('a rule keeps the pattern as written and the expansion that runs', () => {
  const faults: RuleFault[] = [];
  const f = readRuleFile('t.yaml', RULE('^(?<service>imap|pop3): failed {{client}}$', '\n    serviceByCapture: { imap: imap, pop3: pop3 }'), faults);
  assert.deepEqual(faults, []);
  const r = f!.rules[0]!;
  assert.equal(r.pattern, '^(?<service>imap|pop3): failed {{client}}$');
  assert.equal(r.expanded, '^(?<service>imap|pop3): failed from (?<ip>[0-9A-Fa-f.:]+)$');
  assert.equal(r.re.source, new RegExp(r.expanded).source);
  assert.deepEqual(r.ipGroups, ['ip'], 'groups are read from the expansion');
});

test('an unknown fragment is refused at the pattern, naming what the file defines', () => {
  const faults: RuleFault[] = [];
  readRuleFile('t.yaml', RULE('^failed {{clinet}}'), faults);
  const f = faults.find((x) => x.code === 'MJ_RULE_FRAGMENT');
  assert.ok(f, JSON.stringify(faults));
  assert.equal(f.at, 't.yaml:10');
  assert.match(f.message, /unknown fragment \{\{clinet\}\} \(this file defines: client\)/);
  assert.ok(!faults.some((x) => x.code === 'MJ_RULE_BAD_REGEX'), 'no second, confusing fault for the same mistake');
});

test('the service: capture first, then the program, then the rule default', () => {
  const engine = loadRulePack(BUNDLED_RULES_DIR);
  const svc = (line: string): string | undefined => engine.match(sampleEvent(line, 't')!)?.service;
  const summary = (proc: string): string =>
    `Nov  4 00:00:01 mail dovecot: ${proc}-login: Disconnected (auth failed, 2 attempts in 6 secs): user=<bob>, method=PLAIN, rip=192.0.2.9, lip=192.0.2.10, TLS, session=<Ab3dEf6hIj9lMn0p>`;
  assert.equal(svc(summary('imap')), 'imap');
  assert.equal(svc(summary('pop3')), 'pop3');
  assert.equal(svc(summary('submission')), 'smtp');
  assert.equal(svc(summary('managesieve')), 'sieve');
  assert.equal(svc(summary('lmtp')), 'mail', 'a process the map does not know: the rule default');
  // Dovecot's own log file: the program names the process, the message only the level.
  assert.equal(svc('Nov 04 00:00:10 pop3-login: Info: Aborted login (auth failed, 1 attempts in 2 secs): user=<frank>, method=PLAIN, rip=192.0.2.10'), 'pop3');
  const m = engine.match(sampleEvent(summary('pop3'), 't')!);
  assert.equal(m?.ruleId, 'dovecot-login-auth-failed');
  assert.equal(m?.attempt.total, 2);
  assert.equal(m?.attempt.session, 'dovecot:Ab3dEf6hIj9lMn0p');
});

test('the bundled Dovecot, Postfix and Exim files use fragments and a typical pattern fits on a screen line', () => {
  const engine = loadRulePack(BUNDLED_RULES_DIR);
  for (const d of ['dovecot', 'postfix', 'exim']) {
    const f = engine.files.find((x) => x.daemon === d)!;
    assert.ok(f.fragments.size >= 2, `${d}: ${f.fragments.size} fragments`);
    const lengths = f.rules.map((r) => r.pattern.length).sort((a, b) => a - b);
    const median = lengths[Math.floor(lengths.length / 2)]!;
    assert.ok(median <= 160, `${d}: median pattern ${median} characters`);
    assert.ok(f.rules.some((r) => r.pattern !== r.expanded), `${d}: no pattern uses a fragment`);
  }
  const dovecot = engine.files.find((x) => x.daemon === 'dovecot')!;
  const summaries = dovecot.rules.filter((r) => r.pattern.includes('{{login}}'));
  // One rule per kind of login-process line, whatever the protocol: no per-service copies.
  assert.deepEqual(summaries.map((r) => r.id).sort(), [
    'dovecot-login-auth-failed', 'dovecot-login-auth-tempfail', 'dovecot-login-no-auth', 'dovecot-login-plaintext-disabled', 'dovecot-login-plaintext-refused',
  ]);
  assert.deepEqual(dovecot.rules.filter((r) => /^dovecot-(?:imap|pop3|submission|sieve)-/.test(r.id)).map((r) => r.id), []);
});
