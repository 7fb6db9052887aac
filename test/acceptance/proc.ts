// Child-process helpers for the acceptance suite: argv arrays only (never a shell over attacker
// text), a hard timeout on everything, and a cleanup stack that runs even when a step fails.
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';

export interface RunResult { readonly code: number | null; readonly stdout: string; readonly stderr: string; readonly timedOut: boolean }

/** Runs argv[0] with the rest as arguments; resolves with the exit code (never rejects on a non-zero exit). */
export function run(argv: readonly string[], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<RunResult> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('run: empty argv');
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['pipe', 'pipe', 'pipe'], env: opts.env ?? process.env });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d; });
    const timer = setTimeout(() => { timedOut = true; child.kill('SIGKILL'); }, opts.timeoutMs ?? 60_000);
    child.on('error', (e) => { clearTimeout(timer); resolve({ code: 127, stdout, stderr: stderr + String(e), timedOut }); });
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr, timedOut }); });
    child.stdin.on('error', () => { /* child closed its stdin early */ });
    child.stdin.end(opts.input ?? '');
  });
}

/**
 * Starts a command that daemonizes (postfix start, dovecot): its output goes to `logFile`, not to
 * pipes, because the daemon would inherit the pipes and keep them open forever. Throws on a
 * non-zero exit with the log's tail.
 */
export function startDaemon(argv: readonly string[], logFile: string, timeoutMs = 60_000): Promise<void> {
  const [cmd, ...args] = argv;
  if (cmd === undefined) throw new Error('startDaemon: empty argv');
  const fd = openSync(logFile, 'a');
  return new Promise<void>((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => { clearTimeout(timer); reject(e); });
    child.on('exit', (code) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`${argv.join(' ')} → exit ${code}: ${readFileSync(logFile, 'utf8').slice(-600)}`));
    });
  });
}

/** Like run, but throws (with the command and its stderr) unless the exit code is 0. */
export async function must(argv: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) throw new Error(`${argv.join(' ')} → exit ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.trim() || r.stdout.trim()}`);
  return r.stdout;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `probe` until it returns a value other than undefined, or gives up after `ms`. */
export async function waitFor<T>(probe: () => T | undefined | Promise<T | undefined>, ms: number, every = 100): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() >= end) return undefined;
    await sleep(every);
  }
}

/** LIFO stack of undo steps; `runAll` runs every step even when some fail and returns the failures. */
export class Cleanup {
  private readonly steps: { what: string; fn: () => unknown }[] = [];
  add(what: string, fn: () => unknown): void { this.steps.push({ what, fn }); }
  async runAll(): Promise<string[]> {
    const errors: string[] = [];
    while (this.steps.length) {
      const s = this.steps.pop()!;
      try { await s.fn(); } catch (e) { errors.push(`${s.what}: ${(e as Error).message}`); }
    }
    return errors;
  }
}
