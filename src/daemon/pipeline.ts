// `mailjail run`: the one place where the stages are wired together.
//   sources → parse → rules → state → firewall
// plus the supervisor (restart sources with backoff), reload (SIGHUP / `mailjail reload`) that
// keeps counters and bans, the control socket handlers, and orderly shutdown:
// stop sources → drain → flush pending bans → checkpoint the ledger → close.
import { mkdirSync } from 'node:fs';
import type { Logger } from 'pino';
import { parseRecord } from '../parse/index.js';
import type { RuleEngine } from '../rules/engine.js';
import { loadRulePack } from '../rules/pack.js';
import { ClusterEnforcer } from '../cluster/enforcer.js';
import { ClusterPublisher } from '../cluster/publisher.js';
import { SharedCounter, type SharedPolicy } from '../state/redis-counter.js';
import { loadAllowlist } from '../state/allowlist.js';
import { Decider, type RestoreIssue } from '../state/decider.js';
import { Ledger } from '../state/ledger.js';
import { historyMsFor } from '../state/policy.js';
import type { BanDecision, Cidr, FirewallBackend, Ip, Match, RawRecord, Source } from '../types.js';
import { MailjailError } from '../types.js';
import type { BanEntry, BanResult, ControlHandlers, ReloadResult, StatusResult, UnbanResult } from '../control/protocol.js';
import type { ResolvedFirewallConfig } from '../firewall/config.js';
import type { MailjailConfig, SourceConfig } from './config.js';
import { POLICY_DEFAULTS } from './config-schema.js';
import { MANUAL_POLICY_NAME } from './config.js';
import { formatDuration } from './duration.js';
import { EvidenceLog } from './evidence.js';
import { FirewallSink } from './firewall-sink.js';
import type { Metrics } from './metrics.js';
import { RateLimitedLog } from './rate-limit.js';
import { SwappableAllowlist } from './swappable-allowlist.js';

/** What a source factory gets besides its own config. */
export interface SourceContext {
  readonly stateDir: string;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Program names/globs the rule pack listens to, for filtering at the source. */
  readonly programs: readonly string[];
  /** On first start, how far back to read (the longest findtime when the source sets none). */
  readonly lookbackMs: number;
}

export interface FirewallContext {
  readonly log: Logger;
  readonly metrics: Metrics;
}

export interface DaemonDeps {
  /** Loads (and validates) the config; called at start and on every reload. */
  readonly loadConfig: () => MailjailConfig;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly makeSource: (cfg: SourceConfig, ctx: SourceContext) => Source;
  readonly makeFirewall: (cfg: ResolvedFirewallConfig, ctx: FirewallContext) => FirewallBackend;
  readonly loadRules?: (dir: string) => RuleEngine;
  readonly resolveHost?: (host: string) => Promise<string[]>;
  /** Add this machine's addresses and loopback to the allowlist (default true; tests turn it off). */
  readonly allowSelf?: boolean;
  readonly now?: () => number;
  readonly version: string;
  /** Supervisor backoff for failing sources (ms). */
  readonly restartBaseMs?: number;
  readonly restartMaxMs?: number;
  /** Housekeeping interval (gauges, sweep, events), ms. */
  readonly tickMs?: number;
  /** How often the firewall stage checks that its sets and hooks are still there (ms; 0 = never). */
  readonly firewallCheckMs?: number;
}

/**
 * Policy thresholds for shared counting (config durations are ms). A policy with `distinctUsers`
 * is left out: the user names are not shared, so it is counted per collector only.
 */
function sharedPolicies(c: MailjailConfig): Map<string, SharedPolicy> {
  return new Map(c.policies.filter((p) => p.distinctUsers === undefined).map((p) => [p.name, { findtimeMs: p.findtime, maxretry: p.maxretry }]));
}

/**
 * How long the ledger keeps past bans: the longest escalation/recidive history any policy needs,
 * and never less than the default escalation window, so that a policy added by a later reload
 * still finds a month of history.
 */
export function ledgerHistoryMs(c: MailjailConfig): number {
  return Math.max(POLICY_DEFAULTS.escalation.window, historyMsFor(c.policies));
}

/** Whether this daemon reads its sources (a pure enforcer in a cluster does not). */
function readsSources(c: MailjailConfig): boolean {
  return !(c.redis && (c.role ?? 'both') === 'enforcer');
}

