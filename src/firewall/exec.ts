// Runs firewall tools as child processes with argv arrays (never a shell) and turns every way
// they can fail into a MailjailError with a stable code naming the command and its stderr.
import { spawn } from 'node:child_process';
import { MailjailError } from '../types.js';

export interface ExecResult {
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `file args...`, feeding `input` on stdin. Rejects with a MailjailError (see classify). */
export type Runner = (file: string, args: readonly string[], input?: string) => Promise<ExecResult>;

export interface RunnerOptions {
  /** Run inside this network namespace via `ip netns exec`. */
  readonly netns?: string | undefined;
  readonly timeoutMs?: number;
  /** Called once per process started (for counters / benchmarks). */
  readonly onExec?: (file: string, args: readonly string[]) => void;
}

/** Error codes, stable for tests and admins. */
export const FW_CODES = {
  EXEC: 'MJ_FW_EXEC', // non-zero exit not otherwise classified
  MISSING: 'MJ_FW_MISSING', // binary not found
  KERNEL: 'MJ_FW_KERNEL', // kernel module / protocol support missing
  PERM: 'MJ_FW_PERM', // not permitted (not root / no CAP_NET_ADMIN)
  SET_FULL: 'MJ_FW_SET_FULL', // set reached maxelem
  SET_MISSING: 'MJ_FW_SET_MISSING', // our set / table vanished
  TIMEOUT: 'MJ_FW_TIMEOUT', // the command hung
  TARGET: 'MJ_FW_TARGET', // a target that is not a valid Ip/Cidr (never sent to a command)
  OVERLAP: 'MJ_FW_OVERLAP', // nftables refused a prefix overlapping one already banned
} as const;

/** Extra data carried by firewall errors. */
export class FirewallError extends MailjailError {
  constructor(
    code: string,
    message: string,
    readonly command: string,
    readonly stderr: string,
    options?: { cause?: unknown },
  ) {
    super(code, message, options);
  }
}

/** Picks a code from a failed command's stderr. Order matters: the most specific first. */
export function classify(stderr: string): string {
  const s = stderr.toLowerCase();
  if (s.includes('hash is full') || s.includes('set is full') || s.includes('no space left') || s.includes('too many open files')) return FW_CODES.SET_FULL;
  if (s.includes('set with the given name does not exist') || s.includes("doesn't exist") && s.includes('set')) return FW_CODES.SET_MISSING;
  if (s.includes('operation not permitted') || s.includes('permission denied') || s.includes('you must be root')) return FW_CODES.PERM;
  if (s.includes('conflicting intervals') || s.includes('interval overlaps')) return FW_CODES.OVERLAP;
  if (s.includes('kernel support protocol') || s.includes('cannot open session to kernel') || s.includes('module') ||
      s.includes('protocol not supported') || s.includes("can't initialize") || s.includes('operation not supported')) return FW_CODES.KERNEL;
  if (s.includes('no such file or directory') && (s.includes('table') || s.includes('set ') || s.includes('element') || s.includes('could not process rule'))) return FW_CODES.SET_MISSING;
  return FW_CODES.EXEC;
}

function describe(file: string, args: readonly string[]): string {
  return [file, ...args].join(' ');
}

const MAX_OUT = 64 * 1024 * 1024;
const MAX_ERR = 1024 * 1024;

/** The real runner: spawn with an argv array, stdin piped, stdout/stderr collected. */
export function makeRunner(opts: RunnerOptions = {}): Runner {
  const timeoutMs = opts.timeoutMs ?? 30_000;
  return (file, args, input) => {
    const [bin, argv] = opts.netns ? ['ip', ['netns', 'exec', opts.netns, file, ...args]] : [file, [...args]];
    const cmd = describe(file, args);
    opts.onExec?.(file, args);
    return new Promise<ExecResult>((resolve, reject) => {
      const child = spawn(bin, argv, { stdio: ['pipe', 'pipe', 'pipe'], shell: false, env: { ...process.env, LC_ALL: 'C' } });
      const out: Buffer[] = [];
      const err: Buffer[] = [];
      let outLen = 0;
      let errLen = 0;
      let timedOut = false;
      const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, timeoutMs);
      child.stdout.on('data', (b: Buffer) => { outLen += b.length; if (outLen <= MAX_OUT) out.push(b); });
      child.stderr.on('data', (b: Buffer) => { errLen += b.length; if (errLen <= MAX_ERR) err.push(b); });
      child.stdin.on('error', () => { /* EPIPE when the tool exits early: its exit code tells */ });
      child.on('error', (e: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        const code = e.code === 'ENOENT' ? FW_CODES.MISSING : e.code === 'EACCES' ? FW_CODES.PERM : FW_CODES.EXEC;
        reject(new FirewallError(code, `cannot run ${file}: ${e.message}`, cmd, '', { cause: e }));
      });
      child.on('close', (status, signal) => {
        clearTimeout(timer);
        const stdout = Buffer.concat(out).toString('utf8');
        const stderr = Buffer.concat(err).toString('utf8').trim();
        if (timedOut) return reject(new FirewallError(FW_CODES.TIMEOUT, `${cmd} did not finish within ${timeoutMs} ms`, cmd, stderr));
        if (status === 0) return resolve({ stdout, stderr });
        // `ip netns exec` reports a missing program itself, with exit code 255.
        const missing = opts.netns && /exec of "[^"]*" failed: No such file/.test(stderr);
        const code = missing ? FW_CODES.MISSING : classify(stderr);
        // nft echoes the failing line, which can hold thousands of addresses: keep messages short.
        const shown = stderr.length > 2000 ? `${stderr.slice(0, 2000)}... (${stderr.length} chars)` : stderr;
        reject(new FirewallError(code, `${cmd} failed (${signal ?? `exit ${String(status)}`}): ${shown || '(no stderr)'}`, cmd, stderr));
      });
      child.stdin.end(input ?? '');
    });
  };
}

/** Code of an error if it is a MailjailError, else undefined. */
export function codeOf(e: unknown): string | undefined {
  return e instanceof MailjailError ? e.code : undefined;
}
