// Test helpers: throw-away network namespaces (so tests never touch the host's firewall) and the
// checks that decide whether a kernel test can run here at all.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';

/** Why a kernel test cannot run here (not root, a binary missing, netns unsupported), or undefined. */
export function kernelSkipReason(tools: readonly string[]): string | undefined {
  if (typeof process.getuid === 'function' && process.getuid() !== 0) return 'needs root (creates network namespaces and firewall rules)';
  for (const t of ['ip', ...tools]) {
    const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', t], { encoding: 'utf8' });
    if (r.status !== 0) return `binary ${t} not found in PATH`;
  }
  const ns = `mjtest-probe-${randomBytes(3).toString('hex')}`;
  const r = spawnSync('ip', ['netns', 'add', ns], { encoding: 'utf8' });
  if (r.status !== 0) return `cannot create a network namespace: ${r.stderr.trim()}`;
  spawnSync('ip', ['netns', 'del', ns]);
  return undefined;
}

/** Creates `mjtest-<random>` with loopback up. */
export function addNetns(tag = ''): string {
  const ns = `mjtest-${tag}${randomBytes(4).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', ns]);
  try {
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  } catch (e) {
    delNetns(ns); // never leave a namespace behind when setting it up fails
    throw e;
  }
  return ns;
}

/** Creates one namespace per tag; when one fails, those already made are deleted before rethrowing. */
export function addNetnsAll<const T extends readonly string[]>(tags: T): { -readonly [K in keyof T]: string } {
  const made: string[] = [];
  try {
    for (const t of tags) made.push(addNetns(t));
  } catch (e) {
    for (const ns of made) delNetns(ns);
    throw e;
  }
  return made as { -readonly [K in keyof T]: string };
}

export function delNetns(ns: string): void {
  spawnSync('ip', ['netns', 'del', ns]);
}

/** Runs a command inside a namespace, synchronously; throws with stderr on failure. */
export function nsExec(ns: string, file: string, args: readonly string[], input?: string): string {
  return execFileSync('ip', ['netns', 'exec', ns, file, ...args], { encoding: 'utf8', input: input ?? '', stdio: ['pipe', 'pipe', 'pipe'] });
}

/** Runs fn with a fresh namespace that is deleted afterwards, even on failure. */
export async function withNetns<T>(fn: (ns: string) => Promise<T>, tag = ''): Promise<T> {
  const ns = addNetns(tag);
  try {
    return await fn(ns);
  } finally {
    delNetns(ns);
  }
}
