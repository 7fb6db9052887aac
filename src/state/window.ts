// The bounded table of tracked offenders for one policy: an LRU (lru-cache) maps the key (address
// or prefix text) to a small integer slot; the slot indexes typed-array rings of the last
// `maxretry` attempt times. No per-attempt objects: a tracked key costs the LRU entry plus
// 8 B × maxretry (+ 4 B × maxretry with distinct-user counting) + 10 B.
import { LRUCache } from 'lru-cache';

const INITIAL = 1024;

export class SlotTable {
  readonly ring: number;
  private readonly lru: LRUCache<string | number, number>;
  private readonly max: number;
  private cap = 0;
  private used = 0; // slots ever handed out (high-water mark)
  private free: number[] = [];
  /** Ring of attempt times (ms), `ring` per slot; -Infinity = empty. */
  private times = new Float64Array(0);
  /** Ring of user-name hashes parallel to `times` (0 = unknown), only with distinct-user counting. */
  private users: Uint32Array | undefined;
  /** Next write position in each slot's ring. */
  private head = new Uint16Array(0);
  /** Time of the last definite (non-weak) attempt per slot. */
  private definite = new Float64Array(0);
  evictions = 0;

  constructor(ring: number, max: number, withUsers: boolean) {
    this.ring = ring;
    this.max = max;
    if (withUsers) this.users = new Uint32Array(0);
    this.lru = new LRUCache<string | number, number>({
      max,
      dispose: (slot, _key, reason) => {
        if (reason === 'evict') this.evictions++;
        this.free.push(slot);
      },
    });
  }

  get size(): number {
    return this.lru.size;
  }

  /** Slot of a tracked key (marks it recently used), or undefined. */
  get(key: string | number): number | undefined {
    return this.lru.get(key);
  }

  /** Starts tracking `key` (must not be tracked), evicting the least recently used key when full. */
  add(key: string | number): number {
    if (this.lru.size >= this.max) this.lru.pop(); // frees a slot via dispose, counted as eviction
    let slot = this.free.pop();
    if (slot === undefined) {
      slot = this.used++;
      if (slot >= this.cap) this.grow();
    }
    this.reset(slot);
    this.lru.set(key, slot);
    return slot;
  }

  /**
   * Forgets the attempts of `key` (after a ban or an operator unban). The key keeps its slot rather
   * than leaving the LRU: lru-cache's delete of the last entry clears its whole preallocated
   * arrays (O(max)), which would cost milliseconds per ban on a quiet server.
   */
  forget(key: string | number): void {
    const slot = this.lru.peek(key);
    if (slot !== undefined) this.reset(slot);
  }

  /** Time of the newest attempt in the slot (-Infinity if none). */
  latest(slot: number): number {
    const r = this.ring;
    return this.times[slot * r + ((this.head[slot]! + r - 1) % r)]!;
  }

  lastDefinite(slot: number): number {
    return this.definite[slot]!;
  }

  /** Records `n` attempts at time `t` (only the newest `ring` matter). */
  push(slot: number, t: number, n: number, userHash: number, definite: boolean): void {
    const r = this.ring;
    const base = slot * r;
    let h = this.head[slot]!;
    for (let i = Math.min(n, r); i > 0; i--) {
      this.times[base + h] = t;
      if (this.users) this.users[base + h] = userHash;
      h = h + 1 === r ? 0 : h + 1;
    }
    this.head[slot] = h;
    if (definite) this.definite[slot] = t;
  }

  /** Attempts in the ring with time >= since (the ring holds at most `ring`). */
  countSince(slot: number, since: number): number {
    const base = slot * this.ring;
    let c = 0;
    for (let i = 0; i < this.ring; i++) if (this.times[base + i]! >= since) c++;
    return c;
  }

  /** Distinct user names among ring entries with time >= since; unknown names (0) each count. */
  distinctUsersSince(slot: number, since: number): number {
    if (!this.users) return this.countSince(slot, since);
    const base = slot * this.ring;
    const seen: number[] = [];
    let unknown = 0;
    for (let i = 0; i < this.ring; i++) {
      if (this.times[base + i]! < since) continue;
      const u = this.users[base + i]!;
      if (u === 0) unknown++;
      else if (!seen.includes(u)) seen.push(u);
    }
    return seen.length + unknown;
  }

  private reset(slot: number): void {
    const base = slot * this.ring;
    this.times.fill(-Infinity, base, base + this.ring);
    this.users?.fill(0, base, base + this.ring);
    this.head[slot] = 0;
    this.definite[slot] = -Infinity;
  }

  private grow(): void {
    const cap = Math.min(this.max, Math.max(INITIAL, this.cap * 2));
    const times = new Float64Array(cap * this.ring);
    times.set(this.times);
    this.times = times;
    if (this.users) {
      const users = new Uint32Array(cap * this.ring);
      users.set(this.users);
      this.users = users;
    }
    const head = new Uint16Array(cap);
    head.set(this.head);
    this.head = head;
    const definite = new Float64Array(cap);
    definite.set(this.definite);
    this.definite = definite;
    this.cap = cap;
  }
}

/** FNV-1a 32-bit hash of a user name, never 0 (0 means "no user name on the line"). */
export function userHash(user: string | undefined): number {
  if (user === undefined || user === '') return 0;
  let h = 0x811c9dc5;
  for (let i = 0; i < user.length; i++) {
    h ^= user.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) || 1;
}
