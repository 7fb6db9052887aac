// Replacing a small state file so that a crash at any moment leaves either the old or the new
// content, never a torn one: write a temporary file, fsync it, rename it over the old one, and
// fsync the directory so the rename itself survives a power cut. Shared by the journald cursor,
// the ban ledger's compaction and the cluster enforcer's position.
//
// A full disk must not turn this into a truncation: write(2) may write fewer bytes than asked
// (a nearly full file system does exactly that before it says ENOSPC), so every write loops until
// the last byte is written, and nothing is renamed unless the whole text is written and fsynced.
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { MailjailError } from '../types.js';

/**
 * Writes all of `buf` at the file's current position (or the end, for an O_APPEND fd). A short
 * write is continued; a write that makes no progress or fails (ENOSPC, EIO, EDQUOT) throws the
 * system error, with `bytesWritten` set to what did reach the file before it.
 */
export function writeAllSync(fd: number, buf: Uint8Array): void {
  let off = 0;
  while (off < buf.length) {
    let n: number;
    try {
      n = writeSync(fd, buf, off, buf.length - off);
    } catch (err) {
      (err as { bytesWritten?: number }).bytesWritten = off;
      throw err;
    }
    if (n <= 0) {
      // Not expected of a regular file, but never spin: report it like the kernel would.
      throw Object.assign(new Error(`write made no progress after ${off} of ${buf.length} bytes`), { code: 'ENOSPC', bytesWritten: off });
    }
    off += n;
  }
}

/**
 * Replaces `path` with `text`, durably. On any failure before the rename the old file is left
 * untouched, the temporary file is removed, and MailjailError(`code`) naming the path is thrown.
 * A failure after the rename (fsync of the directory) also throws: the new content is in place
 * then, which the caller can tell by the file's inode if it holds the old one open.
 */
export function replaceFileDurably(path: string, text: string, mode: number, code = 'MJ_FILE_WRITE'): void {
  const tmp = `${path}.tmp`;
  try {
    const fd = openSync(tmp, 'w', mode);
    try {
      writeAllSync(fd, Buffer.from(text, 'utf8'));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (err) {
    try { unlinkSync(tmp); } catch { /* never created, or already gone */ }
    throw new MailjailError(code, `cannot replace ${path} (the old content is kept): ${(err as Error).message}`, { cause: err });
  }
  try {
    const dfd = openSync(dirname(path), 'r');
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch (err) {
    throw new MailjailError(code, `replaced ${path} but could not sync its directory: ${(err as Error).message}`, { cause: err });
  }
}
