// packaging/build.sh's arguments and tool checks, without building (packaging/ci-check.sh builds
// and installs in CI), and the runtime footprint: pino-pretty is a dev dependency, loaded when present.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { loadPretty } from '../../src/daemon/logger.js';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const BUILD = join(ROOT, 'packaging/build.sh');

/** build.sh with a PATH holding only what it needs before its tool check, plus `extra` stubs. */
function buildSh(args: string[], extra: string[]): { code: number | null; err: string; out: string } {
  const bin = mkdtempSync(join(tmpdir(), 'mj-build-bin-'));
  try {
    for (const tool of ['bash', 'dirname', 'date', 'sed']) {
      const r = spawnSync('bash', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
      symlinkSync(r.stdout.trim(), join(bin, tool));
    }
    symlinkSync(process.execPath, join(bin, 'node'));
    for (const stub of ['npm', ...extra]) {
      writeFileSync(join(bin, stub), '#!/bin/sh\nexit 0\n');
      chmodSync(join(bin, stub), 0o755);
    }
    const r = spawnSync(join(bin, 'bash'), [BUILD, ...args], { encoding: 'utf8', env: { PATH: bin } });
    return { code: r.status, err: r.stderr, out: r.stdout };
  } finally {
    rmSync(bin, { recursive: true, force: true });
  }
}

test('build.sh --deb needs no rpmbuild; --rpm and the default name what to install', () => {
  const deb = buildSh(['--deb', '--check-tools'], ['dpkg-deb']);
  assert.equal(deb.code, 0, deb.err);
  assert.match(deb.out, /the tools are there/);
  for (const args of [['--rpm', '--check-tools'], ['--check-tools']]) {
    const r = buildSh(args, ['dpkg-deb']);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.err, /rpmbuild not found \(Debian: apt-get install rpm; Fedora\/RHEL: dnf install rpm-build; or build only the \.deb with --deb\)/);
  }
  const rpm = buildSh(['--rpm', '--check-tools'], ['rpmbuild']);
  assert.equal(rpm.code, 0, rpm.err);
  const noDpkg = buildSh(['--deb', '--check-tools'], ['rpmbuild']);
  assert.equal(noDpkg.code, 1);
  assert.match(noDpkg.err, /dpkg-deb not found/);
  const bad = buildSh(['--debian'], []);
  assert.equal(bad.code, 2);
  assert.match(bad.err, /unknown argument '--debian'/);
});

test('build.sh refuses to leave out the sd-journal binding unless told, and records the reader', () => {
  const sh = readFileSync(BUILD, 'utf8');
  assert.match(sh, /NODE_VERSION=\$\{MAILJAIL_NODE_VERSION:-24\.\d+\.\d+\}/, 'the packages carry Node 24 LTS');
  assert.match(sh, /MAILJAIL_ALLOW_NO_SDJOURNAL:-0\}" = 1 \]; then[\s\S]*?else[\s\S]*?exit 1\n/);
  assert.match(sh, /echo "journald-reader \$JOURNALD_READER"/);
});

test('pino-pretty is a dev dependency: the logger takes it when present and falls back to JSON lines', () => {
  const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> };
  assert.equal(pkg.dependencies['pino-pretty'], undefined);
  assert.ok(pkg.devDependencies['pino-pretty']);
  assert.equal(typeof loadPretty(), 'function', 'installed here (dev)');
  const missing = (): never => { throw Object.assign(new Error("Cannot find module 'pino-pretty'"), { code: 'MODULE_NOT_FOUND' }); };
  assert.equal(loadPretty(missing), undefined);
  const broken = (): never => { throw new SyntaxError('broken install'); };
  assert.throws(() => loadPretty(broken), SyntaxError, 'a broken install is not hidden');
});
