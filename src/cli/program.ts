// The mailjail command line (loaded by main.ts once the Node.js version is known to be new enough):
// one commander program, one module per command.
import './regexp-safety.js';
import { readFileSync } from 'node:fs';
import { Command } from 'commander';
import { register as registerCheck } from './check.js';
import { register as registerConfig } from './config.js';
import { register as registerControl } from './control.js';
import { register as registerRules } from './rules.js';
import { register as registerRun } from './run.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };

const program = new Command()
  .name('mailjail')
  .description('Stops brute-force attacks on mail servers: journald and syslog in, ipset/nftables bans out.')
  .version(pkg.version)
  .showHelpAfterError();

registerCheck(program);
registerConfig(program);
registerControl(program);
registerRules(program);
registerRun(program);

await program.parseAsync(process.argv);
