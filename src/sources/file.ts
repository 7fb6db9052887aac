// A finite source: a log file or stdin, read in large chunks and cut into lines (no readline:
// it costs more than the whole rule engine). Replay is just this source with the event-time clock.
import { createReadStream } from 'node:fs';
import type { Readable } from 'node:stream';
import { StringDecoder } from 'node:string_decoder';
import type { Origin, RawRecord, Source } from '../types.js';

export interface FileSourceOptions {
  /** Lines longer than this are skipped and counted (default 64 KiB). */
  readonly maxLine?: number;
  /** Chunk size for reads (default 1 MiB). */
  readonly chunk?: number;
}

export interface FileSourceStats {
  lines: number;
  bytes: number;
  /** Lines skipped for being longer than maxLine. */
  oversize: number;
}

export class FileSource implements Source {
  readonly name: string;
  readonly stats: FileSourceStats = { lines: 0, bytes: 0, oversize: 0 };
  private readonly maxLine: number;
  private readonly chunk: number;

  /** `path` "-" reads stdin. */
  constructor(private readonly path: string, opts: FileSourceOptions = {}, private readonly stdin: Readable = process.stdin) {
    this.name = path === '-' ? 'stdin' : path;
    this.maxLine = opts.maxLine ?? 64 * 1024;
    this.chunk = opts.chunk ?? 1 << 20;
  }

  async *records(signal: AbortSignal): AsyncIterable<readonly RawRecord[]> {
    const stream: Readable = this.path === '-' ? this.stdin : createReadStream(this.path, { highWaterMark: this.chunk });
    const kind: Origin['kind'] = this.path === '-' ? 'stdin' : 'file';
    const decoder = new StringDecoder('utf8');
    let carry = '';
    let skipping = false; // inside an over-long line: drop text up to the next newline
    let lineNo = 0;
    const stats = this.stats;
    const rec = (text: string): RawRecord => ({ kind: 'line', text, origin: { kind, name: this.name, line: lineNo } });
    try {
      for await (const buf of stream) {
        if (signal.aborted) return;
        const b = buf as Buffer;
        stats.bytes += b.length;
        const text = carry + decoder.write(b);
        const batch: RawRecord[] = [];
        let start = 0;
        for (let nl = text.indexOf('\n'); nl >= 0; nl = text.indexOf('\n', start)) {
          lineNo++;
          stats.lines++;
          if (skipping || nl - start > this.maxLine) {
            stats.oversize++;
            skipping = false;
          } else {
            const end = nl > start && text.charCodeAt(nl - 1) === 13 ? nl - 1 : nl;
            if (end > start) batch.push(rec(text.slice(start, end)));
          }
          start = nl + 1;
        }
        carry = text.slice(start);
        if (carry.length > this.maxLine) {
          skipping = true;
          carry = '';
        }
        if (batch.length) yield batch;
      }
      const last = carry + decoder.end();
      if (last.length > 0 || skipping) {
        lineNo++;
        stats.lines++;
        if (skipping || last.length > this.maxLine) stats.oversize++;
        else yield [rec(last.endsWith('\r') ? last.slice(0, -1) : last)];
      }
    } finally {
      if (this.path !== '-') stream.destroy();
    }
  }
}
