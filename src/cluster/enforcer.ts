// Enforcer side: reads the decisions stream from its own persisted position and applies each
// batch to the local firewall through the daemon's normal firewall path; only then is the new
// position (and the cluster bans active here) written. A first start, or a position older than
// what the stream still holds (trimmed by MAXLEN), starts from a consistent snapshot of the active
// bans set and the stream's last id. Every entry must carry a valid signature (signing.ts), every
// target is re-validated (codec.ts, with the redis.widestNetwork limit) and checked against the
// local allowlist before it can reach the firewall. A snapshot trusts only signed ban tokens and
// also lifts the cluster bans it no longer holds (never this host's own bans). While Redis is
// unreachable the enforcer keeps what it has and retries with backoff.
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { BanDecision } from '../types.js';
import { checkUntil, checkWireTarget, compareIds, decode, toDecision, type Refusal, type WireDecision } from './codec.js';
import { banTokensKey, streamKey, type RedisConfig } from './config.js';
import { openRedis } from './connect.js';
import { loadClusterKeys, verifyBanToken, verifyEntry, type ClusterKeys } from './signing.js';
import { PositionLog, type EnforcerState } from './position.js';

export interface EnforcerOptions {
  readonly stateDir: string;
  /** Applies a batch to the local firewall; resolves once it is in, throws to be retried. */
  readonly apply: (batch: readonly BanDecision[]) => Promise<void>;
  /** Local veto (allowlist): a reason to refuse the target, or undefined. */
  readonly refuse?: (target: string) => string | undefined;
  /** This host's own (ledger) ban on the target: a resync never lifts it. */
  readonly isLocalBan?: (target: string) => boolean;
  /** Skip entries this node published itself (role both: they were applied locally already). */
  readonly skipOwn?: boolean;
  readonly now?: () => number;
  /** XREAD BLOCK time (ms): also how fast stop() is noticed without a disconnect. */
  readonly blockMs?: number;
  /** Called per applied entry (latency figures in the bench). */
  readonly onApplied?: (w: WireDecision, appliedAt: number) => void;
}

export interface EnforcerStats {
  applied: number;
  refused: number;
  /** Of refused: unsigned or badly signed entries and ban tokens. */
  badSignature: number;
  /** Of refused: networks wider than redis.widestNetwork. */
  tooWide: number;
  /** Cluster bans a snapshot lifted because the active set no longer holds them. */
  resyncUnbans: number;
  skippedOwn: number;
  snapshots: number;
  failures: number;
  reconnects: number;
  connected: boolean;
  position: string;
  activeBans: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms).unref?.());

export class ClusterEnforcer {
  private readonly redis: Redis;
  private readonly keys: ClusterKeys;
  private st: EnforcerState;
  private readonly plog: PositionLog;
  private stopped = false;
  private needSync = true;
  private loop: Promise<void> | undefined;
  private readonly now: () => number;
  private connected = false;
  private everReady = false;
  private lastRefusedLog = 0;
  readonly counters = { applied: 0, refused: 0, badSignature: 0, tooWide: 0, resyncUnbans: 0, skippedOwn: 0, snapshots: 0, failures: 0, reconnects: 0 };

  constructor(private readonly cfg: RedisConfig, private readonly log: Logger, private readonly opts: EnforcerOptions) {
    this.now = opts.now ?? Date.now;
    this.keys = loadClusterKeys(cfg.signingKeyFile); // no key, no cluster: nothing would verify
    // Loaded at construction so the daemon's start-up reconcile already includes cluster bans.
    this.plog = new PositionLog(opts.stateDir);
    this.st = this.plog.load(this.now()) ?? { id: '', bans: new Map() };
    this.redis = openRedis(cfg, log, 'enforcer', {
      onState: (s) => {
        if (s === 'ready') {
          if (this.everReady) this.counters.reconnects++;
          this.everReady = true;
          this.connected = true;
        } else if (s === 'down') this.connected = false;
      },
    });
  }

  /** Cluster bans active on this host (target → until ms), for the firewall's reconcile. */
  activeBans(): ReadonlyMap<string, number> {
    const now = this.now();
    for (const [t, u] of this.st.bans) if (u <= now) this.st.bans.delete(t);
    return this.st.bans;
  }

  get position(): string {
    return this.st.id;
  }

  stats(): EnforcerStats {
    return { ...this.counters, connected: this.connected, position: this.st.id, activeBans: this.activeBans().size };
  }

  start(): void {
    this.loop ??= this.run();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    this.redis.disconnect();
    await this.loop;
    this.plog.close();
  }

