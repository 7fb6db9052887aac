// Cluster test helpers: config, a silent logger, an enforcer over a dry-run "kernel" that records
// every decision it was handed.
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { pino, type Logger } from 'pino';
import { ClusterEnforcer, type EnforcerOptions } from '../../src/cluster/enforcer.js';
import { REDIS_DEFAULTS, type RedisConfig } from '../../src/cluster/config.js';
import { DryRunBackend } from '../../src/firewall/dryrun.js';
import type { BanDecision, Cidr, Ip } from '../../src/types.js';
import { waitFor } from '../helpers/wait.js';

export const quiet = pino({ level: 'silent' });

/** A logger that keeps what it is told, so a test can wait for a log line (e.g. "redis error"). */
export function capturingLog(): { log: Logger; lines: () => { msg?: string; err?: string; redis?: string }[] } {
  const chunks: string[] = [];
  const stream = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } });
  return {
    log: pino({ level: 'debug' }, stream),
    lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as { msg?: string; err?: string; redis?: string }),
  };
}

export function redisCfg(url: string, over: Partial<RedisConfig> = {}): RedisConfig {
  return { ...REDIS_DEFAULTS, url, node: 'collector-1', backoffBaseMs: 50, backoffMaxMs: 400, ...over };
}

export const ban = (target: string, untilMs: number, policy = 'auth'): BanDecision =>
  ({ action: 'ban', target: target as Ip, until: untilMs, level: 0, policy, ruleId: 'postfix-sasl', evidence: [] });
export const unban = (target: string): BanDecision => ({ action: 'unban', target: target as Cidr, reason: 'operator' });

/** A mail host: a dry-run firewall (kept across enforcer restarts, like the kernel) + its state dir. */
export class Host {
  readonly fw = new DryRunBackend();
  readonly dir = mkdtempSync(join(tmpdir(), 'mj-enf-'));
  /** Every decision handed to the firewall, in order. */
  readonly handed: BanDecision[] = [];
  enforcer: ClusterEnforcer | undefined;
  private ready: Promise<void> = this.fw.ensure();

  start(cfg: RedisConfig, opts: Partial<EnforcerOptions> = {}): ClusterEnforcer {
    const e = new ClusterEnforcer(cfg, quiet, {
      stateDir: this.dir,
      blockMs: 200,
      apply: async (b) => {
        await this.ready;
        const r = await this.fw.apply(b);
        if (r.failed.length) throw r.failed[0]!.error;
        this.handed.push(...b);
      },
      ...opts,
    });
    e.start();
    this.enforcer = e;
    return e;
  }

  async stop(): Promise<void> {
    await this.enforcer?.stop();
    this.enforcer = undefined;
  }

  async banned(): Promise<string[]> {
    return [...(await this.fw.list()).keys()].sort();
  }

  count(target: string, action: 'ban' | 'unban' = 'ban'): number {
    return this.handed.filter((d) => d.action === action && d.target === target).length;
  }
}

/** Polls `cond` every 25 ms until it holds; throws after `ms`, naming `what` (see test/helpers/wait.ts). */
export async function until(cond: () => boolean | Promise<boolean>, ms = 10_000, what?: string): Promise<void> {
  await waitFor(cond, { timeoutMs: ms, intervalMs: 25, ...(what !== undefined ? { what } : {}) });
}
