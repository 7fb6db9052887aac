// Collector side: every BanDecision the state stage makes is XADDed to the decisions stream, and
// the set of active bans (target → until, a sorted set scored by expiry) is updated in the same
// MULTI, so a new enforcer can start from a consistent snapshot + stream position. Every entry is
// signed, and every active ban carries a signed token (`<prefix>:bansigs`, target → until.sig):
// enforcers trust nothing else (signing.ts).
// While Redis is unreachable decisions wait in a bounded queue (in order); when it is full the
// oldest are dropped and counted — never silently. The queue is flushed on reconnect.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BanDecision } from '../types.js';
import { encode } from './codec.js';
import { banTokensKey, bansKey, streamKey, type RedisConfig } from './config.js';
import { openRedis } from './connect.js';
import { banToken, loadClusterKeys, signEntry, type ClusterKeys } from './signing.js';

// KEYS: bans zset, tokens hash. ARGV: target, until, token. The token follows the zset's score:
// it is written when this ban's expiry is the one the set keeps (ZADD GT: the latest wins).
const BAN_LUA = `redis.call('ZADD', KEYS[1], 'GT', ARGV[2], ARGV[1])
if tonumber(redis.call('ZSCORE', KEYS[1], ARGV[1])) == tonumber(ARGV[2]) then redis.call('HSET', KEYS[2], ARGV[1], ARGV[3]) end
return 0`;
const UNBAN_LUA = `redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 0`;
// Expired members leave the set and their tokens the hash.
const PRUNE_LUA = `local old = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, 10000)
for _, t in ipairs(old) do redis.call('HDEL', KEYS[2], t) redis.call('ZREM', KEYS[1], t) end
return #old`;

export interface PublisherStats {
  published: number;
  republished: number;
  queued: number;
  dropped: number;
  failures: number;
  reconnects: number;
  connected: boolean;
}

export interface PublisherOptions {
  readonly now?: () => number;
  /** Entries per MULTI. */
  readonly batch?: number;
  /**
   * The collector's active bans, re-published once Redis is back after the queue overflowed, so
   * the dropped bans reach the enforcers after all (dropped unbans are lost: those bans expire).
   */
  readonly activeBans?: () => readonly BanDecision[];
}

export class ClusterPublisher {
  private readonly redis: Redis;
  private readonly keys: ClusterKeys;
  private queue: BanDecision[] = [];
  private head = 0;
  private flushing: Promise<void> | undefined;
  private closed = false;
  private readonly now: () => number;
  private readonly batch: number;
  private readonly activeBans: (() => readonly BanDecision[]) | undefined;
  private lastDropLog = 0;
  readonly counters = { published: 0, dropped: 0, republished: 0, failures: 0, reconnects: 0 };
  private connected = false;
  private everReady = false;
  /** Decisions were dropped since the last re-publish of the active bans. */
  private lost = false;

  constructor(private readonly cfg: RedisConfig, private readonly log: Logger, opts: PublisherOptions = {}) {
    this.now = opts.now ?? Date.now;
    this.batch = opts.batch ?? 500;
    this.activeBans = opts.activeBans;
    this.keys = loadClusterKeys(cfg.signingKeyFile); // before any connection: no key, no cluster
    this.redis = openRedis(cfg, log, 'publisher', {
      onState: (s) => {
        if (s === 'ready') {
          if (this.everReady) this.counters.reconnects++;
          this.everReady = true;
          this.connected = true;
          if (this.pending > 0) log.info({ queued: this.pending }, 'redis back: replaying queued decisions');
          this.kick();
        } else if (s === 'down') this.connected = false;
      },
    });
  }

  get pending(): number {
    return this.queue.length - this.head;
  }

  stats(): PublisherStats {
    return { ...this.counters, queued: this.pending, connected: this.connected };
  }

  /** Queues decisions for Redis; never blocks and never throws. */
  publish(ds: readonly BanDecision[]): void {
    if (this.closed || ds.length === 0) return;
    this.queue.push(...ds);
    const over = this.pending - this.cfg.maxQueue;
    if (over > 0) {
      this.head += over;
      this.counters.dropped += over;
      this.lost = true;
      const t = this.now();
      if (t - this.lastDropLog > 10_000) {
        this.lastDropLog = t;
        this.log.error({ dropped: this.counters.dropped, maxQueue: this.cfg.maxQueue }, 'redis unreachable and the decision queue is full: oldest decisions dropped (they are still enforced locally)');
      }
    }
    this.kick();
  }

  private kick(): void {
    if (!this.flushing && this.pending > 0 && this.redis.status === 'ready') {
      this.flushing = this.flush().finally(() => {
        this.flushing = undefined;
        if (this.pending > 0 && this.redis.status === 'ready' && !this.closed) setImmediate(() => this.kick());
      });
    }
  }

  private async flush(): Promise<void> {
    while (this.pending > 0 && this.redis.status === 'ready') {
      const n = Math.min(this.batch, this.pending);
      const chunk = this.queue.slice(this.head, this.head + n);
      const now = this.now();
      const m = this.redis.multi();
      const sk = streamKey(this.cfg);
      const bk = bansKey(this.cfg);
      const hk = banTokensKey(this.cfg);
      for (const d of chunk) {
        m.xadd(sk, 'MAXLEN', '~', String(this.cfg.streamMaxLen), '*', ...signEntry(this.keys, this.cfg.prefix, encode(d, this.cfg.node, now)));
        if (d.action === 'ban') m.eval(BAN_LUA, 2, bk, hk, String(d.target), String(d.until), banToken(this.keys, this.cfg.prefix, d.target, d.until));
        else m.eval(UNBAN_LUA, 2, bk, hk, String(d.target));
      }
      m.eval(PRUNE_LUA, 2, bk, hk, String(now));
      try {
        const res = await m.exec();
        const err = res?.find(([e]) => e)?.[0];
        if (err) throw err;
      } catch (e) {
        // Not sent or not acknowledged: kept, retried after reconnect (a resend may duplicate an
        // entry; applying a ban twice is harmless, the enforcer's firewall apply is idempotent).
        this.counters.failures++;
        this.log.warn({ err: (e as Error).message, queued: this.pending }, 'redis publish failed; decisions kept in the queue');
        return;
      }
      this.head += n;
      this.counters.published += n;
      if (this.head > 4096 && this.head * 2 > this.queue.length) {
        this.queue = this.queue.slice(this.head);
        this.head = 0;
      }
      if (this.pending === 0 && this.lost && this.activeBans) {
        // The queue is through: now make up for what overflowed.
        this.lost = false;
        const bans = this.activeBans();
        this.counters.republished += bans.length;
        this.log.warn({ bans: bans.length, dropped: this.counters.dropped }, 'redis back after dropping decisions: re-publishing all active bans');
        this.queue.push(...bans);
      }
    }
  }

  /** Waits (up to `timeoutMs`) until the queue is empty; returns what is left. */
  async drain(timeoutMs: number): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (this.pending > 0 && Date.now() < deadline) {
      this.kick();
      await new Promise((r) => setTimeout(r, 20));
    }
    await this.flushing;
    return this.pending;
  }

  async close(timeoutMs = 5000): Promise<number> {
    const left = await this.drain(timeoutMs);
    this.closed = true;
    if (left > 0) this.log.warn({ lost: left }, 'stopping with decisions not yet in redis (they are enforced locally only)');
    this.redis.disconnect();
    return left;
  }
}
