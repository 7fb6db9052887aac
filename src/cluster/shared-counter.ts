// Shared counting across collectors (docs/cluster.md): every attempt the local decider counts is
// also added to a Redis sorted set per policy and counting key, by one Lua script that trims the
// window, adds, counts and — when the count reaches maxretry — deletes the set, atomically. So
// two collectors that each see half of an attack reach maxretry at the same attempt one collector
// would, and exactly one of them is told (the one whose attempt crossed). Times are Redis's own
// clock (TIME), so collectors' clocks need not agree. The local table keeps counting as before: it
// is the fallback while Redis is unreachable (attempts not shared then are counted as `unshared`).
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisConfig } from './config.js';
import { openRedis } from './connect.js';
import type { Cidr, Ip } from '../types.js';
import type { CountedAttempt } from '../state/decider.js';

// KEYS[1] zset; ARGV: window ms, maxretry, member prefix, n. Returns the count after adding.
const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local win = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - win))
for i = 1, tonumber(ARGV[4]) do redis.call('ZADD', KEYS[1], now, ARGV[3] .. ':' .. i) end
local c = redis.call('ZCARD', KEYS[1])
if c >= tonumber(ARGV[2]) then redis.call('DEL', KEYS[1]) else redis.call('PEXPIRE', KEYS[1], win) end
return c`;

export interface SharedPolicy {
  readonly findtimeMs: number;
  readonly maxretry: number;
}

export interface SharedCounterStats {
  shared: number;
  unshared: number;
  thresholds: number;
  failures: number;
  connected: boolean;
}

type WithScript = Redis & { mjCount(key: string, win: string, max: string, member: string, n: string): Promise<number> };

export class SharedCounter {
  private readonly redis: WithScript;
  private seq = 0;
  private connected = false;
  readonly counters = { shared: 0, unshared: 0, thresholds: 0, failures: 0 };

  constructor(
    private readonly cfg: RedisConfig,
    private readonly log: Logger,
    private policies: ReadonlyMap<string, SharedPolicy>,
    /** The shared count of (policy, key) reached maxretry with this collector's attempt. */
    private readonly onThreshold: (policy: string, key: Ip | Cidr, ruleId: string, count: number) => void,
  ) {
    const r = openRedis(cfg, log, 'counter', {
      onState: (s) => {
        if (s === 'ready') this.connected = true;
        else if (s === 'down') this.connected = false;
      },
    });
    r.defineCommand('mjCount', { numberOfKeys: 1, lua: SCRIPT });
    this.redis = r as WithScript;
  }

  /** After a reload that changed policies. */
  setPolicies(p: ReadonlyMap<string, SharedPolicy>): void {
    this.policies = p;
  }

  stats(): SharedCounterStats {
    return { ...this.counters, connected: this.connected };
  }

  /** Decider hook: never blocks, never throws. */
  note(e: CountedAttempt): void {
    const p = this.policies.get(e.policy);
    if (!p) return;
    if (this.redis.status !== 'ready') {
      this.counters.unshared += e.n;
      return;
    }
    const key = `${this.cfg.prefix}:cnt:${e.policy}:${e.key}`;
    this.redis.mjCount(key, String(p.findtimeMs), String(p.maxretry), `${this.cfg.node}:${++this.seq}`, String(e.n)).then(
      (c) => {
        this.counters.shared += e.n;
        if (c >= p.maxretry) {
          this.counters.thresholds++;
          this.onThreshold(e.policy, e.key, e.ruleId, c);
        }
      },
      (err: Error) => {
        this.counters.failures++;
        this.counters.unshared += e.n;
        this.log.debug({ err: err.message }, 'shared count failed; counted locally only');
      },
    );
  }

  close(): void {
    this.redis.disconnect();
  }
}
