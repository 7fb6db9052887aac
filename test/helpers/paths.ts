// Paths tests and benchmarks find relative to the repository, never absolute (a fresh clone may
// live anywhere). The log generator lives beside the repository, in ../shared/bench/.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository root (this file runs from dist/test/helpers/). */
export const REPO_ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The mail log generator (`gen-maillog.mjs`): `<repo>/../shared/bench/gen-maillog.mjs`. */
export const GEN_MAILLOG = fileURLToPath(new URL('../../../../shared/bench/gen-maillog.mjs', import.meta.url));

/** Why the generator cannot be used (naming the path looked at), or undefined. */
export function genMaillogMissing(): string | undefined {
  return existsSync(GEN_MAILLOG) ? undefined : `log generator not found at ${GEN_MAILLOG} (expected in ../shared/bench/ beside the repository)`;
}
