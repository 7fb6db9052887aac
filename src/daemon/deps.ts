// What the daemon is built from: the config loader, logger, metrics and the factories for sources
// and the firewall backend (injectable, so that tests hand in their own).
import type { Logger } from 'pino';
import type { RuleEngine } from '../rules/engine.js';
import type { FirewallBackend, Source } from '../types.js';
import type { ResolvedFirewallConfig } from '../firewall/config.js';
import type { MailjailConfig, SourceConfig } from './config.js';
import type { Metrics } from './metrics.js';

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
