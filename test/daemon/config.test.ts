import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { ConfigError, configFromTexts, formatProblem, loadConfig } from '../../src/daemon/config.js';
import { DEFAULT_CONFIG_YAML } from '../../src/daemon/default-config.js';
import { formatDuration, parseDuration } from '../../src/lib/duration.js';

// Compiled to dist/test/daemon: fixtures stay in the source tree.
const FIX = fileURLToPath(new URL('../../../test/fixtures/config/', import.meta.url));

test('durations: units, compounds, bare seconds; garbage refused', () => {
  assert.equal(parseDuration('90s'), 90_000);
  assert.equal(parseDuration('10m'), 600_000);
  assert.equal(parseDuration('1h30m'), 5_400_000);
  assert.equal(parseDuration('7d'), 604_800_000);
  assert.equal(parseDuration('2w'), 1_209_600_000);
  assert.equal(parseDuration('600'), 600_000);
  assert.equal(parseDuration(600), 600_000);
  for (const bad of ['', '10', 'm', '10 m', '1h 30m', '-1h', '1.5h', 'forever', '10x', '1hh']) {
    if (bad === '10') continue;
    assert.equal(parseDuration(bad), undefined, bad);
  }
  assert.equal(formatDuration(5_400_000), '1h30m');
  assert.equal(formatDuration(604_800_000), '7d');
});

test('the embedded default serves one journald mail server: journald source, auth policy, ipset', () => {
  const c = configFromTexts([{ file: '<embedded default>', text: DEFAULT_CONFIG_YAML }]);
  assert.deepEqual(c.sources.map((s) => [s.name, s.type]), [['journal', 'journald']]);
  assert.equal(c.policies.length, 1);
  const p = c.policies[0]!;
  assert.equal(p.name, 'auth');
  assert.deepEqual(p.classes, ['auth']);
  assert.equal(p.maxretry, 5);
  assert.equal(p.findtime, 600_000);
  assert.equal(p.bantime, 3_600_000);
  assert.deepEqual(p.escalation, { factor: 2, maxBantime: 7 * 86_400_000, window: 30 * 86_400_000 });
  assert.equal(p.ipv6Prefix, 64);
  assert.equal(c.firewall.backend, 'ipset');
  assert.deepEqual(c.firewall.ports, [25, 110, 143, 465, 587, 993, 995, 4190]); // the mail ports, as the firewall stage orders them
  assert.deepEqual(c.metrics, { enabled: true, host: '127.0.0.1', port: 9761 });
  assert.equal(c.control.socket, '/run/mailjail/control.sock');
  assert.equal(c.state.dir, '/var/lib/mailjail');
});

// Every bad-config fixture is named after its fault; the expected error text sits beside it.
const fixtures = readdirSync(FIX).filter((n) => n.endsWith('.yaml')).sort();
for (const name of fixtures) {
  test(`bad config fixture ${name} is refused with the expected file:line:key error`, () => {
    const expected = readFileSync(FIX + name.replace(/\.yaml$/, '.expected'), 'utf8').trimEnd();
    assert.throws(
      () => configFromTexts([{ file: name, text: readFileSync(FIX + name, 'utf8') }]),
      (e: unknown) => {
        assert.ok(e instanceof ConfigError, String(e));
        assert.equal(e.problems.map(formatProblem).join('\n'), expected);
        assert.equal(e.code, e.problems[0]!.code);
        return true;
      },
    );
  });
}

test('drop-ins merge in name order over the main file; only *.yaml counts; enabled:false removes', () => {
  const c = loadConfig({ path: `${FIX}dropin-ok/mailjail.yaml` });
  assert.deepEqual(c.files.map((f) => f.slice(FIX.length)), [
    'dropin-ok/mailjail.yaml', 'dropin-ok/conf.d/10-collector.yaml', 'dropin-ok/conf.d/20-later.yaml',
  ]);
  assert.deepEqual(c.sources.map((s) => s.name), ['collector']);
  const src = c.sources[0]!;
  assert.ok(src.type === 'syslog-tcp');
  assert.deepEqual(src.listen, { host: '127.0.0.1', port: 6514 });
  assert.deepEqual(src.allow, ['127.0.0.0/8']);
  const p = c.policies[0]!;
  assert.equal(p.maxretry, 4, 'the later drop-in wins');
  assert.equal(p.findtime, 600_000, 'keys not restated are kept');
  assert.deepEqual(c.allowlist, ['198.51.100.0/24'], 'lists replace');
  assert.equal(c.logLevel, 'info', '30-ignored.yml is not a .yaml drop-in');
});

