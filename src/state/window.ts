// The bounded table of tracked offenders for one policy. A key (an address, or its prefix, as
// four 32-bit words: IPv4 in the ::ffff:0:0/96 form, which parse/ip never mints for IPv6) maps to
// a small integer slot; the slot indexes typed-array rings of the last `maxretry` attempt times,
// and an LRU list threaded through typed arrays decides what to evict when the table is full.
//
// Why not lru-cache here (it is used for sessions in dedupe.ts): its Map rehashes on deletes, so a
// spray of distinct addresses leaves a 56 MB dead hash table behind every ~1M evictions and RSS
// climbed to 500 MB in bench/state-memory.ts before a major GC; and deleting its last entry clears
// its whole preallocated arrays (O(max)). This table allocates nothing per event: memory is fixed
// by the number of slots (≈ 82 B per tracked key at maxretry 5) and flat under any spray.

const INITIAL = 1024;
const EMPTY = 0; // in `index`: no slot (slots are stored +1)

export class SlotTable {
  readonly ring: number;
  private readonly max: number;
  /** Key register: write the key here (see parse/ip's `loadMaskedKey`), then call find/add. */
  readonly key = new Uint32Array(4);
  private cap = 0; // slots allocated
  private size_ = 0;
  /** Open-addressing (linear probing) hash index → slot+1; power-of-two length ≥ 2 × cap. */
  private index = new Int32Array(0);
  private mask = 0;
  private keys = new Uint32Array(0); // 4 words per slot
  private prev = new Int32Array(0);
  private next = new Int32Array(0);
  private head_ = -1; // most recently used
  private tail = -1; // least recently used
  /** Ring of attempt times (ms), `ring` per slot; -Infinity = empty. */
  private times = new Float64Array(0);
  /** Ring of user-name hashes parallel to `times` (0 = unknown), only with distinct-user counting. */
  private users: Uint32Array | undefined;
  /** Next write position in each slot's ring. */
  private pos = new Uint16Array(0);
  /** Time of the last definite (non-weak) attempt per slot. */
  private definite = new Float64Array(0);
  /** Time of the definite attempt before that: two in the window corroborate a weak line. */
  private definitePrev = new Float64Array(0);
  evictions = 0;

  constructor(ring: number, max: number, withUsers: boolean) {
    this.ring = ring;
    this.max = max;
    if (withUsers) this.users = new Uint32Array(0);
    this.grow();
  }

  get size(): number {
    return this.size_;
  }

  /** Slot of the key in the register (marks it most recently used), or -1. */
  find(): number {
    const slot = this.lookup();
    if (slot >= 0 && slot !== this.head_) {
      this.unlink(slot);
      this.linkHead(slot);
    }
    return slot;
  }

  /** Slot of the key in the register without touching recency, or -1. */
  peek(): number {
    return this.lookup();
  }

  /** Starts tracking the key in the register (must not be tracked); evicts the LRU key when full. */
  add(): number {
    let slot: number;
    if (this.size_ >= this.max) {
      slot = this.tail;
      this.unlink(slot);
      this.removeFromIndex(slot);
      this.evictions++;
    } else {
      if (this.size_ >= this.cap) this.grow();
      slot = this.size_++;
    }
    const k = this.key, b = slot * 4;
    this.keys[b] = k[0]!; this.keys[b + 1] = k[1]!; this.keys[b + 2] = k[2]!; this.keys[b + 3] = k[3]!;
    let i = this.hash(k[0]!, k[1]!, k[2]!, k[3]!) & this.mask;
    while (this.index[i] !== EMPTY) i = (i + 1) & this.mask;
    this.index[i] = slot + 1;
    this.linkHead(slot);
    this.reset(slot);
    return slot;
  }

  /** Forgets the attempts of a slot (after a ban or an operator unban); it stays tracked. */
  forget(slot: number): void {
    this.reset(slot);
  }

  /** Time of the newest attempt in the slot (-Infinity if none). */
  latest(slot: number): number {
    const r = this.ring;
    return this.times[slot * r + ((this.pos[slot]! + r - 1) % r)]!;
  }

  lastDefinite(slot: number): number {
    return this.definite[slot]!;
  }

  /** Time of the second-newest definite attempt (-Infinity when there were fewer than two). */
  secondLastDefinite(slot: number): number {
    return this.definitePrev[slot]!;
  }

