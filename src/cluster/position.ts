// The enforcer's own small ledger: the last stream id whose decisions are in the local firewall,
// and the cluster bans that are active here (target → until). Written atomically (temp file,
// fsync, rename, fsync of the directory) only after the firewall applied a batch, so after a
// crash the enforcer resumes exactly after the last applied batch.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { checkUntil, checkWireTarget } from './codec.js';

export interface EnforcerState {
  /** Last applied stream id ("0-0" = nothing yet). */
  readonly id: string;
  readonly bans: Map<string, number>;
}

export const POSITION_FILE = 'cluster-position.json';

export function loadPosition(dir: string, now: number): EnforcerState | undefined {
  let text: string;
  try {
    text = readFileSync(join(dir, POSITION_FILE), 'utf8');
  } catch {
    return undefined;
  }
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined; // unreadable: start from a fresh snapshot (safe: the snapshot holds every active ban)
  }
  const o = v as { v?: unknown; id?: unknown; bans?: unknown };
  if (o.v !== 1 || typeof o.id !== 'string' || !/^\d{1,20}-\d{1,20}$/.test(o.id) || typeof o.bans !== 'object' || o.bans === null) return undefined;
  const bans = new Map<string, number>();
  for (const [t, u] of Object.entries(o.bans as Record<string, unknown>)) {
    const ct = checkWireTarget(t);
    const cu = checkUntil(String(u), now);
    if ('ok' in ct && cu !== undefined && cu > now) bans.set(ct.ok, cu);
  }
  return { id: o.id, bans };
}

export function savePosition(dir: string, st: EnforcerState): void {
  const file = join(dir, POSITION_FILE);
  const tmp = `${file}.tmp`;
  const fd = openSync(tmp, 'w', 0o640);
  try {
    writeSync(fd, JSON.stringify({ v: 1, id: st.id, bans: Object.fromEntries(st.bans) }));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, file);
  const dfd = openSync(dirname(file), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
