#!/usr/bin/env node
// Runs every compiled test file under Node's own runner. Node 20's `--test` takes no globs,
// so the list is gathered here; extra args (e.g. a name filter) pass through.
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

const root = new URL('../dist/test/', import.meta.url).pathname;
const files = [];
const walk = (dir) => {
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else if (name.endsWith('.test.js')) files.push(p);
  }
};
walk(root);
const only = process.argv.slice(2);
const chosen = only.length ? files.filter((f) => only.some((o) => f.includes(o))) : files;
const r = spawnSync(process.execPath, [
  '--enable-experimental-regexp-engine-on-excessive-backtracks',
  '--test', '--test-reporter=spec', ...chosen,
], { stdio: 'inherit' });
process.exit(r.status ?? 1);
