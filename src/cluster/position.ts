// The enforcer's own small ledger: the last stream id whose decisions are in the local firewall,
// and the cluster bans active here (target → until). An append-only JSON-lines file: one line per
// applied batch ({id, set, del}), written and fdatasync'ed only after the firewall applied the
// batch, so after a crash the enforcer resumes exactly after the last applied batch. A torn last
// line (kill -9 mid-write) is ignored: that batch is read again from the stream and re-applied
// (idempotent). Rewritten as one full line (temp file, fsync, rename) when dead lines pile up, so
// each batch costs O(batch), not O(active bans).
import { closeSync, fdatasyncSync, openSync, readFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { checkUntil, checkWireTarget } from './codec.js';
import { replaceFileDurably } from '../lib/durable-file.js';

export interface EnforcerState {
  /** Last applied stream id ("" = none yet, take a snapshot). */
  readonly id: string;
  readonly bans: Map<string, number>;
}

export const POSITION_FILE = 'cluster-bans.jsonl';
const ID = /^\d{1,20}-\d{1,20}$/;

export class PositionLog {
  readonly path: string;
  private fd: number | undefined;
  private lines = 0;

  constructor(readonly dir: string) {
    this.path = join(dir, POSITION_FILE);
  }

  /** Reads the file (nothing → undefined). Untrusted like Redis: targets are re-validated. */
  load(now: number): EnforcerState | undefined {
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch {
      return undefined;
    }
    let id = '';
    const bans = new Map<string, number>();
    for (const line of text.split('\n')) {
      if (line === '') continue;
      let o: { id?: unknown; set?: unknown; del?: unknown };
      try {
        o = JSON.parse(line) as typeof o;
      } catch {
        break; // torn tail: the batch is read again from the stream
      }
      if (typeof o.id !== 'string' || !ID.test(o.id)) break;
      if (o.set && typeof o.set === 'object') {
        for (const [t, u] of Object.entries(o.set as Record<string, unknown>)) {
          const ct = checkWireTarget(t);
          const cu = checkUntil(String(u), now);
          if ('ok' in ct && cu !== undefined) bans.set(ct.ok, Math.max(cu, bans.get(ct.ok) ?? 0));
        }
      }
      if (Array.isArray(o.del)) for (const t of o.del) if (typeof t === 'string') bans.delete(t);
      id = o.id;
      this.lines++;
    }
    for (const [t, u] of bans) if (u <= now) bans.delete(t);
    return id === '' ? undefined : { id, bans };
  }

  /** One applied batch: durable before it returns. */
  append(id: string, set: ReadonlyMap<string, number>, del: readonly string[], all: ReadonlyMap<string, number>): void {
    if (this.lines > 1000 && this.lines > 2 * all.size) {
      this.rewrite(id, all);
      return;
    }
    this.fd ??= openSync(this.path, 'a', 0o640);
    writeSync(this.fd, `${JSON.stringify({ id, set: Object.fromEntries(set), ...(del.length ? { del } : {}) })}\n`);
    fdatasyncSync(this.fd);
    this.lines++;
  }

  /** The whole state as one line, atomically (snapshots and compaction). */
  rewrite(id: string, all: ReadonlyMap<string, number>): void {
    this.close();
    replaceFileDurably(this.path, `${JSON.stringify({ id, set: Object.fromEntries(all) })}\n`, 0o640);
    this.lines = 1;
  }

  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }
}