  private async run(): Promise<void> {
    let attempt = 0;
    while (!this.stopped) {
      try {
        if (this.redis.status !== 'ready') {
          await sleep(Math.min(this.cfg.backoffMaxMs, 50 * 2 ** Math.min(attempt++, 10)));
          continue;
        }
        if (this.needSync) await this.sync();
        const res = (await this.redis.xread('COUNT', 1000, 'BLOCK', this.opts.blockMs ?? 2000, 'STREAMS', streamKey(this.cfg), this.st.id)) as
          | [string, [string, string[]][]][]
          | null;
        attempt = 0;
        const entries = res?.[0]?.[1];
        if (entries && entries.length > 0) await this.handle(entries);
      } catch (e) {
        if (this.stopped) break;
        this.counters.failures++;
        this.needSync = true; // after an outage, check the stream was not trimmed past us
        this.log.debug({ err: (e as Error).message }, 'enforcer read failed; retrying');
        await sleep(Math.min(this.cfg.backoffMaxMs, this.cfg.backoffBaseMs * 2 ** Math.min(attempt++, 16)));
      }
    }
  }

  /**
   * Decides between "go on from our position" and "start from a snapshot": a snapshot when there
   * is no position yet, or when entries after our position may be gone (the stream's first entry
   * is newer than our position, or it is empty but has had newer entries — trimmed by MAXLEN, or
   * Redis lost its data). A needless snapshot is cheap: only bans we do not hold are applied.
   */
  private async sync(): Promise<void> {
    let gap = this.st.id === '';
    if (!gap) {
      const info = await this.streamInfo();
      if (info) {
        const first = info.first ?? info.last;
        gap = compareIds(first, this.st.id) > 0 && (info.first !== undefined || compareIds(info.last, this.st.id) > 0);
        if (gap) this.log.warn({ position: this.st.id, first }, 'entries after our stream position are gone (trimmed, or redis lost data): resyncing from the active bans snapshot');
      }
    }
    if (gap) await this.snapshot();
    this.needSync = false;
  }

  /** XINFO STREAM: first entry id (if any) and last generated id; undefined when the stream does not exist. */
  private async streamInfo(): Promise<{ first?: string; last: string } | undefined> {
    let info: unknown[];
    try {
      info = (await this.redis.call('XINFO', 'STREAM', streamKey(this.cfg))) as unknown[];
    } catch (e) {
      if (/no such key/i.test((e as Error).message)) return undefined;
      throw e;
    }
    const get = (k: string): unknown => info[info.indexOf(k) + 1];
    const fe = get('first-entry') as [string, string[]] | null | undefined;
    const last = String(get('last-generated-id') ?? '0-0');
    return Array.isArray(fe) && typeof fe[0] === 'string' ? { first: fe[0], last } : { last };
  }

  /**
   * Loads the active bans (the signed tokens of `<prefix>:bansigs`) and makes the cluster bans held
   * here match them: adds what is missing, lifts cluster bans the set no longer holds (lifted or
   * expired while we were not reading, or a replayed unban to repair). Never lifts this host's own
   * bans, and lifts nothing when the snapshot is empty (a Redis that lost its data must not unban a
   * cluster: those bans run out at their own expiry).
   */
  private async snapshot(): Promise<void> {
    const now = this.now();
    const res = await this.redis.multi()
      .xrevrange(streamKey(this.cfg), '+', '-', 'COUNT', 1)
      .call('XINFO', 'STREAM', streamKey(this.cfg))
      .hgetall(banTokensKey(this.cfg))
      .exec();
    if (!res) throw new Error('snapshot failed');
    if (res[0]![0]) throw res[0]![0];
    if (res[2]![0]) throw res[2]![0];
    const last = res[0]![1] as [string, string[]][];
    let id = last[0]?.[0] ?? '0-0';
    if (!res[1]![0]) {
      const info = res[1]![1] as unknown[];
      const lg = info[info.indexOf('last-generated-id') + 1];
      if (typeof lg === 'string' && compareIds(lg, id) > 0) id = lg;
    }
    const tokens = res[2]![1] as Record<string, string>;
    const held = new Map<string, number>();
    let seen = 0;
    for (const [raw, token] of Object.entries(tokens)) {
      seen++;
      const t = checkWireTarget(raw, this.cfg.widestNetwork);
      if ('error' in t) {
        this.refused(t, 'snapshot');
        continue;
      }
      const v = verifyBanToken(this.keys, this.cfg.prefix, t.ok, token);
      if ('error' in v) {
        this.counters.badSignature++;
        this.refused({ error: `${t.ok}: ${v.error}` }, 'snapshot');
        continue;
      }
      if (v.ok <= now) continue; // expired, not yet pruned
      if (checkUntil(String(v.ok), now) === undefined) {
        this.refused({ error: `${t.ok}: bad expiry` }, 'snapshot');
        continue;
      }
      const veto = this.opts.refuse?.(t.ok);
      if (veto) {
        this.refused({ error: `${t.ok}: ${veto}` }, 'snapshot');
        continue;
      }
      held.set(t.ok, v.ok);
    }
    const batch: BanDecision[] = [];
    for (const [t, u] of held) {
      if ((this.st.bans.get(t) ?? 0) >= u) continue;
      this.st.bans.set(t, u);
      batch.push({ action: 'ban', target: t as BanDecision['target'], until: u, level: 0, policy: 'cluster', ruleId: 'cluster-snapshot', evidence: [] });
    }
    let lifted = 0;
    if (held.size === 0 && seen === 0 && this.st.bans.size > 0) {
      this.log.warn({ bans: this.st.bans.size }, 'the redis snapshot holds no ban at all (redis lost its data?): keeping the cluster bans held here until their own expiry');
    } else {
      for (const t of [...this.st.bans.keys()]) {
        if (held.has(t)) continue;
        this.st.bans.delete(t);
        if (this.opts.isLocalBan?.(t)) continue; // this host's own ban: the cluster has no say
        batch.push({ action: 'unban', target: t as BanDecision['target'], reason: 'reconcile', policy: 'cluster' });
        lifted++;
      }
    }
    await this.applyRetrying(batch);
    this.st = { id, bans: this.st.bans };
    this.plog.rewrite(id, this.activeBans());
    this.counters.snapshots++;
    this.counters.applied += batch.length;
    this.counters.resyncUnbans += lifted;
    if (lifted > 0) this.log.warn({ lifted }, 'resync: lifted cluster bans the redis active set no longer holds');
    this.log.info({ applied: batch.length - lifted, lifted, bans: this.st.bans.size, position: id }, 'cluster bans loaded from the redis snapshot');
  }