/** The numeric part of what a source says about itself (sources may offer `stats()`). */
function sourceStats(src: Source | undefined): Record<string, number> | undefined {
  const st = (src as { stats?: () => unknown } | undefined)?.stats?.();
  if (!st || typeof st !== 'object') return undefined;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(st)) if (typeof v === 'number') out[k] = v;
  return out;
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

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> =>
  Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref?.())]);

/** A source that could not be built, by name (`cause` is what its factory threw). */
class SourceBuildError extends Error {
  constructor(readonly source: string, override readonly cause: unknown) {
    super(`source "${source}": ${(cause as Error)?.message ?? String(cause)}`);
  }
}

type RunnerState = 'starting' | 'running' | 'restarting' | 'finished' | 'stopped';

/** Runs one source, restarting it with backoff when it fails (the source never retries itself). */
class SourceRunner {
  state: RunnerState = 'starting';
  lines = 0;
  restarts = 0;
  lastError: string | undefined;
  /** The source instance running now (for its own stats()). */
  current: Source | undefined;
  private readonly ac = new AbortController();
  readonly loop: Promise<void>;

  constructor(
    readonly cfg: SourceConfig,
    private readonly make: () => Source,
    private readonly onBatch: (batch: readonly RawRecord[], runner: SourceRunner) => void,
    private readonly d: Daemon,
    /** Built beforehand (a new source), or undefined: built here (one replacing an old instance). */
    first: Source | undefined,
  ) {
    this.loop = this.run(first);
  }

  get name(): string {
    return this.cfg.name;
  }

  abort(): void {
    this.ac.abort();
  }

  private async run(first: Source | undefined): Promise<void> {
    const signal = this.ac.signal;
    let attempt = 0;
    let src = first;
    while (!signal.aborted) {
      try {
        src ??= this.make();
        this.current = src;
        this.state = 'running';
        for await (const batch of src.records(signal)) {
          attempt = 0;
          this.lines += batch.length;
          this.onBatch(batch, this);
          if (signal.aborted) break; // drain: the batch in hand is done, then stop
        }
        if (!signal.aborted) {
          this.state = 'finished';
          this.d.log.info({ source: this.name }, 'source finished');
          return;
        }
      } catch (e) {
        if (signal.aborted) break;
        this.lastError = (e as Error)?.message ?? String(e);
        this.state = 'restarting';
        this.restarts++;
        this.d.metrics.sourceRestarts.inc({ source: this.name });
        const delay = Math.min(this.d.restartMaxMs, this.d.restartBaseMs * 2 ** Math.min(attempt++, 16));
        this.d.log.warn({ source: this.name, err: this.lastError, retryInMs: delay }, 'source failed; restarting');
        await sleep(delay, signal);
      }
      src = undefined;
    }
    this.state = 'stopped';
  }
}

export class Daemon implements ControlHandlers {
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly restartBaseMs: number;
  readonly restartMaxMs: number;
  private config: MailjailConfig;
  private engine: RuleEngine;
  private readonly decider: Decider;
  private readonly allow: SwappableAllowlist;
  private readonly ledger: Ledger;
  private readonly sink: FirewallSink;
  private readonly evidence: EvidenceLog;
  private readonly runners = new Map<string, SourceRunner>();
  private readonly warnings: RateLimitedLog;
  private readonly now: () => number;
  private readonly startedAt: number;
  private tick: NodeJS.Timeout | undefined;
  private lastEvictions = 0;
  private stopping: Promise<void> | undefined;
  private reloading: Promise<ReloadResult> | undefined;
  private readonly counters = { lines: 0, parseErrors: 0, matches: 0 };
  /** Ledger failure counts already exported as metrics. */
  private ledgerSeen = { write: 0, compaction: 0 };
  /** Cluster mode (docs/cluster.md): decisions out to Redis, and Redis decisions into our firewall. */
  private readonly publisher: ClusterPublisher | undefined;
  private readonly enforcer: ClusterEnforcer | undefined;
  private readonly counter: SharedCounter | undefined;

