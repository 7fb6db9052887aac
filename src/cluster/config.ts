// The `redis:` section of mailjail.yaml, resolved (see docs/cluster.md).
export type ClusterRole = 'collector' | 'enforcer' | 'both';

export interface RedisConfig {
  /** redis://[user:password@]host:port[/db] or rediss:// for TLS. */
  readonly url: string;
  /** ACL user and password (override the URL's). */
  readonly username?: string;
  readonly password?: string;
  /** File holding the password (first line), read at start: keeps it out of a readable config. */
  readonly passwordFile?: string;
  /** TLS files for rediss:// (CA to trust, client cert/key for mutual TLS). */
  readonly tls?: { readonly ca?: string; readonly cert?: string; readonly key?: string; readonly servername?: string };
  /** Key prefix: streams and sets are `<prefix>:decisions` and `<prefix>:bans`. */
  readonly prefix: string;
  /** This node's name in stream entries (default: the host name). */
  readonly node: string;
  /** Approximate cap on stream length (XADD MAXLEN ~). */
  readonly streamMaxLen: number;
  /** Collector: decisions held while Redis is unreachable; past it the oldest are dropped (counted). */
  readonly maxQueue: number;
  /** Reconnect backoff (ms). */
  readonly backoffBaseMs: number;
  readonly backoffMaxMs: number;
  /** Collectors count attempts in Redis too, so several collectors count one attacker once. */
  readonly sharedCounting?: boolean;
  /**
   * HMAC key file (signing.ts): collectors sign, enforcers verify. Required by the config for
   * cluster mode; the publisher and enforcer refuse to start without it (MJ_CLUSTER_KEY).
   */
  readonly signingKeyFile?: string;
  /** Widest network an enforcer accepts from the cluster (shortest prefix length per family). */
  readonly widestNetwork: WidestNetwork;
}

export interface WidestNetwork {
  readonly v4: number;
  readonly v6: number;
}

export const REDIS_DEFAULTS = {
  prefix: 'mailjail',
  streamMaxLen: 100_000,
  maxQueue: 100_000,
  backoffBaseMs: 200,
  backoffMaxMs: 30_000,
  widestNetwork: { v4: 16, v6: 32 },
} as const;

export function streamKey(c: Pick<RedisConfig, 'prefix'>): string {
  return `${c.prefix}:decisions`;
}

export function bansKey(c: Pick<RedisConfig, 'prefix'>): string {
  return `${c.prefix}:bans`;
}

/** target → `<until>.<signature>` for every active ban (signing.ts): what a snapshot trusts. */
export function banTokensKey(c: Pick<RedisConfig, 'prefix'>): string {
  return `${c.prefix}:bansigs`;
}
