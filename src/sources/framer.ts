// TCP syslog framing (RFC 6587): octet-counting ("<len> <msg>") or LF-delimited, chosen once per
// connection from its first frame: digits then a space mean octet counting (a syslog message
// itself starts with "<"); anything else — also digits not followed by a space, as in a PRI-less
// line starting with an ISO date — means LF (NUL also ends a frame, as old syslog-ng senders use).
// Memory is bounded: at most `maxMessage` bytes of a frame are ever held; longer frames are
// counted and skipped without buffering them, and the connection lives on.

export type FrameFault = 'oversize' | 'bad-octet-count';

export interface FramerSink {
  frame(msg: Buffer): void;
  fault(kind: FrameFault): void;
}

const LF = 0x0a;
const NUL = 0x00;
const SP = 0x20;
/** A length field longer than this cannot be a valid count below any sane max size. */
const MAX_COUNT_DIGITS = 10;

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
  /** Bytes held for the frame (or count prefix) being assembled. */
  private parts: Buffer[] = [];
  private held = 0;
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
  ) {}

  get framing(): 'unknown' | 'octet' | 'lf' {
    return this.mode;
  }

  push(chunk: Buffer): void {
    let pos = 0;
    const len = chunk.length;
    while (pos < len) {
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

  private take(chunk: Buffer, from: number, to: number): Buffer {
    if (this.held === 0) return chunk.subarray(from, to);
    this.parts.push(chunk.subarray(from, to));
    const all = Buffer.concat(this.parts, this.held + (to - from));
    this.parts = [];
    this.held = 0;
    return all;
  }

  private hold(chunk: Buffer, from: number, to: number): void {
    if (to > from) {
      // Copy: the chunk's memory is the socket's and may be large; keep only our part.
      this.parts.push(Buffer.from(chunk.subarray(from, to)));
      this.held += to - from;
    }
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
        this.parts = [];
        this.held = 0;
        this.skipToLf = true;
      } else this.hold(chunk, pos, chunk.length);
      return chunk.length;
    }
    if (this.held + end - pos > this.maxMessage) {
      this.parts = [];
      this.held = 0;
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
          this.parts = [Buffer.from(digits, 'latin1')];
          this.held = digits.length;
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