  private constructor(
    private readonly deps: DaemonDeps,
    init: {
      config: MailjailConfig; engine: RuleEngine; decider: Decider; allow: SwappableAllowlist; ledger: Ledger; backend: FirewallBackend;
      publisher?: ClusterPublisher | undefined; enforcer?: ClusterEnforcer | undefined; counter?: SharedCounter | undefined;
    },
  ) {
    this.log = deps.log;
    this.metrics = deps.metrics;
    this.restartBaseMs = deps.restartBaseMs ?? 1000;
    this.restartMaxMs = deps.restartMaxMs ?? 60_000;
    this.now = deps.now ?? Date.now;
    this.startedAt = this.now();
    this.config = init.config;
    this.engine = init.engine;
    this.decider = init.decider;
    this.allow = init.allow;
    this.ledger = init.ledger;
    this.publisher = init.publisher;
    this.enforcer = init.enforcer;
    this.counter = init.counter;
    this.sink = new FirewallSink(init.backend, deps.metrics, deps.log, {
      // Cluster bans applied here (from Redis) belong in the kernel too, so reconcile and
      // recovery keep them.
      activeBans: () => {
        const m = new Map<string, number>(this.decider.activeBans(this.now()).map((b) => [b.target, b.until]));
        for (const [t, u] of this.enforcer?.activeBans() ?? []) if ((m.get(t) ?? 0) < u) m.set(t, u);
        return m;
      },
      ...(deps.firewallCheckMs !== undefined ? { checkIntervalMs: deps.firewallCheckMs } : {}),
    });
    this.evidence = new EvidenceLog(Math.max(...init.config.policies.map((p) => p.findtime)));
    this.warnings = new RateLimitedLog(deps.log, { intervalMs: 60_000 });
    // Whatever numbers a source reports about itself (received, denied, oversize, dropped, filtered...).
    this.metrics.gauge('mailjail_source_stat', 'Counters a source reports about itself, by source and counter', ['source', 'stat'], (g) => {
      g.reset();
      for (const r of this.runners.values()) {
        for (const [k, v] of Object.entries(sourceStats(r.current) ?? {})) g.set({ source: r.name, stat: k }, v);
      }
    });
    if (this.publisher || this.enforcer || this.counter) {
      this.metrics.gauge('mailjail_cluster_stat', 'Redis cluster link figures (published, queued, dropped, applied, refused, reconnects, connected, ...), by link', ['link', 'stat'], (g) => {
        g.reset();
        for (const [link, st] of [['publisher', this.publisher?.stats()], ['enforcer', this.enforcer?.stats()], ['counter', this.counter?.stats()]] as const) {
          for (const [k, v] of Object.entries(st ?? {})) {
            if (typeof v === 'number' || typeof v === 'boolean') g.set({ link, stat: k }, Number(v));
          }
        }
      });
    }
  }

  /** Enforcer → local firewall, through the same sink as our own decisions; resolves once applied. */
  private async applyCluster(batch: readonly BanDecision[]): Promise<void> {
    for (const d of batch) this.log.info({ event: `cluster-${d.action}`, target: d.target, ...(d.action === 'ban' ? { until: new Date(d.until).toISOString(), policy: d.policy } : {}) }, `cluster ${d.action} ${d.target}`);
    await this.sink.push(batch);
    if (!(await this.sink.settled(batch, 30_000))) throw new MailjailError('MJ_CLUSTER_FW_PENDING', 'the local firewall has not applied the cluster decisions yet');
  }

  /**
   * Shared counting: the cluster-wide count of (policy, key) reached maxretry with an attempt this
   * collector counted. Banned through the state stage like any ban (ledger, escalation), unless the
   * local count got there too (same attempt) and it is banned already.
   */
  private sharedBan(policy: string, key: Ip | Cidr, ruleId: string, count: number): void {
    if (this.stopping) return;
    const now = this.now();
    if (this.decider.activeBans(now).some((b) => b.target === key)) return;
    let ds: BanDecision[];
    try {
      ds = this.decider.ban({ target: key, now, policy, ruleId });
    } catch (e) {
      this.warnings.warn(`shared ${key}`, { target: key, err: (e as Error).message }, 'shared count reached maxretry but the ban was refused');
      return;
    }
    this.log.info({ target: key, policy, sharedCount: count }, `shared count of ${key} reached ${count} across collectors`);
    for (const d of ds) this.logDecision(d, undefined);
    void this.sink.push(ds);
    this.publisher?.publish(ds);
  }

  /** Local veto on targets from Redis: this host's allowlist. */
  private clusterRefuse(target: string): string | undefined {
    const hit = target.includes('/') ? this.allow.overlaps(target as Cidr) : this.allow.contains(target as Ip);
    return hit ? 'allowlisted on this host' : undefined;
  }

