// What is in force right now: the config and rule pack a reload swaps, and whether shutdown has
// begun. One small mutable record, read by the pipeline, the control handlers, the supervisor and
// housekeeping, written only by reload.ts (config, engine) and start.ts (stopping).
import type { RuleEngine } from '../rules/engine.js';
import type { MailjailConfig } from './config.js';

export interface InForce {
  config: MailjailConfig;
  engine: RuleEngine;
  stopping: boolean;
}
