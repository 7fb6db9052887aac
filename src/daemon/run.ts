// `mailjail run` as a process: config → logger → metrics → daemon → control socket → metrics
// endpoint; SIGHUP reloads, SIGTERM/SIGINT stop in order. Returns the process exit code
// (docs/daemon.md): 0 orderly stop, 1 runtime failure, 2 bad config or rule pack.
import { ControlServer, bindHandlers } from '../control/server.js';
import { MailjailError } from '../types.js';
import { ConfigError, loadConfig, type MailjailConfig } from './config.js';
import { EXIT } from './exit-codes.js';
import { makeFirewall, makeSource } from './factories.js';
import { createLogger, type Logger } from './logger.js';
import { Metrics, serveMetrics, type MetricsServer } from './metrics.js';
import { Daemon } from './daemon.js';
import type { DaemonDeps } from './deps.js';
import { version } from './version.js';

export interface RunOptions {
  readonly config?: string;
  /** Use the dry-run firewall whatever the config says. */
  readonly dryRun?: boolean;
  /** Resolves when the daemon should stop (default: SIGTERM or SIGINT). */
  readonly until?: Promise<unknown>;
  readonly overrides?: Partial<DaemonDeps>;
}

function isConfigFault(e: unknown): boolean {
  const code = e instanceof MailjailError ? e.code : '';
  return e instanceof ConfigError || code.startsWith('MJ_CONFIG') || code.startsWith('MJ_RULE') || code === 'MJ_STATE_POLICY'
    || code.startsWith('MJ_STATE_ALLOW') || code === 'MJ_FW_CONFIG' || code === 'MJ_SRC_CONFIG';
}

export async function runDaemon(opts: RunOptions = {}): Promise<number> {
  const load = (): MailjailConfig => loadConfig(opts.config !== undefined ? { path: opts.config } : {});
  let config: MailjailConfig;
  try {
    config = load();
  } catch (e) {
    process.stderr.write(`mailjail: ${(e as Error).message}\n`);
    return EXIT.CONFIG;
  }
  // SIGHUP's default action kills the process: hold it during start-up, reload once started.
  let hupDuringStart = false;
  const earlyHup = (): void => { hupDuringStart = true; };
  process.on('SIGHUP', earlyHup);
  const log: Logger = createLogger({ level: config.logLevel });
  // A bug must not die silently: one fatal JSON line for journald, then exit 1 (systemd restarts;
  // the ledger holds every ban).
  const fatal = (kind: string) => (err: unknown): void => {
    log.fatal({ err: (err as Error)?.stack ?? String(err), kind }, 'unexpected error: exiting');
    process.exit(EXIT.FAILURE);
  };
  process.on('uncaughtException', fatal('uncaughtException'));
  process.on('unhandledRejection', fatal('unhandledRejection'));
  const metrics = new Metrics();
  let daemon: Daemon;
  try {
    daemon = await Daemon.start({
      loadConfig: load,
      log,
      metrics,
      makeSource,
      makeFirewall: (cfg, ctx) => makeFirewall(cfg, ctx, { dryRun: opts.dryRun === true }),
      version: version(),
      ...opts.overrides,
    });
  } catch (e) {
    log.fatal({ err: (e as Error).message, code: (e as MailjailError).code }, 'cannot start');
    return isConfigFault(e) ? EXIT.CONFIG : EXIT.FAILURE;
  }

  const control = bindHandlers(new ControlServer({
    path: config.control.socket,
    onError: (err, cmd) => log.error({ err: (err as Error)?.stack ?? String(err), cmd }, 'control command failed'),
  }), daemon);
  let metricsServer: MetricsServer | undefined;
  try {
    await control.listen();
    if (config.metrics.enabled) metricsServer = await serveMetrics(metrics, config.metrics);
  } catch (e) {
    log.fatal({ err: (e as Error).message }, 'cannot start');
    await daemon.stop();
    await control.close();
    return EXIT.FAILURE;
  }
  log.info({ control: config.control.socket, metrics: metricsServer ? `${metricsServer.host}:${metricsServer.port}` : 'off' }, 'ready');

  const onHup = (): void => {
    daemon.reload().catch(() => { /* logged by reload; the old config keeps running */ });
  };
  process.on('SIGHUP', onHup);
  process.off('SIGHUP', earlyHup);
  if (hupDuringStart) onHup();
  let signals = 0;
  const stopSignal = new Promise<string>((resolve) => {
    const onSig = (sig: NodeJS.Signals): void => {
      if (++signals > 1) {
        log.warn({ signal: sig }, 'second signal: exiting now (the ledger already holds every ban)');
        process.exit(EXIT.FAILURE);
      }
      resolve(sig);
    };
    process.on('SIGTERM', onSig);
    process.on('SIGINT', onSig);
  });
  const why = await Promise.race([stopSignal, opts.until ?? new Promise<never>(() => {})]);
  log.info({ reason: typeof why === 'string' ? why : 'requested' }, 'shutting down');
  process.off('SIGHUP', onHup);
  await control.close();
  await daemon.stop();
  await metricsServer?.close();
  return EXIT.OK;
}
