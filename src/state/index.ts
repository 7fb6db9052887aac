// The state stage's public surface: policies, the decider, the allowlist and the ban ledger.
export { validatePolicy, policyCounts, banMs, historyMsFor } from './policy.js';
export type { Policy } from './policy.js';
export { Decider, MANUAL_POLICY, keyOf } from './decider.js';
export { Deduper, AUTH_PROCESS_SIDE } from './dedupe.js';
export type { DedupeOptions } from './dedupe.js';
export type { DeciderOptions, DeciderStats, StateEvent, ActiveBan } from './decider.js';
export { Allowlist, loadAllowlist, selfAddresses } from './allowlist.js';
export type { AllowlistSpec } from './allowlist.js';
export { Ledger, LEDGER_FILE, LOCK_FILE } from './ledger.js';
export type { LedgerOptions, LedgerOpenResult } from './ledger.js';
export type { BanRecord, LedgerEntry, LedgerState, LedgerSink, Position, Through } from './records.js';
