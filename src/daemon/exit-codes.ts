// Exit codes of every mailjail command, documented in docs/daemon.md. The systemd unit uses
// RestartPreventExitStatus=2 so that a broken config is not restarted in a loop.
export const EXIT = {
  /** Success (for `run`: orderly shutdown after SIGTERM/SIGINT). */
  OK: 0,
  /** Runtime failure: firewall setup failed, state directory unusable, a fatal error while running. */
  FAILURE: 1,
  /** Bad configuration or command-line usage; fix the config, restarting will not help. */
  CONFIG: 2,
  /** The daemon is not reachable on its control socket (not running, or permission denied). */
  UNREACHABLE: 3,
  /** The daemon refused the request (invalid address, unknown policy, broken new config on reload). */
  REFUSED: 4,
} as const;

/** Maps an error code (MJ_*) to the exit code a command should end with. */
export function exitCodeFor(code: string | undefined): number {
  if (code === undefined) return EXIT.FAILURE;
  if (code.startsWith('MJ_CONFIG') || code.startsWith('MJ_RULE') || code === 'MJ_USAGE') return EXIT.CONFIG;
  if (code === 'MJ_CTL_UNREACHABLE' || code === 'MJ_CTL_DENIED' || code === 'MJ_CTL_TIMEOUT' || code === 'MJ_CTL_IO') return EXIT.UNREACHABLE;
  if (code.startsWith('MJ_CTL_') || code === 'MJ_RELOAD_REFUSED') return EXIT.REFUSED;
  return EXIT.FAILURE;
}
