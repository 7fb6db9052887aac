// Start-up order, and shutdown in the reverse order. Each part is built from parts built before
// it, so nothing waits for a later one:
//   config → rules → allowlist → ledger (restore) → decider → firewall sink → cluster publisher →
//   cluster enforcer → shared counter → pipeline → supervisor → firewall start (ensure, then the
//   ledger's and the cluster's active bans into the kernel) → enforcer catch-up → sources →
//   housekeeping.
// Sources come last, so that no match is counted before bans are in place. Shutdown: sources
// (drain) → cluster links → pending firewall decisions → ledger checkpoint → close.
import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import { loadRulePack } from '../rules/pack.js';
import { loadAllowlist } from '../state/allowlist.js';
import { Decider, type RestoreIssue } from '../state/decider.js';
import { Ledger } from '../state/ledger.js';
import { MailjailError } from '../types.js';
import type { ControlHandlers } from '../control/protocol.js';
import { CountedAttempts, countsShared, kernelBans, makeEnforcer, makePublisher, makeSharedCounter, localFirewall, readsSources, registerClusterGauge } from './cluster-wiring.js';
import { ControlCommands } from './control-handlers.js';
import { DecisionLog } from './decision-log.js';
import type { DaemonDeps } from './deps.js';
import { EvidenceLog } from './evidence.js';
import { FirewallSink } from './firewall-sink.js';
import { Housekeeping, LedgerMetrics } from './housekeeping.js';
import type { InForce } from './in-force.js';
import type { Metrics } from './metrics.js';
import { Pipeline } from './pipeline.js';
import { RateLimitedLog } from './rate-limit.js';
import { Reloader } from './reload.js';
import { ledgerHistoryMs } from './state-policy.js';
import { SourceBuildError, Supervisor } from './supervisor.js';
import { SwappableAllowlist } from './swappable-allowlist.js';

/** A started daemon: what the control socket may ask of it, and how to stop it. */
export interface Started {
  readonly handlers: Omit<ControlHandlers, 'reload'>;
  readonly reloader: Reloader;
  /** Orderly shutdown; safe to call more than once. */
  readonly stop: () => Promise<void>;
}

/**
 * Ledger bans start-up restore left out or shortened (hand-edited or damaged ledger): one warning
 * each naming the target (the first 50, then a count), and mailjail_ledger_restore_issues_total.
 */
function reportRestoreIssues(log: Logger, metrics: Metrics, path: string, issues: readonly RestoreIssue[]): void {
  if (issues.length === 0) return;
  const counter = metrics.counter('mailjail_ledger_restore_issues_total', 'Ledger bans refused or clamped at start-up restore, by action', ['action']);
  for (const i of issues) counter.inc({ action: i.action });
  for (const i of issues.slice(0, 50)) {
    log.warn({ target: i.target, policy: i.policy, action: i.action, reason: i.reason, ledger: path },
      `ledger ban of ${i.target} ${i.action === 'refused' ? 'not restored' : 'shortened'}: ${i.reason}`);
  }
  const refused = issues.filter((i) => i.action === 'refused').length;
  log.warn({ refused, clamped: issues.length - refused, ledger: path }, 'ledger bans failed the restore checks (hand-edited or damaged ledger?)');
}

/**
 * Starts everything in order (see the top of this file).
 * Throws MailjailError (config/rules: MJ_CONFIG*, MJ_RULE*; firewall: MJ_FW*) on failure.
 */
