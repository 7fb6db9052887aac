// The systemd unit and the wrapper, checked without building packages (packaging/ci-check.sh
// builds and installs them in CI).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const PKG = fileURLToPath(new URL('../../../packaging/', import.meta.url));
const unit = readFileSync(join(PKG, 'mailjail.service'), 'utf8');
const directives = new Map<string, string>();
for (const line of unit.split('\n')) {
  const m = /^([A-Za-z]+)=(.*)$/.exec(line);
  if (m) directives.set(m[1]!, m[2]!);
}

test('the unit carries the hardening the issue asks for', () => {
  const want: Record<string, string> = {
    CapabilityBoundingSet: 'CAP_NET_ADMIN CAP_NET_RAW',
    ProtectSystem: 'strict',
    ProtectHome: 'yes',
    PrivateTmp: 'yes',
    NoNewPrivileges: 'yes',
    StateDirectory: 'mailjail',
    RuntimeDirectory: 'mailjail',
    Restart: 'on-failure',
    SupplementaryGroups: 'systemd-journal',
    RestartPreventExitStatus: '2',
    ExecStart: '/usr/bin/mailjail run -c /etc/mailjail/mailjail.yaml',
    ExecReload: '/bin/kill -HUP $MAINPID',
  };
  for (const [k, v] of Object.entries(want)) assert.equal(directives.get(k), v, k);
});

test('systemd-analyze verify accepts the unit', (t) => {
  if (spawnSync('systemd-analyze', ['--version']).status !== 0) {
    t.skip('systemd-analyze not installed');
    return;
  }
  // verify checks that ExecStart exists: point it at a binary that does, the rest unchanged.
  const dir = mkdtempSync(join(tmpdir(), 'mj-unit-'));
  try {
    const copy = join(dir, 'mailjail.service');
    writeFileSync(copy, unit.replaceAll('/usr/bin/mailjail', '/bin/true'));
    const r = spawnSync('systemd-analyze', ['verify', copy], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.stderr.trim(), '', 'no warnings');
    const sec = spawnSync('systemd-analyze', ['security', '--offline=true', copy], { encoding: 'utf8' });
    const score = /Overall exposure level for mailjail\.service: ([\d.]+)/.exec(sec.stdout);
    assert.ok(score && Number(score[1]) < 4, `exposure ${score?.[1]}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the wrapper runs the shipped Node with the regex safety flag and passes arguments through', () => {
  const w = readFileSync(join(PKG, 'mailjail.sh'), 'utf8');
  assert.match(w, /^#!\/bin\/sh\n/);
  assert.match(w, /exec \/usr\/lib\/mailjail\/node\/bin\/node --enable-experimental-regexp-engine-on-excessive-backtracks \\\n\s+\/usr\/lib\/mailjail\/dist\/src\/cli\/main\.js "\$@"/);
});
