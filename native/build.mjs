#!/usr/bin/env node
// Builds native/sdjournal.c into build/sdjournal.node, run by `npm ci` (postinstall).
// Optional by design: without a C compiler, libsystemd-dev or Node's headers it prints why and
// exits 0, and the journald source falls back to a `journalctl -o export` child.
// Not node-gyp: node-gyp fetches Node's headers from the internet unless told where they are;
// the compiler call below uses the headers every Node install ships, and needs nothing else.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'build', 'sdjournal.node');
const src = join(root, 'native', 'sdjournal.c');
const say = (m) => process.stderr.write(`mailjail native: ${m}\n`);

if (process.env.MAILJAIL_NO_NATIVE) {
  say('MAILJAIL_NO_NATIVE set: skipping the sd-journal binding (journalctl fallback).');
  process.exit(0);
}
const headerDirs = [
  join(dirname(process.execPath), '..', 'include', 'node'),
  '/usr/include/node',
  '/usr/local/include/node',
].filter((d) => existsSync(join(d, 'node_api.h')));
if (headerDirs.length === 0) {
  say("Node's headers (node_api.h) not found: skipping the sd-journal binding (journalctl fallback).");
  process.exit(0);
}
let flags;
try {
  flags = execFileSync('pkg-config', ['--cflags', '--libs', 'libsystemd'], { encoding: 'utf8' }).trim().split(/\s+/).filter(Boolean);
} catch {
  say('libsystemd-dev (pkg-config libsystemd) not found: skipping the sd-journal binding (journalctl fallback).');
  process.exit(0);
}
try {
  mkdirSync(dirname(out), { recursive: true });
  execFileSync(process.env.CC ?? 'cc', [
    '-O2', '-shared', '-fPIC', '-Wall', '-Wextra', '-Wno-unused-parameter', '-std=gnu11',
    `-I${headerDirs[0]}`, src, '-o', out, ...flags,
  ], { stdio: 'inherit' });
  say(`built ${out}`);
} catch (e) {
  say(`compile failed (${e.message}): journalctl fallback will be used.`);
}