test('an error in a drop-in names the drop-in file and its line', () => {
  assert.throws(() => loadConfig({ path: `${FIX}dropin-bad/mailjail.yaml` }), (e: unknown) => {
    assert.ok(e instanceof ConfigError);
    assert.equal(e.problems.length, 1);
    const p = e.problems[0]!;
    assert.equal(p.file, `${FIX}dropin-bad/conf.d/50-local.yaml`);
    assert.equal(p.line, 4);
    assert.equal(p.key, 'policies.auth.bantime');
    assert.match(e.message, /50-local\.yaml:4:14: policies\.auth\.bantime: expected a duration/);
    return true;
  });
});

test('an explicit config path that does not exist is an error, not the default', () => {
  assert.throws(() => loadConfig({ path: '/nonexistent/mailjail.yaml' }), /MJ_CONFIG_READ: .*\/nonexistent\/mailjail.yaml:1:1: no such file/);
});

test('a source entry in a drop-in may amend without restating its type, and is checked against the merged type', () => {
  const base = { file: 'main.yaml', text: 'sources:\n  c: { type: syslog-udp, listen: ":514", allow: [10.0.0.0/8] }\npolicies:\n  auth: {}\n' };
  const ok = configFromTexts([base, { file: 'd.yaml', text: 'sources:\n  c:\n    maxMessageSize: 8192\n' }]);
  assert.equal(ok.sources[0]!.type === 'syslog-udp' && ok.sources[0]!.maxMessageSize, 8192);
  assert.deepEqual(ok.sources[0]!.type === 'syslog-udp' && ok.sources[0]!.listen, { host: '0.0.0.0', port: 514 });
  assert.throws(
    () => configFromTexts([base, { file: 'd.yaml', text: 'sources:\n  c:\n    lookback: 1h\n' }]),
    /d\.yaml:3:5: sources\.c\.lookback: not allowed for a source of type "syslog-udp"/,
  );
});

test('policy defaults: auth class, 5 in 10m, 1h, /32 and /64', () => {
  const c = configFromTexts([{ file: 'x.yaml', text: 'sources: { j: { type: journald } }\npolicies: { p: {} }\n' }]);
  assert.deepEqual(c.policies[0], {
    name: 'p', classes: ['auth'], maxretry: 5, findtime: 600_000, bantime: 3_600_000, ipv4Prefix: 32, ipv6Prefix: 64,
  });
});

test('relative paths are relative to the file that names them', () => {
  const c = loadConfig({ path: `${FIX}dropin-ok/mailjail.yaml` });
  assert.equal(c.rules.dir, `${FIX}rules-good`.replace('/config/rules-good', '/rules-good'));
});

test('a syslog listener takes its hostile-peer limits from the config and hands them to the source', async () => {
  const { makeSource } = await import('../../src/daemon/factories.js');
  const c = configFromTexts([{ file: 'limits.yaml', text: [
    'sources:',
    '  journal: { enabled: false }',
    '  feed: { type: syslog-tcp, listen: "127.0.0.1:5514", allow: [127.0.0.1/32],',
    '          frameTimeout: 2s, handshakeTimeout: 500ms, maxHeldBytes: 1048576 }',
    'policies:',
    '  auth: { classes: [auth], maxretry: 5, findtime: 10m, bantime: 1h }',
  ].join('\n') }]);
  const cfg = c.sources.find((s) => s.name === 'feed')!;
  assert.ok(cfg.type === 'syslog-tcp');
  assert.deepEqual([cfg.frameTimeout, cfg.handshakeTimeout, cfg.maxHeldBytes], [2000, 500, 1_048_576]);
  const src = makeSource(cfg, { stateDir: '/nonexistent', log: undefined as never, metrics: undefined as never, programs: [], lookbackMs: 0 });
  const o = (src as unknown as { cfg: Record<string, unknown> }).cfg; // the listener keeps its config as given
  assert.deepEqual([o['frameTimeoutMs'], o['handshakeTimeoutMs'], o['maxHeldBytes']], [2000, 500, 1_048_576]);
  assert.throws(() => configFromTexts([{ file: 'bad.yaml', text: 'sources:\n  feed: { type: syslog-tcp, listen: ":514", allow: [127.0.0.1/32], maxHeldBytes: 10 }\npolicies:\n  auth: { classes: [auth] }\n' }]), /bad\.yaml:2:.*maxHeldBytes/);
});
