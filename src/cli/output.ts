// Small terminal-output helpers shared by CLI commands.

/** Collects writes into large chunks: one write per matched line would cost more than the matching. */
export class BufferedOut {
  private buf: string[] = [];
  private size = 0;
  constructor(private readonly out: NodeJS.WritableStream) {}

  write(s: string): void {
    this.buf.push(s);
    this.size += s.length;
    if (this.size > 1 << 16) this.flush();
  }

  private flush(): void {
    if (this.buf.length) this.out.write(this.buf.join(''));
    this.buf = [];
    this.size = 0;
  }

  /** Flushes and waits until the stream has taken everything. */
  async end(): Promise<void> {
    this.flush();
    await new Promise<void>((resolve) => {
      if (this.out.write('')) resolve();
      else this.out.once('drain', () => resolve());
    });
  }
}

export const fmtInt = (n: number): string => n.toLocaleString('en-US');

/** Left-aligned columns (numbers right-aligned), indented by two spaces. */
export function table(head: readonly string[], rows: readonly (readonly string[])[]): string[] {
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const isNum = head.map((_, i) => rows.length > 0 && rows.every((r) => /^[\d,]+$/.test(r[i] ?? '')));
  const fmt = (r: readonly string[]): string =>
    `  ${r.map((c, i) => (isNum[i] ? c.padStart(width[i]!) : c.padEnd(width[i]!))).join('  ')}`.trimEnd();
  return [fmt(head), ...rows.map(fmt)];
}

/** "1 line", "2 lines", "1,000 addresses": a count with its noun in the right number. */
export const count = (n: number, one: string, many = `${one}s`): string => `${fmtInt(n)} ${n === 1 ? one : many}`;
