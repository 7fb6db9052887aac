// How long the ledger keeps past bans for the configured policies (config produces the state
// stage's Policy directly, in ms: there is no conversion left to do here).
import { historyMsFor } from '../state/policy.js';
import type { MailjailConfig } from './config.js';
import { POLICY_DEFAULTS } from './config-schema.js';

/**
 * How long the ledger keeps past bans: the longest escalation/recidive history any policy needs,
 * and never less than the default escalation window, so that a policy added by a later reload
 * still finds a month of history.
 */
export function ledgerHistoryMs(c: MailjailConfig): number {
  return Math.max(POLICY_DEFAULTS.escalation.window, historyMsFor(c.policies));
}
