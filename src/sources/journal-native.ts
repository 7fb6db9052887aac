// Loads the optional sd-journal binding (build/sdjournal.node, built by native/build.mjs at
// `npm ci`). Absent or unloadable: undefined, and the journald source uses journalctl instead.
import { createRequire } from 'node:module';
import type { JournalFields } from '../types.js';

export type NativeHandle = { readonly __native: 'sd_journal' };

export interface NativeJournal {
  open(o: {
    directory?: string;
    files?: readonly string[];
    matches: readonly string[];
    fields: readonly string[];
    globs?: readonly string[];
    units?: readonly string[];
  }): NativeHandle;
  close(h: NativeHandle): void;
  seek(h: NativeHandle, where: 'head' | 'tail' | number): void;
  seekCursor(h: NativeHandle, cursor: string): boolean;
  read(h: NativeHandle, max: number): JournalFields[] & { more?: true };
  /** Cursor of the entry last read or skipped by the filter (undefined before any). */
  cursor(h: NativeHandle): string | undefined;
  wait(h: NativeHandle, timeoutMs: number): Promise<number>;
}

let cached: NativeJournal | null | undefined;
let loadError: string | undefined;

export function loadNativeJournal(): NativeJournal | undefined {
  if (cached !== undefined) return cached ?? undefined;
  const require = createRequire(import.meta.url);
  // dist/src/sources/ → repo root; src/sources/ when run from source.
  for (const rel of ['../../../build/sdjournal.node', '../../build/sdjournal.node']) {
    try {
      cached = require(rel) as NativeJournal;
      return cached;
    } catch (e) {
      loadError = (e as Error).message;
    }
  }
  cached = null;
  return undefined;
}

export const nativeLoadError = (): string | undefined => loadError;
