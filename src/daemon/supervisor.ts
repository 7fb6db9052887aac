// Source supervision: each source runs in a SourceRunner that restarts it with backoff when it
// fails (a source never retries on its own), builds a source before anything is started or
// stopped (so a start fails, or a reload is refused, naming the source that cannot be built), and
// stops them all, draining the batch in hand.
import type { Logger } from 'pino';
import type { RuleEngine } from '../rules/engine.js';
import type { RawRecord, Source } from '../types.js';
import type { MailjailConfig, SourceConfig } from './config.js';
import type { SourceContext } from './deps.js';
import type { Metrics } from './metrics.js';

export interface SupervisorOptions {
  readonly makeSource: (cfg: SourceConfig, ctx: SourceContext) => Source;
  readonly onBatch: (batch: readonly RawRecord[], source: string) => void;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** Restart backoff (ms): base × 2^attempt, at most max. */
  readonly restartBaseMs: number;
  readonly restartMaxMs: number;
}

/** A source that could not be built, by name (`cause` is what its factory threw). */
export class SourceBuildError extends Error {
  constructor(readonly source: string, override readonly cause: unknown) {
    super(`source "${source}": ${(cause as Error)?.message ?? String(cause)}`);
  }
}

const sleep = (ms: number, signal?: AbortSignal): Promise<void> =>
  new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done(): void {
      clearTimeout(t);
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });

const withTimeout = <T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> =>
  Promise.race([p, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), ms).unref?.())]);

/** The numeric part of what a source says about itself. */
export function sourceStats(src: Source | undefined): Record<string, number> | undefined {
  const st = src?.stats?.();
  if (!st) return undefined;
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(st)) if (typeof v === 'number') out[k] = v;
  return out;
}

export type RunnerState = 'starting' | 'running' | 'restarting' | 'finished' | 'stopped';

/** Runs one source, restarting it with backoff when it fails (the source never retries itself). */
export class SourceRunner {
  state: RunnerState = 'starting';
  lines = 0;
  restarts = 0;
  lastError: string | undefined;
  /** The source instance running now (for its own stats()). */
  current: Source | undefined;
  private readonly ac = new AbortController();
  readonly loop: Promise<void>;

  constructor(
    readonly cfg: SourceConfig,
    private readonly make: () => Source,
    private readonly o: SupervisorOptions,
    /** Built beforehand (a new source), or undefined: built here (one replacing an old instance). */
    first: Source | undefined,
  ) {
    this.loop = this.run(first);
  }

  get name(): string {
    return this.cfg.name;
  }

  abort(): void {
    this.ac.abort();
  }

  private async run(first: Source | undefined): Promise<void> {
    const signal = this.ac.signal;
    let attempt = 0;
    let src = first;
    while (!signal.aborted) {
      try {
        src ??= this.make();
        this.current = src;
        this.state = 'running';
        for await (const batch of src.records(signal)) {
          attempt = 0;
          this.lines += batch.length;
          this.o.onBatch(batch, this.name);
          if (signal.aborted) break; // drain: the batch in hand is done, then stop
        }
        if (!signal.aborted) {
          this.state = 'finished';
          this.o.log.info({ source: this.name }, 'source finished');
          return;
        }
      } catch (e) {
        if (signal.aborted) break;
        this.lastError = (e as Error)?.message ?? String(e);
        this.state = 'restarting';
        this.restarts++;
        this.o.metrics.sourceRestarts.inc({ source: this.name });
        const delay = Math.min(this.o.restartMaxMs, this.o.restartBaseMs * 2 ** Math.min(attempt++, 16));
        this.o.log.warn({ source: this.name, err: this.lastError, retryInMs: delay }, 'source failed; restarting');
        await sleep(delay, signal);
      }
      src = undefined;
    }
    this.state = 'stopped';
  }
}

export class Supervisor {
  /** The running sources, by name. */
  readonly runners = new Map<string, SourceRunner>();

  constructor(private readonly o: SupervisorOptions) {
    // Whatever numbers a source reports about itself (received, denied, oversize, dropped, filtered...).
    o.metrics.gauge('mailjail_source_stat', 'Counters a source reports about itself, by source and counter', ['source', 'stat'], (g) => {
      g.reset();
      for (const r of this.runners.values()) {
        for (const [k, v] of Object.entries(sourceStats(r.current) ?? {})) g.set({ source: r.name, stat: k }, v);
      }
    });
  }

  /**
   * Builds each source once, before anything is started or stopped, so that one that cannot even
   * be created (bad settings, a missing journal binding...) fails the start or refuses the reload;
   * the error names the source. Building binds nothing: sockets and journals open when it runs.
   */
  build(list: readonly SourceConfig[], config: MailjailConfig, engine: RuleEngine): [SourceConfig, Source][] {
    return list.map((cfg) => {
      try {
        return [cfg, this.maker(cfg, config, engine)()];
      } catch (e) {
        throw new SourceBuildError(cfg.name, e);
      }
    });
  }

  /** Runs a source under supervision; `first` is an instance built beforehand, if any. */
  run(cfg: SourceConfig, first: Source | undefined, config: MailjailConfig, engine: RuleEngine): void {
    this.runners.set(cfg.name, new SourceRunner(cfg, this.maker(cfg, config, engine), this.o, first));
  }

  /** Stops the named runners (and forgets them); resolves once they have drained. */
  async stop(names: Iterable<string>): Promise<void> {
    const stopping: Promise<void>[] = [];
    for (const name of names) {
      const r = this.runners.get(name);
      if (!r) continue;
      r.abort();
      stopping.push(r.loop);
      this.runners.delete(name);
    }
    await Promise.all(stopping);
  }

  /** Shutdown: aborts every source and waits up to `timeoutMs` for them to drain. */
  async stopAll(timeoutMs: number): Promise<'timeout' | undefined> {
    for (const r of this.runners.values()) r.abort();
    const drained = await withTimeout(Promise.all([...this.runners.values()].map((r) => r.loop)), timeoutMs);
    return drained === 'timeout' ? 'timeout' : undefined;
  }

  /** How a source of `config` is built (each restart by the supervisor builds it again). */
  private maker(cfg: SourceConfig, config: MailjailConfig, engine: RuleEngine): () => Source {
    return () => this.o.makeSource(cfg, {
      stateDir: config.state.dir, log: this.o.log.child({ source: cfg.name }), metrics: this.o.metrics,
      programs: engine.programs(),
      lookbackMs: cfg.type === 'journald' && cfg.lookback > 0 ? cfg.lookback : Math.max(...config.policies.map((p) => p.findtime)),
    });
  }
}
