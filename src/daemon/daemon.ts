// The running daemon as one object: what the CLI (`mailjail run`) and the tests hold. It only
// forwards: start-up and shutdown are start.ts, the commands control-handlers.ts, reload reload.ts.
import type { BanEntry, BanResult, ControlHandlers, ReloadResult, StatusResult, UnbanResult } from '../control/protocol.js';
import type { Cidr, Ip } from '../types.js';
import type { DaemonDeps } from './deps.js';
import { start, type Started } from './start.js';

export type { DaemonDeps } from './deps.js';

export class Daemon implements ControlHandlers {
  private constructor(private readonly s: Started) {}

  /** Starts everything in order (start.ts); throws MailjailError on failure, having closed what it opened. */
  static async start(deps: DaemonDeps): Promise<Daemon> {
    return new Daemon(await start(deps));
  }

  status(): Promise<StatusResult> {
    return this.s.handlers.status();
  }

  bans(): Promise<readonly BanEntry[]> {
    return this.s.handlers.bans();
  }

  ban(args: { target: Ip | Cidr; policy?: string; durationMs?: number }): Promise<BanResult> {
    return this.s.handlers.ban(args);
  }

  unban(args: { target: Ip | Cidr }): Promise<UnbanResult> {
    return this.s.handlers.unban(args);
  }

  /** SIGHUP and `mailjail reload`: one at a time; a broken config or rule pack is refused. */
  reload(): Promise<ReloadResult> {
    return this.s.reloader.reload();
  }

  /** Orderly shutdown; safe to call more than once. */
  stop(): Promise<void> {
    return this.s.stop();
  }
}
