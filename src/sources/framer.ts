// TCP syslog framing (RFC 6587): octet-counting ("<len> <msg>") or LF-delimited, chosen once per
// connection from its first frame: digits then a space mean octet counting (a syslog message
// itself starts with "<"); anything else — also digits not followed by a space, as in a PRI-less
// line starting with an ISO date — means LF (NUL also ends a frame, as old syslog-ng senders use).
// Memory is bounded: at most `maxMessage` bytes of a frame are ever held; longer frames are
// counted and skipped without buffering them, and the connection lives on. A partial frame is
// copied into one growing buffer, never kept as a list of the socket's chunks: a sender trickling
// 1-byte segments would otherwise cost a Buffer object (~76 bytes of heap) per byte held. What a
// framer holds is its buffer's capacity, charged to a `HeldBudget` shared by all connections of a
// listener; a framer that would overdraw it reports 'over-budget' and takes no more input.

export type FrameFault = 'oversize' | 'bad-octet-count' | 'over-budget';

/** Bytes held by the framers of one listener, across all its connections. */
export class HeldBudget {
  private n = 0;
  constructor(readonly limit: number) {}

  get held(): number {
    return this.n;
  }

  /** Charges `bytes` if they fit under the limit; false (nothing charged) if not. */
  take(bytes: number): boolean {
    if (this.n + bytes > this.limit) return false;
    this.n += bytes;
    return true;
  }

  give(bytes: number): void {
    this.n -= bytes;
  }
}

export interface FramerSink {
  frame(msg: Buffer): void;
  fault(kind: FrameFault): void;
}

const LF = 0x0a;
const NUL = 0x00;
const SP = 0x20;
/** A length field longer than this cannot be a valid count below any sane max size. */
const MAX_COUNT_DIGITS = 10;
/** Smallest buffer for a partial frame: a trickler pays for this much before doubling starts. */
const MIN_HOLD = 256;

const isDigit = (b: number): boolean => b >= 0x30 && b <= 0x39;

/** Drops one trailing LF (and the CR before it) and trailing NULs: the frame as the sender meant it. */
export function trimFrame(b: Buffer): Buffer {
  let end = b.length;
  while (end > 0 && (b[end - 1] === LF || b[end - 1] === NUL)) {
    end--;
    if (end > 0 && b[end - 1] === 0x0d) end--;
  }
  return end === b.length ? b : b.subarray(0, end);
}

export class Framer {
  private mode: 'unknown' | 'octet' | 'lf' = 'unknown';
  /** The frame (or count prefix) being assembled: `held` bytes used of `buf`'s capacity. */
  private buf: Buffer | undefined;
  private held = 0;
  /** Over budget: the connection is to be closed; input is ignored. */
  private dead = false;
  /** Octet mode: bytes still expected for the current message, -1 while reading the count. */
  private want = -1;
  /** Bytes to throw away before the next frame starts (oversize message, or until LF after a bad count). */
  private skip = 0;
  private skipToLf = false;
  /** The first count of the connection is being read: if it is not "<digits> ", the stream is LF. */
  private probing = false;

  constructor(
    private readonly maxMessage: number,
    private readonly sink: FramerSink,
    private readonly budget?: HeldBudget,
  ) {}

  get framing(): 'unknown' | 'octet' | 'lf' {
    return this.mode;
  }

  /** Bytes of memory this framer holds now (its buffer's capacity). */
  get heldBytes(): number {
    return this.buf?.length ?? 0;
  }

  /** True between the first byte of a frame (or of a skipped one) and its end. */
  get midFrame(): boolean {
    return this.held > 0 || this.want >= 0 || this.skip > 0 || this.skipToLf;
  }