  /** Records `n` attempts at time `t` (only the newest `ring` matter). */
  push(slot: number, t: number, n: number, userHash: number, definite: boolean): void {
    const r = this.ring;
    const base = slot * r;
    let h = this.pos[slot]!;
    for (let i = Math.min(n, r); i > 0; i--) {
      this.times[base + h] = t;
      if (this.users) this.users[base + h] = userHash;
      h = h + 1 === r ? 0 : h + 1;
    }
    this.pos[slot] = h;
    if (definite) {
      this.definitePrev[slot] = n > 1 ? t : this.definite[slot]!;
      this.definite[slot] = t;
    }
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

  /**
   * Copies every tracked key with its newest attempts into `into` (an empty table, possibly with
   * another ring length, bound or user tracking), keeping recency order; when `into` holds fewer
   * keys, the least recently used ones are left behind and counted as evictions. `moved(from, to)`
   * is told each slot's new number. Used by a config reload that changes maxretry or maxTracked.
   */
  copyInto(into: SlotTable, moved?: (from: number, to: number) => void): void {
    if (into.size_ !== 0) throw new Error('copyInto needs an empty table');
    // Most recently used first, up to what `into` can hold; then added oldest first.
    const order: number[] = [];
    for (let s = this.head_; s >= 0 && order.length < into.max; s = this.next[s]!) order.push(s);
    into.evictions = this.evictions + (this.size_ - order.length);
    const r = this.ring, nr = into.ring, keep = Math.min(r, nr);
    for (let i = order.length - 1; i >= 0; i--) {
      const s = order[i]!, b = s * 4;
      into.key[0] = this.keys[b]!; into.key[1] = this.keys[b + 1]!; into.key[2] = this.keys[b + 2]!; into.key[3] = this.keys[b + 3]!;
      const t = into.add();
      // The newest `keep` ring entries, oldest of them first, from slot 0 of the new ring.
      for (let k = 0; k < keep; k++) {
        const from = s * r + ((this.pos[s]! + r - keep + k) % r);
        into.times[t * nr + k] = this.times[from]!;
        if (into.users) into.users[t * nr + k] = this.users?.[from] ?? 0;
      }
      into.pos[t] = keep % nr;
      into.definite[t] = this.definite[s]!;
      into.definitePrev[t] = this.definitePrev[s]!;
      moved?.(s, t);
    }
  }

  /** Bytes held by the table's arrays (for stats and the benchmark). */
  get bytes(): number {
    return this.index.byteLength + this.keys.byteLength + this.prev.byteLength + this.next.byteLength +
      this.times.byteLength + (this.users?.byteLength ?? 0) + this.pos.byteLength + this.definite.byteLength + this.definitePrev.byteLength;
  }

  // ── internals ──

  private hash(a: number, b: number, c: number, d: number): number {
    let h = Math.imul(a ^ 0x9e3779b9, 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 15) ^ b, 0xc2b2ae35);
    h = Math.imul(h ^ (h >>> 13) ^ c, 0x27d4eb2f);
    h = Math.imul(h ^ (h >>> 16) ^ d, 0x165667b1);
    return (h ^ (h >>> 15)) >>> 0;
  }

  private lookup(): number {
    const k = this.key;
    const k0 = k[0]!, k1 = k[1]!, k2 = k[2]!, k3 = k[3]!;
    let i = this.hash(k0, k1, k2, k3) & this.mask;
    for (;;) {
      const v = this.index[i]!;
      if (v === EMPTY) return -1;
      const b = (v - 1) * 4;
      if (this.keys[b] === k0 && this.keys[b + 1] === k1 && this.keys[b + 2] === k2 && this.keys[b + 3] === k3) return v - 1;
      i = (i + 1) & this.mask;
    }
  }

  /** Deletes a slot from the linear-probing index, shifting later entries back (no tombstones). */
  private removeFromIndex(slot: number): void {
    const b = slot * 4;
    let i = this.hash(this.keys[b]!, this.keys[b + 1]!, this.keys[b + 2]!, this.keys[b + 3]!) & this.mask;
    while (this.index[i] !== slot + 1) i = (i + 1) & this.mask;
    let j = i;
    for (;;) {
      j = (j + 1) & this.mask;
      const v = this.index[j]!;
      if (v === EMPTY) break;
      const vb = (v - 1) * 4;
      const home = this.hash(this.keys[vb]!, this.keys[vb + 1]!, this.keys[vb + 2]!, this.keys[vb + 3]!) & this.mask;
      // Move v into the hole at i when its home is not cyclically within (i, j].
      if (i <= j ? home <= i || home > j : home <= i && home > j) {
        this.index[i] = v;
        i = j;
      }
    }
    this.index[i] = EMPTY;
  }

  private unlink(slot: number): void {
    const p = this.prev[slot]!, n = this.next[slot]!;
    if (p >= 0) this.next[p] = n; else this.head_ = n;
    if (n >= 0) this.prev[n] = p; else this.tail = p;
  }

  private linkHead(slot: number): void {
    this.prev[slot] = -1;
    this.next[slot] = this.head_;
    if (this.head_ >= 0) this.prev[this.head_] = slot;
    this.head_ = slot;
    if (this.tail < 0) this.tail = slot;
  }

  private reset(slot: number): void {
    const base = slot * this.ring;
    this.times.fill(-Infinity, base, base + this.ring);
    this.users?.fill(0, base, base + this.ring);
    this.pos[slot] = 0;
    this.definite[slot] = -Infinity;
    this.definitePrev[slot] = -Infinity;
  }

  private grow(): void {
    const cap = Math.min(this.max, Math.max(INITIAL, this.cap * 2));
    const r = this.ring;
    const widen = <T extends Float64Array | Uint32Array | Int32Array | Uint16Array>(old: T, make: (n: number) => T, per: number): T => {
      const a = make(cap * per);
      a.set(old);
      return a;
    };
    this.keys = widen(this.keys, (n) => new Uint32Array(n), 4);
    this.prev = widen(this.prev, (n) => new Int32Array(n), 1);
    this.next = widen(this.next, (n) => new Int32Array(n), 1);
    this.times = widen(this.times, (n) => new Float64Array(n), r);
    if (this.users) this.users = widen(this.users, (n) => new Uint32Array(n), r);
    this.pos = widen(this.pos, (n) => new Uint16Array(n), 1);
    this.definite = widen(this.definite, (n) => new Float64Array(n), 1);
    this.definitePrev = widen(this.definitePrev, (n) => new Float64Array(n), 1);
    this.cap = cap;
    // Rebuild the index at load factor <= 1/2.
    let len = 1;
    while (len < cap * 2) len *= 2;
    this.index = new Int32Array(len);
    this.mask = len - 1;
    for (let s = 0; s < this.size_; s++) {
      const b = s * 4;
      let i = this.hash(this.keys[b]!, this.keys[b + 1]!, this.keys[b + 2]!, this.keys[b + 3]!) & this.mask;
      while (this.index[i] !== EMPTY) i = (i + 1) & this.mask;
      this.index[i] = s + 1;
    }
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
