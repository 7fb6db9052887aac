// `mailjail run [-c FILE] [--dry-run]`: the daemon (systemd's ExecStart).
import type { Command } from 'commander';
import { DEFAULT_CONFIG_PATH } from '../daemon/config.js';
import { runDaemon } from '../daemon/run.js';

export function register(program: Command): void {
  program
    .command('run')
    .description('run the daemon: sources → rules → state → firewall (SIGHUP reloads, SIGTERM stops)')
    .option('-c, --config <file>', `main config file (default ${DEFAULT_CONFIG_PATH}, else the embedded default)`)
    .option('--dry-run', 'decide and log bans but only pretend to apply them (dry-run firewall)')
    .action(async (opts: { config?: string; dryRun?: boolean }) => {
      const code = await runDaemon({
        ...(opts.config !== undefined ? { config: opts.config } : {}),
        ...(opts.dryRun ? { dryRun: true } : {}),
      });
      // Sources or timers may still hold the loop for a moment; the exit code is decided.
      process.exit(code);
    });
}