  /**
   * Starts everything in order: rules, allowlist, ledger (restore), firewall (ensure, then re-apply
   * the ledger's active bans), sources last, so that no match is counted before bans are in place.
   * Throws MailjailError (config/rules: MJ_CONFIG*, MJ_RULE*; firewall: MJ_FW*) on failure.
   */
  static async start(deps: DaemonDeps): Promise<Daemon> {
    const log = deps.log;
    const now = (deps.now ?? Date.now)();
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
    let decider: Decider;
    let restored: BanDecision[];
    // Shared counting (collectors with redis.sharedCounting): the decider tells it every attempt.
    let counterOwner: Daemon | undefined;
    const counter = config.redis?.sharedCounting && (config.role ?? 'both') !== 'enforcer'
      ? new SharedCounter(config.redis, log.child({ component: 'cluster' }), sharedPolicies(config), (p, k, r, c) => counterOwner?.sharedBan(p, k, r, c))
      : undefined;
    try {
      decider = new Decider({
        policies: config.policies, allowlist: allow, maxTracked: config.state.maxTracked, ledger,
        ...(counter ? { onCounted: (e) => counter.note(e) } : {}),
      });
      const issues: RestoreIssue[] = [];
      restored = decider.restore(state, now, (i) => issues.push(i));
      reportRestoreIssues(log, deps.metrics, ledger.path, issues);
    } catch (e) {
      counter?.close();
      ledger.close();
      throw e;
    }
    let d: Daemon;
    const role = config.role ?? 'both';
    let publisher: ClusterPublisher | undefined;
    let enforcer: ClusterEnforcer | undefined;
    let publisherReady: ((d: Daemon) => void) | undefined;
    try {
      // A pure collector decides and publishes; it does not touch its own kernel.
      const fwCfg = config.redis && role === 'collector' ? { ...config.firewall, backend: 'dry-run' as const } : config.firewall;
      const backend = deps.makeFirewall(fwCfg, { log, metrics: deps.metrics });
      if (config.redis) {
        const clog = log.child({ component: 'cluster' });
        if (role !== 'enforcer') {
          let late: Daemon | undefined;
          publisher = new ClusterPublisher(config.redis, clog, {
            activeBans: () => (late ? late.decider.activeBans(late.now()).map((b) => ({ action: 'ban' as const, target: b.target, until: b.until, level: b.level, policy: b.policy, ruleId: b.ruleId, evidence: [] })) : []),
          });
          publisherReady = (x) => { late = x; };
        }
        if (role !== 'collector') {
          let late: Daemon | undefined;
          enforcer = new ClusterEnforcer(config.redis, clog, {
            stateDir: config.state.dir,
            skipOwn: role === 'both',
            apply: (b) => (late ? late.applyCluster(b) : Promise.reject(new Error('daemon not started'))),
            refuse: (t) => late?.clusterRefuse(t),
            isLocalBan: (t) => late !== undefined && late.decider.activeBans(late.now()).some((b) => b.target === t),
          });
          d = new Daemon(deps, { config, engine, decider, allow, ledger, backend, publisher, enforcer, counter });
          late = d;
        }
      }
      d ??= new Daemon(deps, { config, engine, decider, allow, ledger, backend, publisher, enforcer, counter });
      publisherReady?.(d);
      counterOwner = d;
      // healthcheck, ensure, then make the kernel hold exactly the ledger's active bans.
      await d.sink.start();
    } catch (e) {
      publisher?.close(0).catch(() => {});
      counter?.close();
      enforcer?.stop().catch(() => {});
      ledger.close();
      throw e;
    }
    // After the firewall holds the ledger's and the last known cluster bans: catch up from Redis.
    enforcer?.start();
    try {
      if (!readsSources(config)) {
        if (config.sources.length > 0) log.warn({ sources: config.sources.map((s) => s.name) }, 'role enforcer: sources are not read (set role: both to also count here)');
      } else {
        // A source that cannot even be created fails the start.
        let built: [SourceConfig, Source][];
        try {
          built = d.buildSources(config.sources, config, d.engine);
        } catch (e) {
          throw e instanceof SourceBuildError ? e.cause : e; // as the source factory threw it
        }
        for (const [cfg, first] of built) d.runSource(cfg, first);
      }
    } catch (e) {
      await d.stop();
      throw e;
    }
    d.tick = setInterval(() => d.housekeeping(), deps.tickMs ?? 5000);
    d.tick.unref?.();
    d.housekeeping();
    log.info({
      version: deps.version, config: config.files, sources: config.sources.map((s) => s.name),
      policies: config.policies.map((p) => p.name), firewall: d.sink.backendName, restoredBans: restored.length,
    }, 'mailjail started');
    return d;
  }

