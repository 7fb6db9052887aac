// The firewall stage's public face for the daemon: config type, backend factory, the resilient
// wrapper, reconcile, and the error codes.
import { resolveFirewallConfig, type FirewallConfig } from './config.js';
import { DryRunBackend } from './dryrun.js';
import type { Runner } from './exec.js';
import { IpsetBackend } from './ipset.js';
import { NftBackend } from './nft.js';
import type { KernelFirewall } from './backend.js';
import { ResilientFirewall, type ResilientOptions } from './resilient.js';

export { MAIL_PORTS, resolveFirewallConfig } from './config.js';
export type { FirewallBackendName, FirewallConfig, ResolvedFirewallConfig } from './config.js';
export { FW_CODES, FirewallError, makeRunner } from './exec.js';
export type { Runner } from './exec.js';
export type { FirewallStatus, KernelFirewall } from './backend.js';
export { DryRunBackend } from './dryrun.js';
export { IpsetBackend } from './ipset.js';
export { NftBackend } from './nft.js';
export { diff, reconcile } from './reconcile.js';
export type { ReconcileReport } from './reconcile.js';
export { ResilientFirewall } from './resilient.js';
export type { FirewallEvent, FirewallStats, ResilientOptions } from './resilient.js';

/** Builds the backend the config names (validating the config; throws MJ_FW_CONFIG). */
export function createBackend(config: FirewallConfig = {}, opts: { run?: Runner; now?: () => number } = {}): KernelFirewall {
  const cfg = resolveFirewallConfig(config);
  switch (cfg.backend) {
    case 'ipset': return new IpsetBackend(cfg, opts);
    case 'nftables': return new NftBackend(cfg, opts);
    case 'dry-run': return new DryRunBackend(cfg, opts.now ? { now: opts.now } : {});
  }
}

/**
 * What the daemon calls: the configured backend inside the resilient wrapper (queue, retries,
 * repair, 80 % warning). Call `start()` on it before the first apply.
 */
export function createFirewall(config: FirewallConfig = {}, opts: ResilientOptions & { run?: Runner; now?: () => number } = {}): ResilientFirewall {
  const { run, now, ...rest } = opts;
  return new ResilientFirewall(createBackend(config, { ...(run ? { run } : {}), ...(now ? { now } : {}) }), rest);
}
