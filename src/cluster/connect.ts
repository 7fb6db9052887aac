// One ioredis connection configured for mailjail: no offline queue and no per-command retries
// (our own queue decides what is kept while Redis is away), reconnect with capped exponential
// backoff, ACL user/password and TLS from config. Connection changes are logged and counted.
import { readFileSync } from 'node:fs';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisConfig } from './config.js';

export interface LinkEvents {
  /** Called on every state change (for the connected gauge and reconnect counter). */
  readonly onState?: (state: 'ready' | 'down' | 'reconnecting', detail?: string) => void;
}

export function redisOptions(cfg: RedisConfig): RedisOptions {
  const tls = cfg.url.startsWith('rediss://') || cfg.tls
    ? {
        ...(cfg.tls?.ca ? { ca: readFileSync(cfg.tls.ca) } : {}),
        ...(cfg.tls?.cert ? { cert: readFileSync(cfg.tls.cert) } : {}),
        ...(cfg.tls?.key ? { key: readFileSync(cfg.tls.key) } : {}),
        ...(cfg.tls?.servername ? { servername: cfg.tls.servername } : {}),
      }
    : undefined;
  return {
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    enableReadyCheck: true,
    connectTimeout: 5000,
    retryStrategy: (times: number) => Math.min(cfg.backoffMaxMs, cfg.backoffBaseMs * 2 ** Math.min(times - 1, 16)),
    ...(cfg.username !== undefined ? { username: cfg.username } : {}),
    ...(cfg.password !== undefined ? { password: cfg.password } : {}),
    ...(cfg.passwordFile !== undefined ? { password: readFileSync(cfg.passwordFile, 'utf8').split(/\r?\n/)[0] ?? '' } : {}),
    ...(tls ? { tls } : {}),
  };
}

/** Opens a connection; never throws for an unreachable server (it keeps retrying in the background). */
export function openRedis(cfg: RedisConfig, log: Logger, name: string, ev: LinkEvents = {}): Redis {
  const r = new Redis(cfg.url, { ...redisOptions(cfg), connectionName: `mailjail-${name}` });
  let up = false;
  let lastErr = '';
  r.on('ready', () => {
    up = true;
    log.info({ redis: name }, 'redis connected');
    ev.onState?.('ready');
  });
  r.on('error', (e: Error) => {
    // ioredis repeats the same error on every retry: log each distinct one once per outage.
    if (e.message !== lastErr) log.warn({ redis: name, err: e.message }, 'redis error');
    lastErr = e.message;
  });
  r.on('close', () => {
    if (up) {
      log.warn({ redis: name }, 'redis connection lost; reconnecting with backoff');
      ev.onState?.('down');
    }
    up = false;
  });
  r.on('reconnecting', (ms: number) => {
    log.debug({ redis: name, inMs: ms }, 'redis reconnecting');
    ev.onState?.('reconnecting', String(ms));
  });
  r.connect().catch(() => { /* retried by retryStrategy; errors are logged above */ });
  return r;
}