  /** How a source of `config` is built (each restart by the supervisor builds it again). */
  private sourceMaker(cfg: SourceConfig, config: MailjailConfig, engine: RuleEngine): () => Source {
    return () => this.deps.makeSource(cfg, {
      stateDir: config.state.dir, log: this.log.child({ source: cfg.name }), metrics: this.metrics,
      programs: engine.programs(),
      lookbackMs: cfg.type === 'journald' && cfg.lookback > 0 ? cfg.lookback : Math.max(...config.policies.map((p) => p.findtime)),
    });
  }

  /**
   * Builds each source once, before anything is started or stopped, so that one that cannot even
   * be created (bad settings, a missing journal binding...) fails the start or refuses the reload;
   * the error names the source. Building binds nothing: sockets and journals open when it runs.
   */
  private buildSources(list: readonly SourceConfig[], config: MailjailConfig, engine: RuleEngine): [SourceConfig, Source][] {
    return list.map((cfg) => {
      try {
        return [cfg, this.sourceMaker(cfg, config, engine)()];
      } catch (e) {
        throw new SourceBuildError(cfg.name, e);
      }
    });
  }

  /** Runs a source under the supervisor; `first` is an instance built beforehand, if any. */
  private runSource(cfg: SourceConfig, first: Source | undefined): void {
    const make = this.sourceMaker(cfg, this.config, this.engine);
    this.runners.set(cfg.name, new SourceRunner(cfg, make, (b, r) => this.onBatch(b, r), this, first));
  }

  /**
   * sources → parse → rules → state → firewall, for one batch. The batch's matches go to the
   * decider together (observeBatch: one ledger write + fdatasync for all its bans). When the
   * ledger cannot be written (full disk), none of the batch's bans is applied or listed; the
   * matches stay counted, so each offender is decided again at its next line (docs/daemon.md).
   */
  private onBatch(batch: readonly RawRecord[], runner: SourceRunner): void {
    const now = this.now();
    const source = runner.name;
    this.metrics.linesReceived.inc({ source }, batch.length);
    this.counters.lines += batch.length;
    const ctx = { format: 'auto' as const, now };
    const ms: Match[] = [];
    const at: number[] = [];
    for (const rec of batch) {
      const r = parseRecord(rec, ctx);
      if (!('event' in r)) {
        this.counters.parseErrors++;
        this.metrics.parseErrors.inc({ source });
        continue;
      }
      const m = this.engine.match(r.event);
      if (!m) continue;
      this.counters.matches++;
      this.metrics.matches.inc({ rule: m.ruleId, class: m.class });
      ms.push(m);
      // Live clock: wall time. A journal entry carries journald's own receive time, so a look-back
      // after a restart counts old entries at their real time, never later than now; syslog
      // senders' clocks are not trusted.
      at.push(rec.kind === 'journal' ? Math.min(now, m.event.time) : now);
    }
    if (ms.length === 0) return;
    let ds: readonly BanDecision[] = [];
    try {
      ds = this.decider.observeBatch(ms, (_m, i) => at[i]!).decisions;
    } catch (e) {
      // Not durable, so not applied: the decider has undone the batch's bans (see above).
      this.syncLedgerMetrics();
      this.warnings.error('observe', { err: (e as Error).message, matches: ms.length }, 'state stage failed on a batch: its bans are not applied and are decided again at the offenders\' next lines');
    }
    // Evidence in line order: a ban's evidence is frozen at the match that triggered it (the last
    // of its decision's evidence), before the lines after it in the batch are noted.
    const byMatch = new Map<Match, BanDecision[]>();
    for (const d of ds) {
      const m = d.action === 'ban' ? d.evidence[d.evidence.length - 1] : undefined;
      if (!m) continue;
      const list = byMatch.get(m);
      if (list) list.push(d); else byMatch.set(m, [d]);
    }
    for (const m of ms) {
      this.evidence.note(m);
      for (const d of byMatch.get(m) ?? []) this.logDecision(d, m);
    }
    if (ds.length > 0) {
      void this.sink.push(ds);
      this.publisher?.publish(ds);
    }
  }

