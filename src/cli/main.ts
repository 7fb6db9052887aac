#!/usr/bin/env node
// The `mailjail` entry point. It only checks the Node.js version, then loads the program: nothing
// is imported statically, so on an old Node (Debian 12's apt gives 18) the user reads why, instead
// of a syntax or API error from deep inside a dependency.
import { nodeTooOld } from './node-version.js';

const refusal = nodeTooOld(process.versions.node);
if (refusal) {
  process.stderr.write(refusal);
  process.exit(1);
}
await import('./program.js');
