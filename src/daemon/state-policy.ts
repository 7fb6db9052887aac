// Config policies → the state stage's policies, and how long the ledger keeps past bans for them.
import { DEFAULT_ESCALATION_WINDOW, historyMsFor, type Policy } from '../state/policy.js';
import type { MailjailConfig, PolicyConfig } from './config.js';

/** State → firewall policy: config durations are ms, the state stage counts in seconds. */
export function toStatePolicy(p: PolicyConfig): Policy {
  return {
    name: p.name,
    classes: p.classes,
    ...(p.services ? { services: p.services } : {}),
    maxretry: p.maxretry,
    findtime: p.findtime / 1000,
    bantime: p.bantime / 1000,
    ...(p.escalation ? {
      escalation: {
        factor: p.escalation.factor,
        maxBantime: p.escalation.maxBantime / 1000,
        ...(p.escalation.window !== undefined ? { window: p.escalation.window / 1000 } : {}),
      },
    } : {}),
    ...(p.recidive ? { recidive: { bans: p.recidive.bans, window: p.recidive.window / 1000, bantime: p.recidive.bantime / 1000 } } : {}),
    ipv4Prefix: p.ipv4Prefix,
    ipv6Prefix: p.ipv6Prefix,
    ...(p.distinctUsers !== undefined ? { distinctUsers: p.distinctUsers } : {}),
  };
}

/**
 * How long the ledger keeps past bans: the longest escalation/recidive history any policy needs,
 * and never less than the default escalation window, so that a policy added by a later reload
 * still finds a month of history.
 */
export function ledgerHistoryMs(c: MailjailConfig): number {
  return Math.max(DEFAULT_ESCALATION_WINDOW * 1000, historyMsFor(c.policies.map(toStatePolicy)));
}
