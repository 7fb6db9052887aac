// The journald cursor on disk: one line in <stateDir>/<file>, replaced atomically (write a temp
// file, fsync, rename, fsync the directory) so a crash leaves either the old or the new cursor.
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { MailjailError } from '../types.js';
import { replaceFileDurably } from '../lib/durable-file.js';

export class CursorStore {
  readonly path: string;
  constructor(private readonly dir: string, file: string) {
    this.path = join(dir, file);
  }

  load(): string | undefined {
    try {
      const s = readFileSync(this.path, 'utf8').trim();
      return s.length > 0 ? s : undefined;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw new MailjailError('MJ_JOURNAL_CURSOR', `cannot read ${this.path}`, { cause: e });
    }
  }

  save(cursor: string): void {
    try {
      mkdirSync(this.dir, { recursive: true, mode: 0o750 });
      replaceFileDurably(this.path, `${cursor}\n`, 0o640);
    } catch (e) {
      throw new MailjailError('MJ_JOURNAL_CURSOR', `cannot write ${this.path}`, { cause: e });
    }
  }
}
