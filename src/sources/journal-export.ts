// Binary-safe streaming parser for the Journal Export Format (`journalctl -o export`):
// entries are runs of `KEY=value\n` lines ended by an empty line; a value that is binary or holds
// a newline is sent as `KEY\n` + 64-bit little-endian length + raw bytes + `\n`. Chunks may split
// anywhere (also inside a UTF-8 sequence or the length): bytes are only decoded once a whole
// field is in hand. Only the wanted fields are decoded.
import type { JournalFields } from '../types.js';

const LF = 0x0a;
const EQ = 0x3d;

export class ExportParser {
  private buf: Buffer = Buffer.alloc(0);
  private entry: Record<string, string> = {};
  private fieldCount = 0;
  private readonly want: ReadonlySet<string>;

  constructor(
    fields: Iterable<string>,
    private readonly onEntry: (f: JournalFields) => void,
    /** Largest field accepted (binary length prefix); bigger ones are skipped. */
    private readonly maxField = 1 << 20,
  ) {
    this.want = new Set(fields);
  }

  push(chunk: Buffer): void {
    const b = this.buf.length === 0 ? chunk : Buffer.concat([this.buf, chunk]);
    let pos = 0;
    const n = b.length;
    while (pos < n) {
      const lf = b.indexOf(LF, pos);
      if (lf < 0) break;
      if (lf === pos) {
        // Empty line: end of entry.
        if (this.fieldCount > 0) this.onEntry(this.entry);
        this.entry = {};
        this.fieldCount = 0;
        pos = lf + 1;
        continue;
      }
      const eq = b.indexOf(EQ, pos);
      if (eq >= 0 && eq < lf) {
        this.fieldCount++;
        const key = b.toString('latin1', pos, eq);
        if (this.want.has(key)) this.entry[key] = b.toString('utf8', eq + 1, lf);
        pos = lf + 1;
        continue;
      }
      // Binary field: KEY\n<u64 le length><data>\n
      if (lf + 9 > n) break;
      const len = Number(b.readBigUInt64LE(lf + 1));
      const start = lf + 9;
      if (len > this.maxField) {
        // Cannot hold it; not expected from journalctl (fields are capped well below this).
        throw new Error(`journal export field of ${len} bytes`);
      }
      if (start + len + 1 > n) break;
      this.fieldCount++;
      const key = b.toString('latin1', pos, lf);
      if (this.want.has(key)) this.entry[key] = b.toString('utf8', start, start + len);
      pos = start + len + 1;
    }
    this.buf = pos >= n ? Buffer.alloc(0) : Buffer.from(b.subarray(pos));
  }

  /** Flushes an entry not followed by an empty line (end of stream). */
  end(): void {
    if (this.fieldCount > 0) this.onEntry(this.entry);
    this.entry = {};
    this.fieldCount = 0;
  }
}