  /** Gives the held memory back to the budget (the connection is gone). */
  dispose(): void {
    this.release();
    this.dead = true;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len && !this.dead) {
      if (this.skip > 0) {
        const n = Math.min(this.skip, len - pos);
        this.skip -= n;
        pos += n;
        continue;
      }
      if (this.skipToLf) {
        const lf = chunk.indexOf(LF, pos);
        if (lf < 0) return;
        this.skipToLf = false;
        pos = lf + 1;
        continue;
      }
      if (this.mode === 'unknown') {
        this.mode = isDigit(chunk[pos]!) ? 'octet' : 'lf';
        this.probing = this.mode === 'octet';
      }
      pos = this.mode === 'lf' ? this.pushLf(chunk, pos) : this.pushOctet(chunk, pos);
    }
  }

  /** The held bytes plus chunk[from, to) as one buffer; the held ones are released. */
  private take(chunk: Buffer, from: number, to: number): Buffer {
    if (this.held === 0 || !this.buf) return chunk.subarray(from, to);
    const all = Buffer.concat([this.buf.subarray(0, this.held), chunk.subarray(from, to)]);
    this.release();
    return all;
  }

  private release(): void {
    if (this.buf) this.budget?.give(this.buf.length);
    this.buf = undefined;
    this.held = 0;
  }

  /**
   * Copies chunk[from, to) after the held bytes (the chunk's memory is the socket's: keep only
   * our part). Grows the buffer by doubling, up to what a frame may need; false when the budget
   * refuses, after which the framer is dead.
   */
  private hold(chunk: Buffer, from: number, to: number): boolean {
    if (to <= from) return true;
    const need = this.held + (to - from);
    const cap = this.buf?.length ?? 0;
    if (need > cap) {
      const next = Math.max(need, Math.min(Math.max(cap * 2, MIN_HOLD), this.maxMessage + MAX_COUNT_DIGITS));
      if (this.budget && !this.budget.take(next - cap)) {
        this.release();
        this.dead = true;
        this.sink.fault('over-budget');
        return false;
      }
      // Not from the shared pool: a small slice of it would pin a whole 8 KiB slab.
      const grown = Buffer.allocUnsafeSlow(next);
      if (this.buf) this.buf.copy(grown, 0, 0, this.held);
      this.buf = grown;
    }
    chunk.copy(this.buf!, this.held, from, to);
    this.held = need;
    return true;
  }

  private pushLf(chunk: Buffer, pos: number): number {
    let end = -1;
    for (let i = pos; i < chunk.length; i++) {
      const b = chunk[i];
      if (b === LF || b === NUL) {
        end = i;
        break;
      }
    }
    if (end < 0) {
      if (this.held + chunk.length - pos > this.maxMessage) {
        this.sink.fault('oversize');
        this.release();
        this.skipToLf = true;
      } else this.hold(chunk, pos, chunk.length);
      return chunk.length;
    }
    if (this.held + end - pos > this.maxMessage) {
      this.release();
      this.sink.fault('oversize');
      return end + 1;
    }
    // Keep the delimiter in the slice so trimFrame also drops a CR before it.
    const msg = trimFrame(this.take(chunk, pos, end + 1));
    if (msg.length > 0) this.sink.frame(msg);
    return end + 1;
  }

  private pushOctet(chunk: Buffer, pos: number): number {
    if (this.want < 0) {
      // Reading the count: digits up to a space.
      let i = pos;
      while (i < chunk.length && isDigit(chunk[i]!) && this.held + (i - pos) <= MAX_COUNT_DIGITS) i++;
      if (i === chunk.length && this.held + (i - pos) <= MAX_COUNT_DIGITS) {
        this.hold(chunk, pos, i);
        return i;
      }
      const digits = this.take(chunk, pos, i).toString('latin1');
      const n = digits.length > 0 && digits.length <= MAX_COUNT_DIGITS ? Number(digits) : NaN;
      if (chunk[i] !== SP || !(n > 0) || digits[0] === '0') {
        if (this.probing) {
          // First frame is not octet-counted after all: an LF stream whose line starts with digits.
          this.probing = false;
          this.mode = 'lf';
          this.hold(Buffer.from(digits, 'latin1'), 0, digits.length);
          return i;
        }
        // Not "<digits> ": a broken or hostile sender. Count it and resynchronise at the next LF.
        this.sink.fault('bad-octet-count');
        if (chunk[i] === LF) return i + 1;
        this.skipToLf = true;
        return i;
      }
      if (n > this.maxMessage) {
        this.probing = false;
        this.sink.fault('oversize');
        this.skip = n;
        return i + 1;
      }
      this.probing = false;
      this.want = n;
      return i + 1;
    }
    const avail = chunk.length - pos;
    if (avail < this.want) {
      this.hold(chunk, pos, chunk.length);
      this.want -= avail;
      return chunk.length;
    }
    const end = pos + this.want;
    this.want = -1;
    const msg = trimFrame(this.take(chunk, pos, end));
    if (msg.length > 0) this.sink.frame(msg);
    return end;
  }
}
