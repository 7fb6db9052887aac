// Shared helpers for the sources tests: collecting records, a throwaway CA, waiting on binaries.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RawRecord, Source } from '../../src/types.js';
import { waitFor } from '../helpers/wait.js';

const tempDirs: string[] = [];
process.once('exit', () => {
  for (const d of tempDirs) rmSync(d, { recursive: true, force: true });
});

/** A temp dir removed when the test process exits. */
export function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  tempDirs.push(d);
  return d;
}

export function which(bin: string): string | undefined {
  for (const dir of ['/usr/sbin', '/usr/bin', '/sbin', '/bin', '/lib/systemd', '/usr/lib/systemd']) {
    const p = join(dir, bin);
    if (existsSync(p)) return p;
  }
  return undefined;
}

export const isRoot = (): boolean => process.getuid?.() === 0;

/** Runs a source until `until(records)` holds, `stop` settles or `timeoutMs` passes; then aborts it. */
export async function collect(
  src: Source,
  until: (all: readonly RawRecord[]) => boolean,
  timeoutMs = 5000,
  onBatch?: (b: readonly RawRecord[]) => void,
  stop?: Promise<unknown>,
): Promise<RawRecord[]> {
  const ac = new AbortController();
  const all: RawRecord[] = [];
  const timer = setTimeout(() => ac.abort(), timeoutMs);
  stop?.then(() => ac.abort(), () => ac.abort());
  try {
    for await (const b of src.records(ac.signal)) {
      all.push(...b);
      onBatch?.(b);
      if (until(all)) break;
    }
  } finally {
    clearTimeout(timer);
    ac.abort();
  }
  return all;
}

export const texts = (rs: readonly RawRecord[]): string[] => rs.map((r) => (r.kind === 'line' ? r.text : r.fields.MESSAGE ?? ''));

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface TestPki {
  dir: string;
  ca: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
  /** A client cert from a CA the server does not trust. */
  rogueCert: string;
  rogueKey: string;
}

/** A test CA with a server cert for localhost/127.0.0.1/::1 and a client cert, made by openssl. */
export function makePki(): TestPki {
  const dir = tempDir('mj-pki-');
  const p = (f: string): string => join(dir, f);
  const ossl = (...args: string[]): void => {
    execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  };
  const mkCa = (name: string): void => {
    ossl('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2', '-subj', `/CN=${name}`,
      '-keyout', p(`${name}.key`), '-out', p(`${name}.pem`));
  };
  const mkLeaf = (name: string, ca: string, ext: string): void => {
    writeFileSync(p(`${name}.ext`), ext);
    ossl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-subj', `/CN=${name === 'server' ? 'localhost' : name}`,
      '-keyout', p(`${name}.key`), '-out', p(`${name}.csr`));
    ossl('x509', '-req', '-in', p(`${name}.csr`), '-CA', p(`${ca}.pem`), '-CAkey', p(`${ca}.key`),
      '-CAcreateserial', '-days', '2', '-extfile', p(`${name}.ext`), '-out', p(`${name}.pem`));
  };
  mkCa('ca');
  mkCa('rogueca');
  mkLeaf('server', 'ca', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nextendedKeyUsage=serverAuth\n');
  mkLeaf('client', 'ca', 'subjectAltName=DNS:mx1.example.test\nextendedKeyUsage=clientAuth\n');
  mkLeaf('rogue', 'rogueca', 'subjectAltName=DNS:rogue.example.test\nextendedKeyUsage=clientAuth\n');
  return {
    dir, ca: p('ca.pem'), serverCert: p('server.pem'), serverKey: p('server.key'),
    clientCert: p('client.pem'), clientKey: p('client.key'), rogueCert: p('rogue.pem'), rogueKey: p('rogue.key'),
  };
}

export interface JournaldHandle {
  /** Why live-journald tests must skip, if they must. */
  readonly reason?: string;
  /** True when this process started journald (so it may rotate/vacuum it, and stops it). */
  readonly ours: boolean;
  stop(): void;
}

/**
 * Makes sure a systemd-journald runs (starts /lib/systemd/systemd-journald when none does; it runs
 * without systemd as PID 1). Ready once an entry written with systemd-cat reads back: a stale
 * socket file from an earlier run proves nothing.
 */
export async function ensureJournald(): Promise<JournaldHandle> {
  const none = { ours: false, stop: () => {} };
  const jd = which('systemd-journald');
  const cat = which('systemd-cat');
  if (!isRoot()) return { ...none, reason: 'not root' };
  if (!jd || !cat) return { ...none, reason: `${!jd ? 'systemd-journald' : 'systemd-cat'} not installed (package systemd)` };
  const probe = `mjprobe${process.pid}x${Math.random().toString(36).slice(2, 7)}`;
  const write = (): boolean => spawnSync(cat, ['-t', probe], { input: 'probe\n' }).status === 0;
  const readBack = (): boolean =>
    (spawnSync('journalctl', ['-q', '-t', probe, '-o', 'cat', '--no-pager']).stdout?.toString() ?? '').includes('probe');
  // Reading back is asynchronous (and slow on a loaded machine): wait for it with a deadline.
  const works = async (timeoutMs: number, sent = false): Promise<boolean> => {
    try {
      await waitFor(() => (sent ||= write()) && readBack(), { timeoutMs, intervalMs: 50, what: 'a probe entry to read back from journald' });
      return true;
    } catch {
      return false;
    }
  };
  // (pgrep would be fooled by journald namespace instances: ask the default socket itself.)
  if (write() && (await works(10_000, true))) return none;
  const daemon: ChildProcess = spawn(jd, [], { stdio: 'ignore' });
  if (await works(15_000)) return { ours: true, stop: () => { if (daemon.exitCode === null) daemon.kill('SIGTERM'); } };
  if (daemon.exitCode === null) daemon.kill('SIGTERM');
  return { ...none, reason: `systemd-journald (${jd}) started by this test did not store a probe entry within 15 s` };
}
