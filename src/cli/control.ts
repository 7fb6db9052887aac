// `mailjail status | bans | ban | unban | reload`: talk to the running daemon over its control socket.
import type { Command } from 'commander';
import { controlRequest, DEFAULT_SOCKET } from '../control/client.js';
import { formatBans, formatStatus } from '../control/format.js';
import type { BanEntry, BanResult, ReloadResult, StatusResult, UnbanResult } from '../control/protocol.js';
import { parseTarget } from '../control/target.js';
import { loadConfig } from '../daemon/config.js';
import { formatDuration, parseDuration } from '../lib/duration.js';
import { action } from '../daemon/report-error.js';
import { MailjailError } from '../types.js';

interface SocketOpts {
  socket?: string;
  config?: string;
}

/** --socket, then $MAILJAIL_SOCKET, then control.socket from the config, then the default. */
export function socketPath(opts: SocketOpts): string {
  if (opts.socket) return opts.socket;
  const env = process.env['MAILJAIL_SOCKET'];
  if (env) return env;
  try {
    return loadConfig(opts.config !== undefined ? { path: opts.config } : {}).control.socket;
  } catch (e) {
    if (opts.config !== undefined) throw e;
    return DEFAULT_SOCKET;
  }
}

function withSocket(c: Command): Command {
  return c
    .option('-s, --socket <path>', `control socket (default: from the config, else ${DEFAULT_SOCKET})`)
    .option('-c, --config <file>', 'config file to read the socket path from');
}

export function register(program: Command): void {
  withSocket(program.command('status'))
    .description('show sources, policies and counters of the running daemon')
    .option('--json', 'print the status as JSON')
    .action(action(async (opts: SocketOpts & { json?: boolean }) => {
      const s = (await controlRequest(socketPath(opts), 'status')) as StatusResult;
      process.stdout.write(opts.json ? `${JSON.stringify(s, null, 2)}\n` : formatStatus(s));
    }));

  withSocket(program.command('bans'))
    .description('list active bans: address, policy, until, level, evidence')
    .option('--json', 'print one JSON array')
    .action(action(async (opts: SocketOpts & { json?: boolean }) => {
      const r = (await controlRequest(socketPath(opts), 'bans')) as { bans: BanEntry[] };
      process.stdout.write(opts.json ? `${JSON.stringify(r.bans)}\n` : formatBans(r.bans));
    }));

  withSocket(program.command('ban'))
    .argument('<address>', 'IP address or CIDR network')
    .description('ban an address now, through the same ledger and firewall path as rule bans')
    .option('-p, --policy <name>', 'policy the ban belongs to (default: "manual", 1h unless --for)')
    .option('--for <duration>', 'ban duration, e.g. 30m, 12h, 7d (default: the policy\'s bantime)')
    .action(action(async (address: string, opts: SocketOpts & { policy?: string; for?: string }) => {
      const target = parseTarget(address); // fail fast with the same message the daemon would give
      let durationMs: number | undefined;
      if (opts.for !== undefined) {
        durationMs = parseDuration(opts.for);
        if (durationMs === undefined || durationMs < 1000) {
          throw new MailjailError('MJ_CTL_BAD_DURATION', `--for ${JSON.stringify(opts.for)} is not a duration such as 30m, 12h, 7d`);
        }
      }
      const r = (await controlRequest(socketPath(opts), 'ban', {
        target, ...(opts.policy !== undefined ? { policy: opts.policy } : {}), ...(durationMs !== undefined ? { durationMs } : {}),
      })) as BanResult;
      process.stdout.write(`banned ${r.target} (policy ${r.policy}, level ${r.level}) until ${new Date(r.until).toISOString()} (${formatDuration(r.until - Date.now())})\n`);
    }));

  withSocket(program.command('unban'))
    .argument('<address>', 'IP address or CIDR network')
    .description('lift a ban now')
    .action(action(async (address: string, opts: SocketOpts) => {
      const target = parseTarget(address);
      const r = (await controlRequest(socketPath(opts), 'unban', { target })) as UnbanResult;
      process.stdout.write(r.removed ? `unbanned ${r.target}\n` : `${r.target} had no active ban (removed from the firewall anyway)\n`);
    }));

  withSocket(program.command('reload'))
    .description('reload config and rules without losing counters or bans (same as SIGHUP); a broken config is refused')
    .action(action(async (opts: SocketOpts) => {
      const r = (await controlRequest(socketPath(opts), 'reload', {}, { timeoutMs: 60_000 })) as ReloadResult;
      process.stdout.write(`reloaded: ${r.files.join(', ')}\n`);
    }));
}
