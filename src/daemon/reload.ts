// SIGHUP and `mailjail reload`: everything new (config, rule pack, allowlist, changed sources,
// policies) is built and checked before anything running is touched, so a refused reload leaves
// the old config, rules, policies and sources as they were. Counters, bans and escalation history
// carry over. One reload at a time.
import type { Logger } from 'pino';
import type { SharedCounter } from '../cluster/shared-counter.js';
import type { RuleEngine } from '../rules/engine.js';
import { loadRulePack } from '../rules/pack.js';
import { loadAllowlist } from '../state/allowlist.js';
import type { Decider } from '../state/decider.js';
import type { Ledger } from '../state/ledger.js';
import type { Source } from '../types.js';
import { MailjailError } from '../types.js';
import type { ReloadResult } from '../control/protocol.js';
import { readsSources, sharedPolicies } from './cluster-wiring.js';
import type { MailjailConfig, SourceConfig } from './config.js';
import type { DaemonDeps } from './deps.js';
import type { InForce } from './in-force.js';
import type { Metrics } from './metrics.js';
import { ledgerHistoryMs } from './state-policy.js';
import { SourceBuildError, type Supervisor } from './supervisor.js';
import type { SwappableAllowlist } from './swappable-allowlist.js';

export interface ReloadParts {
  readonly deps: Pick<DaemonDeps, 'loadConfig' | 'loadRules' | 'allowSelf' | 'resolveHost'>;
  readonly inForce: InForce;
  readonly decider: Decider;
  readonly allow: SwappableAllowlist;
  readonly ledger: Ledger;
  readonly counter: SharedCounter | undefined;
  readonly supervisor: Supervisor;
  readonly log: Logger;
  readonly metrics: Metrics;
}

export class Reloader {
  private reloading: Promise<ReloadResult> | undefined;

  constructor(private readonly p: ReloadParts) {}

  /** One at a time; a broken config or rule pack is refused. */
  reload(): Promise<ReloadResult> {
    this.reloading ??= this.doReload().finally(() => { this.reloading = undefined; });
    return this.reloading;
  }

  private async doReload(): Promise<ReloadResult> {
    const { deps, inForce, supervisor, log, metrics } = this.p;
    if (inForce.stopping) throw new MailjailError('MJ_RELOAD_REFUSED', 'shutting down');
    const refuse = (what: string, e: unknown): MailjailError => {
      metrics.reloads.inc({ result: 'refused' });
      const msg = (e as Error)?.message ?? String(e);
      log.error({ err: msg, ...(e instanceof SourceBuildError ? { source: e.source } : {}) }, 'reload refused: the running config stays in force');
      return new MailjailError('MJ_RELOAD_REFUSED', `new ${what} refused, the old one keeps running:\n${msg}`);
    };
    // Everything new is built and checked before anything running is touched: a refused reload
    // leaves the old config, rules, policies and sources as they were.
    let next: MailjailConfig;
    let engine: RuleEngine;
    let allow;
    try {
      next = deps.loadConfig();
      engine = (deps.loadRules ?? loadRulePack)(next.rules.dir);
      allow = await loadAllowlist({ entries: next.allowlist, self: deps.allowSelf ?? true }, deps.resolveHost);
    } catch (e) {
      throw refuse('configuration', e);
    }
    const prev = inForce.config;
    // Sources: an unchanged running one stays; a new or changed one must build before any stops.
    // (Role and Redis settings take effect at restart: a pure enforcer keeps reading nothing.)
    const wanted = readsSources(prev) ? next.sources : [];
    const changed = wanted.filter((c) => {
      const r = supervisor.runners.get(c.name);
      return !(r && JSON.stringify(c) === JSON.stringify(r.cfg) && r.state !== 'finished');
    });
    let built: [SourceConfig, Source][];
    try {
      built = supervisor.build(changed, next, engine);
    } catch (e) {
      throw refuse('configuration', e);
    }
    const policiesChanged = JSON.stringify(prev.policies) !== JSON.stringify(next.policies) || prev.state.maxTracked !== next.state.maxTracked;
    let afresh: string[] = [];
    if (policiesChanged) {
      // The same decider, reloaded: counters carry over where they still mean the same thing,
      // bans and escalation history always (it validates everything before changing anything).
      try {
        afresh = this.p.decider.reload({ policies: next.policies, maxTracked: next.state.maxTracked });
      } catch (e) {
        throw refuse('policies', e);
      }
      this.p.counter?.setPolicies(sharedPolicies(next));
      this.p.ledger.keepHistory(ledgerHistoryMs(next));
      if (afresh.length > 0) log.warn({ policies: afresh }, 'policies changed how they count (prefixes, classes, services or distinct users): their attempt counters restart; bans and escalation history are kept');
    }
    this.p.allow.swap(allow);
    inForce.engine = engine;
    inForce.config = next;
    // Stop the removed and changed sources, then start the new and changed ones.
    const keep = new Set(wanted.map((c) => c.name));
    for (const [cfg] of built) keep.delete(cfg.name);
    const replaced = new Set([...supervisor.runners.keys()].filter((name) => !keep.has(name)));
    await supervisor.stop(replaced);
    // A shutdown that began meanwhile has stopped what it saw; nothing new may start behind it.
    if (inForce.stopping) throw new MailjailError('MJ_RELOAD_REFUSED', 'shutting down');
    for (const [cfg, first] of built) {
      // One that replaces an old instance is built again now that the old one has stopped, so it
      // picks up where that one left off (journal cursor, listening port); the first build proved
      // it can be built, a failure now is retried by the supervisor.
      supervisor.run(cfg, replaced.has(cfg.name) ? undefined : first, inForce.config, inForce.engine);
    }
    for (const [what, a, b] of [
      ['firewall', prev.firewall, next.firewall], ['control', prev.control, next.control],
      ['metrics', prev.metrics, next.metrics], ['state.dir', prev.state.dir, next.state.dir],
      ['redis', prev.redis, next.redis], ['role', prev.role, next.role],
    ] as const) {
      if (JSON.stringify(a) !== JSON.stringify(b)) log.warn({ section: what }, `${what} settings changed: they take effect at the next restart`);
    }
    metrics.reloads.inc({ result: 'ok' });
    log.info({ config: next.files, policiesChanged, ...(afresh.length > 0 ? { countersRestarted: afresh } : {}) }, 'configuration reloaded');
    return { files: next.files };
  }
}