  /** Ledger failures (appends, compactions) into metrics; a failed compaction is logged (rate-limited). */
  private syncLedgerMetrics(): void {
    const l = this.ledger;
    if (l.writeFailures > this.ledgerSeen.write) this.metrics.ledgerWriteFailures.inc(l.writeFailures - this.ledgerSeen.write);
    if (l.compactionFailures > this.ledgerSeen.compaction) {
      this.metrics.ledgerCompactionFailures.inc(l.compactionFailures - this.ledgerSeen.compaction);
      this.warnings.warn('ledger-compaction', { err: l.lastCompactionError, failures: l.compactionFailures }, 'ledger compaction failed: the old ledger is kept and appended to; compaction is tried again later');
    }
    this.ledgerSeen = { write: l.writeFailures, compaction: l.compactionFailures };
  }

  private logDecision(d: BanDecision, m: Match | undefined): void {
    if (d.action === 'ban') {
      const ev = this.evidence.freeze(d.target, m);
      this.log.info({
        event: 'ban', target: d.target, policy: d.policy, banLevel: d.level, until: new Date(d.until).toISOString(),
        rule: d.ruleId, count: ev?.count ?? 0,
        ...(ev ? { first: ev.firstLine, firstTime: new Date(ev.first).toISOString(), last: ev.lastLine } : {}),
        ...(m ? { source: m.event.origin.name ?? m.event.origin.kind, host: m.event.host, ...(m.user !== undefined ? { user: m.user } : {}) } : {}),
      }, `ban ${d.target} for ${formatDuration(d.until - this.now())} (policy ${d.policy}, level ${d.level}, ${ev?.count ?? 0} × ${d.ruleId})`);
    } else {
      this.log.info({ event: 'unban', target: d.target, policy: d.policy, reason: d.reason }, `unban ${d.target} (${d.reason})`);
    }
  }

  private housekeeping(): void {
    const now = this.now();
    this.decider.sweep(now);
    const s = this.decider.stats();
    this.metrics.trackedAddresses.set(s.tracked);
    if (s.evictions > this.lastEvictions) this.metrics.evictions.inc(s.evictions - this.lastEvictions);
    this.lastEvictions = s.evictions;
    const active = this.decider.activeBans(now);
    const perPolicy = new Map<string, number>();
    for (const p of this.config.policies) perPolicy.set(p.name, 0);
    for (const b of active) perPolicy.set(b.policy, (perPolicy.get(b.policy) ?? 0) + 1);
    this.metrics.bansActive.reset();
    for (const [policy, n] of perPolicy) this.metrics.bansActive.set({ policy }, n);
    this.evidence.retain(new Set(active.map((b) => b.target)));
    this.sink.syncCounters();
    this.syncLedgerMetrics();
    for (const e of this.decider.drainEvents()) {
      if (e.kind === 'allowlisted') {
        this.warnings.info(`allow ${e.ip}`, { ip: e.ip, policy: e.policy }, `${e.ip} is allowlisted: counted, never banned`);
      } else {
        this.log.warn({ outage: e.state }, e.state === 'start'
          ? 'many addresses fail with "connection lost to authentication server": looks like an auth-server outage, weak lines are not counted'
          : 'auth-server outage over');
      }
    }
  }

  // ── control handlers ─────────────────────────────────────────────────────────────────────

  async status(): Promise<StatusResult> {
    const now = this.now();
    const active = this.decider.activeBans(now);
    const s = this.decider.stats();
    return {
      version: this.deps.version,
      pid: process.pid,
      startedAt: this.startedAt,
      configFiles: this.config.files,
      firewall: this.sink.backendName,
      sources: [...this.runners.values()].map((r) => {
        const stats = sourceStats(r.current);
        return {
          name: r.name, type: r.cfg.type, state: r.state, lines: r.lines,
          ...(r.lastError !== undefined && r.state === 'restarting' ? { lastError: r.lastError } : {}),
          ...(stats ? { stats } : {}),
        };
      }),
      policies: this.config.policies.map((p) => ({
        name: p.name, maxretry: p.maxretry, findtime: p.findtime, bantime: p.bantime, bansActive: active.filter((b) => b.policy === p.name).length,
      })),
      counters: {
        lines: this.counters.lines,
        parseErrors: this.counters.parseErrors,
        matches: this.counters.matches,
        counted: s.counted,
        tracked: s.tracked,
        evictions: s.evictions,
        bans: s.bans,
        operatorBans: s.operatorBans,
        unbans: s.unbans,
        bansActive: active.length,
        allowlistedHits: s.allowlistedHits,
        firewallApplied: this.sink.stats().applied,
        firewallFailed: this.sink.stats().failed,
        firewallPending: this.sink.pending,
      },
    };
  }

