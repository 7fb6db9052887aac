// `mailjail rules test FILE` and `check --rules DIR` as an admin runs them on an in-house daemon:
// the built CLI in a child process, on the worked example of rules/README.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const CLI = join(ROOT, 'dist/src/cli/main.js');
const EXAMPLE = join(ROOT, 'test/fixtures/rules-inhouse/acme-proxy.yaml');

function run(args: string[]): { code: number | null; out: string; err: string } {
  const r = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, TZ: 'UTC' } });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

function withCopy(edit: (text: string) => string, fn: (path: string) => void): void {
  const dir = mkdtempSync(join(tmpdir(), 'mj-rules-test-'));
  try {
    const p = join(dir, 'acme-proxy.yaml');
    writeFileSync(p, edit(readFileSync(EXAMPLE, 'utf8')));
    fn(p);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test("the README's worked example is the tested fixture", () => {
  const readme = readFileSync(join(ROOT, 'rules/README.md'), 'utf8');
  const block = /<!-- example: acme-proxy\.yaml -->\n```yaml\n([\s\S]*?)```/.exec(readme);
  assert.ok(block, 'rules/README.md holds the example between its marker and a ```yaml fence');
  assert.equal(block[1], readFileSync(EXAMPLE, 'utf8'));
});

test('rules test: every sample passes, beside the bundled pack and alone', () => {
  for (const extra of [[], ['--alone']]) {
    const r = run(['rules', 'test', ...extra, EXAMPLE]);
    assert.equal(r.code, 0, r.out + r.err);
    assert.match(r.out, /^ok {4}acme-login-failed {2}\(3 match samples, 2 nomatch samples\)$/m);
    assert.match(r.out, /2 rules, 6 samples: all pass\n$/);
  }
});

test('rules test: a failing sample is named with what was expected and what the rules made of it', () => {
  withCopy((t) => t.replace("ip: 203.0.113.8, user: 'x\"", "ip: 192.0.2.1, user: 'x\""), (p) => {
    const r = run(['rules', 'test', p]);
    assert.equal(r.code, 1, r.out);
    assert.match(r.out, /^FAIL {2}acme-login-failed/m);
    assert.match(r.out, new RegExp(`^  ${p.replace(/[.\\]/g, '\\$&')}:25: match sample: captured ip 203\\.0\\.113\\.8, expected 192\\.0\\.2\\.1$`, 'm'));
    assert.match(r.out, /^ {4}expected: rule acme-login-failed \(auth\): ip 192\.0\.2\.1, user "x\\" from=192\.0\.2\.1 reason=bad-password", service pop3, count 1$/m);
    assert.match(r.out, /^ {4}got: {6}rule acme-login-failed \(auth\): ip 203\.0\.113\.8, user .*, service pop3, count 1$/m);
    assert.match(r.out, /1 fault \(2 rules, 6 samples\)\n$/);
  });
  withCopy((t) => t.replace('service: imap }', 'service: pop3 }'), (p) => {
    const r = run(['rules', 'test', '--alone', p]);
    assert.equal(r.code, 1);
    assert.match(r.out, /match sample: service imap, expected pop3/);
  });
  withCopy((t) => t.replace("- 'Nov  4 10:00:04 mx1 acme-proxy[4242]: imap: login FAILED user=\"alice\" from=192.0.2.20 reason=backend-down'",
    "- 'Nov  4 10:00:04 mx1 acme-proxy[4242]: imap: closed before login from=192.0.2.20'"), (p) => {
    const r = run(['rules', 'test', '--alone', p]);
    assert.equal(r.code, 1);
    assert.match(r.out, /nomatch sample: nomatch sample matched rule acme-no-login \(ip 192\.0\.2\.20\)\n {4}line: .*\n {4}expected: no match\n {4}got: {6}rule acme-no-login \(probe\): ip 192\.0\.2\.20, service imap, count 1/);
  });
});

test('rules test: an unknown fragment and a clash with the pack are faults with file:line', () => {
  withCopy((t) => t.replace("login FAILED user=\"(?<user>[^\\n]{0,128})\" {{client}}", "login FAILED user=\"(?<user>[^\\n]{0,128})\" {{clinet}}"), (p) => {
    const r = run(['rules', 'test', '--alone', p]);
    assert.equal(r.code, 1);
    assert.match(r.out, new RegExp(`${p.replace(/[.\\]/g, '\\$&')}:19: MJ_RULE_FRAGMENT: rule acme-login-failed: unknown fragment \\{\\{clinet\\}\\} \\(this file defines: proto, client\\)`));
  });
  withCopy((t) => t.replace('id: acme-no-login', 'id: postfix-reject'), (p) => {
    assert.equal(run(['rules', 'test', '--alone', p]).code, 0, 'alone, the id is free');
    const r = run(['rules', 'test', p]);
    assert.equal(r.code, 1);
    assert.match(r.out, /MJ_RULE_DUP_ID: rule id postfix-reject already defined at .*postfix\.yaml:\d+/);
  });
});

test('rules test --expand prints each pattern as written and expanded', () => {
  const r = run(['rules', 'test', '--expand', '--alone', EXAMPLE]);
  assert.equal(r.code, 0);
  assert.match(r.out, /^acme-no-login {2}\(.*acme-proxy\.yaml:30\)\n {2}pattern: {2}\^\{\{proto\}\}closed before login \{\{client\}\}\$\n {2}expanded: \^\(\?<service>imap\|pop3\|submission\): closed before login from=\(\?<ip>\[0-9A-Fa-f\.:\]\+\)\$$/m);
});

test('rules test on a bundled file in place: no clash with its own older copy', () => {
  const r = run(['rules', 'test', join(ROOT, 'rules/dovecot.yaml')]);
  assert.equal(r.code, 0, r.out);
  assert.match(r.out, /^ok {4}dovecot-login-auth-failed/m);
});

test('check --rules DIR: the test loop on a real log of the in-house daemon', () => {
  const r = run(['check', '--rules', join(ROOT, 'test/fixtures/rules-inhouse'), join(ROOT, 'test/fixtures/acme-proxy.log')]);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^ {2}acme-login-failed +6 +imap, pop3, smtp +auth$/m);
  assert.match(r.out, /Would ban 1 address/);
  assert.match(r.out, /^ {2}203\.0\.113\.7 .*acme-proxy\.log:5 +acme-login-failed$/m);
});

test('a missing file: a clear error, exit 2', () => {
  const r = run(['rules', 'test', '/nonexistent/x.yaml']);
  assert.equal(r.code, 2);
  assert.match(r.err, /mailjail rules test: cannot read \/nonexistent\/x\.yaml/);
});