export async function start(deps: DaemonDeps): Promise<Started> {
  const { log, metrics } = deps;
  const now = deps.now ?? Date.now;
  const config = deps.loadConfig();
  const engine = (deps.loadRules ?? loadRulePack)(config.rules.dir);
  const allow = new SwappableAllowlist(await loadAllowlist({ entries: config.allowlist, self: deps.allowSelf ?? true }, deps.resolveHost));
  try {
    mkdirSync(config.state.dir, { recursive: true, mode: 0o750 });
  } catch (e) {
    throw new MailjailError('MJ_STATE_DIR', `cannot create the state directory ${config.state.dir}: ${(e as Error).message}`);
  }
  // Past bans are kept as long as the longest escalation/recidive window needs them (a 90-day
  // window must still see a 40-day-old ban after compaction).
  const { ledger, state, badLines } = Ledger.open(config.state.dir, { historyMs: ledgerHistoryMs(config) });
  if (badLines > 0) log.warn({ badLines, ledger: ledger.path }, 'ledger had unreadable lines (a torn last write is normal after a crash)');
  // Shared counting (collectors with redis.sharedCounting): the decider tells it every attempt.
  const counted = countsShared(config) ? new CountedAttempts() : undefined;
  let decider: Decider;
  let restoredBans: number;
  try {
    decider = new Decider({
      policies: config.policies, allowlist: allow, maxTracked: config.state.maxTracked, ledger,
      ...(counted ? { onCounted: counted.emit } : {}),
    });
    const issues: RestoreIssue[] = [];
    restoredBans = decider.restore(state, now(), (i) => issues.push(i)).length;
    reportRestoreIssues(log, metrics, ledger.path, issues);
  } catch (e) {
    ledger.close();
    throw e;
  }
  const inForce: InForce = { config, engine, stopping: false };
  const warnings = new RateLimitedLog(log, { intervalMs: 60_000 });
  const evidence = new EvidenceLog(Math.max(...config.policies.map((p) => p.findtime)));
  const decisions = new DecisionLog(log, evidence, now);
  const ledgerMetrics = new LedgerMetrics(ledger, metrics, warnings);
  const clog = log.child({ component: 'cluster' });
  let cluster: Parameters<typeof registerClusterGauge>[1] = {};
  let sink: FirewallSink;
  try {
    const backend = deps.makeFirewall(localFirewall(config), { log, metrics });
    sink = new FirewallSink(backend, metrics, log, deps.firewallCheckMs !== undefined ? { checkIntervalMs: deps.firewallCheckMs } : {});
    const publisher = makePublisher(config, clog, decider, now);
    cluster = { publisher };
    const enforcer = makeEnforcer(config, clog, { sink, allow, decider, now });
    cluster = { publisher, enforcer };
    const counter = counted && makeSharedCounter(config, clog, counted, { inForce, decider, sink, publisher, decisions, log, warnings, now });
    cluster = { publisher, enforcer, counter };
    registerClusterGauge(metrics, cluster);
    // healthcheck, ensure, then make the kernel hold exactly the ledger's (and the cluster's) active bans.
    await sink.start(kernelBans(decider, enforcer, now));
  } catch (e) {
    cluster.publisher?.close(0).catch(() => {});
    cluster.counter?.close();
    cluster.enforcer?.stop().catch(() => {});
    ledger.close();
    throw e;
  }
  const { publisher, enforcer, counter } = cluster;
  // After the firewall holds the ledger's and the last known cluster bans: catch up from Redis.
  enforcer?.start();

  const pipeline = new Pipeline({ inForce, decider, sink, publisher, evidence, decisions, ledgerMetrics, metrics, warnings, now });
  const supervisor = new Supervisor({
    makeSource: deps.makeSource, onBatch: (b, source) => pipeline.onBatch(b, source), log, metrics,
    restartBaseMs: deps.restartBaseMs ?? 1000, restartMaxMs: deps.restartMaxMs ?? 60_000,
  });
  const handlers = new ControlCommands({ version: deps.version, inForce, decider, sink, publisher, evidence, decisions, pipeline, supervisor, now });
  const reloader = new Reloader({ deps, inForce, decider, allow, ledger, counter, supervisor, log, metrics });
  const housekeeping = new Housekeeping({ inForce, decider, evidence, sink, ledgerMetrics, metrics, log, warnings, now });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopping ??= (async () => {
    inForce.stopping = true;
    log.info('stopping: sources, then pending bans, then the ledger');
    housekeeping.stop();
    if ((await supervisor.stopAll(10_000)) === 'timeout') log.warn('a source did not stop within 10 s');
    counter?.close();
    await enforcer?.stop();
    await publisher?.close(5000);
    const left = await sink.close(10_000);
    if (left > 0) log.warn({ pending: left }, 'firewall did not take every pending decision; they are in the ledger and re-applied at next start');
    try {
      ledger.mark(decider.through());
    } catch (e) {
      log.error({ err: (e as Error).message }, 'could not checkpoint the ledger');
    }
    ledger.close();
    log.info('stopped');
  })());

  try {
    if (!readsSources(config)) {
      if (config.sources.length > 0) log.warn({ sources: config.sources.map((s) => s.name) }, 'role enforcer: sources are not read (set role: both to also count here)');
    } else {
      // A source that cannot even be created fails the start.
      let built;
      try {
        built = supervisor.build(config.sources, config, engine);
      } catch (e) {
        throw e instanceof SourceBuildError ? e.cause : e; // as the source factory threw it
      }
      for (const [cfg, first] of built) supervisor.run(cfg, first, config, engine);
    }
  } catch (e) {
    await stop();
    throw e;
  }
  housekeeping.start(deps.tickMs ?? 5000);
  log.info({
    version: deps.version, config: config.files, sources: config.sources.map((s) => s.name),
    policies: config.policies.map((p) => p.name), firewall: sink.backendName, restoredBans,
  }, 'mailjail started');
  return { handlers, reloader, stop };
}