  async bans(): Promise<readonly BanEntry[]> {
    return this.decider.activeBans(this.now()).map((b) => {
      const ev = this.evidence.forTarget(b.target);
      return {
        target: b.target, policy: b.policy, until: b.until, level: b.level, ruleId: b.ruleId,
        evidence: ev ? { count: ev.count, firstLine: ev.firstLine, lastLine: ev.lastLine } : { count: 0 },
      };
    });
  }

  async ban(args: { target: Ip | Cidr; policy?: string; durationMs?: number }): Promise<BanResult> {
    if (args.policy !== undefined && args.policy !== MANUAL_POLICY_NAME && !this.config.policies.some((p) => p.name === args.policy)) {
      throw new MailjailError('MJ_CTL_UNKNOWN_POLICY', `unknown policy "${args.policy}"; known: ${[...this.config.policies.map((p) => p.name), MANUAL_POLICY_NAME].join(', ')}`);
    }
    const ds = this.decider.ban({
      target: args.target, now: this.now(),
      ...(args.policy !== undefined ? { policy: args.policy } : {}),
      ...(args.durationMs !== undefined ? { bantime: args.durationMs } : {}),
    });
    for (const d of ds) this.logDecision(d, undefined);
    this.publisher?.publish(ds);
    await this.sink.push(ds);
    if (!(await this.sink.settled(ds, 10_000))) {
      throw new MailjailError('MJ_CTL_FW_PENDING', 'the ban is recorded but the firewall has not applied it yet (it keeps retrying; see the log)');
    }
    const d = ds[0]!;
    if (d.action !== 'ban') throw new MailjailError('MJ_CTL_INTERNAL', 'state returned no ban');
    return { target: d.target, policy: d.policy, until: d.until, level: d.level };
  }

  async unban(args: { target: Ip | Cidr }): Promise<UnbanResult> {
    const ds = this.decider.unban({ target: args.target, now: this.now() });
    for (const d of ds) this.logDecision(d, undefined);
    this.publisher?.publish(ds);
    await this.sink.push(ds);
    if (!(await this.sink.settled(ds, 10_000))) {
      throw new MailjailError('MJ_CTL_FW_PENDING', 'the unban is recorded but the firewall has not applied it yet (it keeps retrying; see the log)');
    }
    return { target: args.target, removed: ds.some((d) => d.action === 'unban' && d.policy !== undefined) };
  }

  /** SIGHUP and `mailjail reload`: one at a time; a broken config or rule pack is refused. */
  reload(): Promise<ReloadResult> {
    this.reloading ??= this.doReload().finally(() => { this.reloading = undefined; });
    return this.reloading;
  }