  private async handle(entries: [string, string[]][]): Promise<void> {
    const now = this.now();
    const batch: BanDecision[] = [];
    const wires: WireDecision[] = [];
    const set = new Map<string, number>();
    const del = new Set<string>();
    for (const [id, fields] of entries) {
      const sig = verifyEntry(this.keys, this.cfg.prefix, fields);
      if ('error' in sig) {
        this.counters.badSignature++;
        this.refused(sig, id);
        continue;
      }
      const r = decode(fields, now, this.cfg.widestNetwork);
      if ('error' in r) {
        this.refused(r, id);
        continue;
      }
      const w = r.ok;
      if (this.opts.skipOwn && w.node === this.cfg.node) {
        this.counters.skippedOwn++;
        continue;
      }
      const veto = this.opts.refuse?.(w.target);
      if (veto) {
        this.refused({ error: `${w.target}: ${veto}` }, id);
        continue;
      }
      if (w.action === 'ban') {
        if ((w.until ?? 0) <= now) continue; // over already; the kernel would expire it at once
        const u = Math.max(w.until ?? 0, this.st.bans.get(w.target) ?? 0);
        this.st.bans.set(w.target, u);
        set.set(w.target, u);
        del.delete(w.target);
      } else {
        this.st.bans.delete(w.target);
        set.delete(w.target);
        del.add(w.target);
      }
      batch.push(toDecision(w));
      wires.push(w);
    }
    await this.applyRetrying(batch);
    this.st = { id: entries[entries.length - 1]![0], bans: this.st.bans };
    this.plog.append(this.st.id, set, [...del], this.st.bans);
    this.counters.applied += batch.length;
    if (this.opts.onApplied) {
      const t = Date.now();
      for (const w of wires) this.opts.onApplied(w, t);
    }
  }

  private async applyRetrying(batch: readonly BanDecision[]): Promise<void> {
    if (batch.length === 0) return;
    let attempt = 0;
    for (;;) {
      try {
        await this.opts.apply(batch);
        return;
      } catch (e) {
        if (this.stopped) throw e;
        this.log.warn({ err: (e as Error).message, decisions: batch.length }, 'local firewall did not take cluster decisions; retrying');
        await sleep(Math.min(this.cfg.backoffMaxMs, this.cfg.backoffBaseMs * 2 ** Math.min(attempt++, 16)));
      }
    }
  }

  /** Counts a refused entry or token; logs at most one every 10 s, with where it was (stream id). */
  private refused(r: Refusal, where: string): void {
    this.counters.refused++;
    if (r.tooWide) this.counters.tooWide++;
    const t = this.now();
    if (t - this.lastRefusedLog > 10_000) {
      this.lastRefusedLog = t;
      this.log.warn({ refused: this.counters.refused, badSignature: this.counters.badSignature, tooWide: this.counters.tooWide, streamId: where, why: r.error }, 'refused a cluster decision from redis (unsigned, badly signed, invalid, too wide or allowlisted)');
    }
  }
}
