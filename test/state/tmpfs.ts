// A small real file system to fill up: a tmpfs mount (root only) for full-disk tests.
import type { TestContext } from 'node:test';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** Mounts a tmpfs of `size` and returns its directory, or skips the test (loudly) when it cannot. */
export function mountTmpfs(t: TestContext, size: string, at?: string): string | undefined {
  if (process.getuid?.() !== 0) {
    const why = 'needs root to mount a tmpfs: the full-disk test did NOT run';
    console.error(`SKIP ${t.name}: ${why}`);
    t.skip(why);
    return undefined;
  }
  const dir = at ?? mkdtempSync(join(tmpdir(), 'mj-fulldisk-'));
  mkdirSync(dir, { recursive: true });
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
    return dir;
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    const why = `cannot mount a tmpfs (${(e as Error).message.split('\n')[0]}): the full-disk test did NOT run`;
    console.error(`SKIP ${t.name}: ${why}`);
    t.skip(why);
    return undefined;
  }
}

export function unmount(dir: string): void {
  try {
    execFileSync('umount', [dir], { stdio: 'pipe' });
  } catch {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
  }
  rmSync(dir, { recursive: true, force: true });
}

/** Writes a filler file until the file system says ENOSPC; returns its size. */
export function fill(path: string): number {
  const fd = openSync(path, 'w');
  const chunk = Buffer.alloc(65_536, 0x78);
  let size = 0;
  try {
    for (;;) {
      const n = writeSync(fd, chunk);
      size += n;
      if (n < chunk.length) writeSync(fd, chunk); // the rest: throws ENOSPC
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
  } finally {
    closeSync(fd);
  }
  return size;
}

