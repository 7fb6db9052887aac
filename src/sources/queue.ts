// A bounded queue between a push-driven producer (sockets, a child's stdout, a native reader) and
// the pull-driven consumer (`for await` over batches). It is the single place where backpressure
// is decided: `push` answers false once `highWater` records are waiting, and the producer pauses
// (TCP) or drops and counts (UDP) until `onDrain` fires.
import type { RawRecord } from '../types.js';

export interface BatchQueueOptions {
  /** Records waiting before `push` asks the producer to stop. */
  readonly highWater: number;
  /** Largest batch handed to the consumer at once. */
  readonly maxBatch: number;
}

export class BatchQueue {
  private items: RawRecord[] = [];
  private head = 0;
  private waiter: (() => void) | undefined;
  private closed = false;
  private error: unknown;
  private drainListeners: (() => void)[] = [];
  private wasFull = false;

  constructor(private readonly opts: BatchQueueOptions) {}

  get length(): number {
    return this.items.length - this.head;
  }

  /** True when the queue is at or over its high-water mark. */
  get full(): boolean {
    return this.length >= this.opts.highWater;
  }

  /** Queues a record; returns false when the producer should pause (the record is kept). */
  push(r: RawRecord): boolean {
    if (this.closed) return false;
    this.items.push(r);
    this.wake();
    if (this.length >= this.opts.highWater) {
      this.wasFull = true;
      return false;
    }
    return true;
  }

  /** Called once each time the queue falls to half its high-water mark after having been full. */
  onDrain(fn: () => void): void {
    this.drainListeners.push(fn);
  }

  /** Ends the stream after what is queued (or at once with an error). */
  close(err?: unknown): void {
    if (err !== undefined && this.error === undefined) this.error = err;
    this.closed = true;
    this.wake();
  }

  private wake(): void {
    const w = this.waiter;
    if (w) {
      this.waiter = undefined;
      w();
    }
  }

  /** Next batch, or undefined at the end. */
  async next(): Promise<RawRecord[] | undefined> {
    for (;;) {
      if (this.error !== undefined) throw this.error;
      const n = this.length;
      if (n > 0) {
        const take = Math.min(n, this.opts.maxBatch);
        const batch = this.items.slice(this.head, this.head + take);
        this.head += take;
        if (this.head === this.items.length) {
          this.items = [];
          this.head = 0;
        } else if (this.head > 65536) {
          this.items = this.items.slice(this.head);
          this.head = 0;
        }
        if (this.wasFull && this.length <= this.opts.highWater / 2) {
          this.wasFull = false;
          for (const fn of this.drainListeners) fn();
        }
        return batch;
      }
      if (this.closed) return undefined;
      await new Promise<void>((resolve) => {
        this.waiter = resolve;
      });
    }
  }
}
