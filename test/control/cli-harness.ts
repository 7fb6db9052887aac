// A stand-in for src/cli/main.ts in tests: the CLI modules of this stage on one commander program.
import { Command } from 'commander';
import { register as registerConfig } from '../../src/cli/config.js';
import { register as registerControl } from '../../src/cli/control.js';

const program = new Command('mailjail').exitOverride((e) => {
  process.exit(e.exitCode === 0 ? 0 : 2);
});
registerConfig(program);
registerControl(program);
await program.parseAsync(process.argv);