  private async doReload(): Promise<ReloadResult> {
    if (this.stopping) throw new MailjailError('MJ_RELOAD_REFUSED', 'shutting down');
    const refuse = (what: string, e: unknown): MailjailError => {
      this.metrics.reloads.inc({ result: 'refused' });
      const msg = (e as Error)?.message ?? String(e);
      this.log.error({ err: msg, ...(e instanceof SourceBuildError ? { source: e.source } : {}) }, 'reload refused: the running config stays in force');
      return new MailjailError('MJ_RELOAD_REFUSED', `new ${what} refused, the old one keeps running:\n${msg}`);
    };
    // Everything new is built and checked before anything running is touched: a refused reload
    // leaves the old config, rules, policies and sources as they were.
    let next: MailjailConfig;
    let engine: RuleEngine;
    let allow;
    try {
      next = this.deps.loadConfig();
      engine = (this.deps.loadRules ?? loadRulePack)(next.rules.dir);
      allow = await loadAllowlist({ entries: next.allowlist, self: this.deps.allowSelf ?? true }, this.deps.resolveHost);
    } catch (e) {
      throw refuse('configuration', e);
    }
    const prev = this.config;
    // Sources: an unchanged running one stays; a new or changed one must build before any stops.
    // (Role and Redis settings take effect at restart: a pure enforcer keeps reading nothing.)
    const wanted = readsSources(prev) ? next.sources : [];
    const changed = wanted.filter((c) => {
      const r = this.runners.get(c.name);
      return !(r && JSON.stringify(c) === JSON.stringify(r.cfg) && r.state !== 'finished');
    });
    let built: [SourceConfig, Source][];
    try {
      built = this.buildSources(changed, next, engine);
    } catch (e) {
      throw refuse('configuration', e);
    }
    const policiesChanged = JSON.stringify(prev.policies) !== JSON.stringify(next.policies) || prev.state.maxTracked !== next.state.maxTracked;
    let afresh: string[] = [];
    if (policiesChanged) {
      // The same decider, reloaded: counters carry over where they still mean the same thing,
      // bans and escalation history always (it validates everything before changing anything).
      try {
        afresh = this.decider.reload({ policies: next.policies, maxTracked: next.state.maxTracked });
      } catch (e) {
        throw refuse('policies', e);
      }
      this.counter?.setPolicies(sharedPolicies(next));
      this.ledger.keepHistory(ledgerHistoryMs(next));
      if (afresh.length > 0) this.log.warn({ policies: afresh }, 'policies changed how they count (prefixes, classes, services or distinct users): their attempt counters restart; bans and escalation history are kept');
    }
    this.allow.swap(allow);
    this.engine = engine;
    this.config = next;
    // Stop the removed and changed sources, then start the new and changed ones.
    const keep = new Set(wanted.map((c) => c.name));
    for (const [cfg] of built) keep.delete(cfg.name);
    const stopping: Promise<void>[] = [];
    const replaced = new Set<string>();
    for (const [name, r] of this.runners) {
      if (keep.has(name)) continue;
      r.abort();
      stopping.push(r.loop);
      this.runners.delete(name);
      replaced.add(name);
    }
    await Promise.all(stopping);
    // A shutdown that began meanwhile has stopped what it saw; nothing new may start behind it.
    if (this.stopping) throw new MailjailError('MJ_RELOAD_REFUSED', 'shutting down');
    for (const [cfg, first] of built) {
      // One that replaces an old instance is built again now that the old one has stopped, so it
      // picks up where that one left off (journal cursor, listening port); the first build proved
      // it can be built, a failure now is retried by the supervisor.
      this.runSource(cfg, replaced.has(cfg.name) ? undefined : first);
    }
    for (const [what, a, b] of [
      ['firewall', prev.firewall, next.firewall], ['control', prev.control, next.control],
      ['metrics', prev.metrics, next.metrics], ['state.dir', prev.state.dir, next.state.dir],
      ['redis', prev.redis, next.redis], ['role', prev.role, next.role],
    ] as const) {
      if (JSON.stringify(a) !== JSON.stringify(b)) this.log.warn({ section: what }, `${what} settings changed: they take effect at the next restart`);
    }
    this.metrics.reloads.inc({ result: 'ok' });
    this.log.info({ config: next.files, policiesChanged, ...(afresh.length > 0 ? { countersRestarted: afresh } : {}) }, 'configuration reloaded');
    return { files: next.files };
  }

  /** Orderly shutdown; safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= this.doStop();
    return this.stopping;
  }

  private async doStop(): Promise<void> {
    this.log.info('stopping: sources, then pending bans, then the ledger');
    if (this.tick) clearInterval(this.tick);
    for (const r of this.runners.values()) r.abort();
    const drained = await withTimeout(Promise.all([...this.runners.values()].map((r) => r.loop)), 10_000);
    if (drained === 'timeout') this.log.warn('a source did not stop within 10 s');
    this.counter?.close();
    await this.enforcer?.stop();
    await this.publisher?.close(5000);
    const left = await this.sink.close(10_000);
    if (left > 0) this.log.warn({ pending: left }, 'firewall did not take every pending decision; they are in the ledger and re-applied at next start');
    try {
      this.ledger.mark(this.decider.through());
    } catch (e) {
      this.log.error({ err: (e as Error).message }, 'could not checkpoint the ledger');
    }
    this.ledger.close();
    this.log.info('stopped');
  }
}
