// Replacing a small state file so that a crash at any moment leaves either the old or the new
// content, never a torn one: write a temporary file, fsync it, rename it over the old one, and
// fsync the directory so the rename itself survives a power cut. Shared by the journald cursor,
// the ban ledger's compaction and the cluster enforcer's position.
import { closeSync, fsyncSync, openSync, renameSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';

export function replaceFileDurably(path: string, text: string, mode: number): void {
  const tmp = `${path}.tmp`;
  const fd = openSync(tmp, 'w', mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, path);
  const dfd = openSync(dirname(path), 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
