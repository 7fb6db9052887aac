// Phase 2: `mailjail run` as a real process in the mail server's namespace, following the lab's
// journal (journald source) and banning with the ipset backend. Fresh attackers attack until they
// are banned; the suite checks the ban comes after exactly maxretry attempts, that the attacker's
// next connection to 25/587/143/110 is dropped, that no benign client is banned, that the IPv6
// rotator is banned as one /64, and that `mailjail unban` and ban expiry restore access.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { keyFor } from './analyse.js';
import type { Lab } from './lab.js';
import { SRV4, SRV6, USERS } from './lab.js';
import { run, sleep, waitFor } from './proc.js';
import { clientJob, runStep } from './scenario.js';
import type { Actor, Step, StepResult } from './scenario.js';

const CLI = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
export const P2_MAXRETRY = 3;
// Long enough that no ban made during phase 2 or the syslog pass can expire before the suite reads
// `mailjail bans --json` (on a loaded 2-core CI machine phase 2 took over 40 s, the old bantime).
// Expiry is asserted separately, on an operator ban of P2_EXPIRY_S, by waiting for it.
export const P2_BANTIME_S = 900;
export const P2_EXPIRY_S = 20;
const FW_PREFIX = 'mjacc';
const PORTS = [25, 587, 143, 110] as const;

const wrong = (user: string, n: number) => ({ user, pass: `wrong-${n}` });
const ghost = (n: number) => ({ user: `ghost${n}@mx.test`, pass: `guess-${n}` });

/**
 * Rotator addresses for phase 2 and one it never uses. Not near phase 1's /64: Dovecot's auth
 * penalty was seen to carry over to a neighbouring /64 of the same /48, and phase 1's failures
 * would then push the SMTP attempts into the Postfix auth timeout (the known gap).
 */
export const ROT2_NET = '2001:db8:bad2::/64';
const ROT2 = ['2001:db8:bad2::100', '2001:db8:bad2::101', '2001:db8:bad2::102', '2001:db8:bad2::103', '2001:db8:bad2::104'];
const ROT2_UNUSED = '2001:db8:bad2::dead';

/** Attackers that keep trying until they are blocked (at most maxretry + 2 attempts). */
export function phase2Attackers(pass: 'journal' | 'syslog' = 'journal'): Actor[] {
  const n = P2_MAXRETRY + 2;
  const r = Array.from({ length: n }, (_, i) => i);
  if (pass === 'syslog') {
    // The syslog pass: fresh addresses (Dovecot's penalty remembers the journal pass's attackers).
    return [
      { name: 'p3-smtp587-plain', role: 'attacker', addrs: ['198.51.100.40'], pauseMs: 0, steps: r.map((i): Step => ({ proto: 'smtp', port: 587, mech: 'PLAIN', logins: [wrong('carol@mx.test', i)] })) },
      { name: 'p3-imap', role: 'attacker', addrs: ['203.0.113.40'], pauseMs: 0, steps: r.map((i): Step => ({ proto: 'imap', port: 143, logins: [ghost(i)] })) },
      { name: 'p3-pop3', role: 'attacker', addrs: ['203.0.113.41'], pauseMs: 0, steps: r.map((i): Step => ({ proto: 'pop3', port: 110, logins: [wrong('alice@mx.test', i)] })) },
      { name: 'p3-ipv6-rotator', role: 'attacker', addrs: [...ROT3, ROT3_UNUSED], pauseMs: 0,
        steps: r.map((i): Step => (i % 2 ? { proto: 'pop3', port: 110, logins: [ghost(i)], src: ROT3[i]! } : { proto: 'smtp', port: 25, mech: 'PLAIN', logins: [ghost(i)], src: ROT3[i]! })) },
    ];
  }
  return [
    { name: 'p2-smtp587-plain', role: 'attacker', addrs: ['198.51.100.20'], pauseMs: 0, steps: r.map((i): Step => ({ proto: 'smtp', port: 587, mech: 'PLAIN', logins: [wrong('alice@mx.test', i)] })) },
    { name: 'p2-smtp25-login', role: 'attacker', addrs: ['198.51.100.21'], pauseMs: 0, steps: r.map((i): Step => ({ proto: 'smtp', port: 25, mech: 'LOGIN', logins: [ghost(i)] })) },
    { name: 'p2-imap', role: 'attacker', addrs: ['203.0.113.20'], pauseMs: 0, steps: r.map((i): Step => ({ proto: 'imap', port: 143, logins: [i % 2 ? ghost(i) : wrong('bob@mx.test', i)] })) },
    { name: 'p2-pop3', role: 'attacker', addrs: ['203.0.113.21'], pauseMs: 0, steps: r.map((i): Step => ({ proto: 'pop3', port: 110, logins: [ghost(i)] })) },
    { name: 'p2-ipv6-rotator', role: 'attacker', addrs: [...ROT2, ROT2_UNUSED], pauseMs: 0,
      steps: r.map((i): Step => (i % 2 ? { proto: 'imap', port: 143, logins: [ghost(i)], src: ROT2[i]! } : { proto: 'smtp', port: 587, mech: 'LOGIN', logins: [ghost(i)], src: ROT2[i]! })) },
  ];
}

export const ROT3_NET = '2001:db8:bad3::/64';
const ROT3 = ['2001:db8:bad3::100', '2001:db8:bad3::101', '2001:db8:bad3::102', '2001:db8:bad3::103', '2001:db8:bad3::104'];
const ROT3_UNUSED = '2001:db8:bad3::dead';

export interface AttackRow { name: string; key: string; made: number; bannedAt: number | undefined; blocked: Record<number, string>; last: string }

export class Daemon {
  private child: ChildProcess | undefined;
  out = '';
  readonly sock: string;
  readonly cfg: string;
  private readonly name: string;
  readonly prefix: string;
  readonly backend: 'ipset' | 'nftables';
  readonly ports: readonly number[];
  /**
   * `own`: another daemon beside these — its own name, firewall prefix, and optionally another
   * backend and port list (the TLS pass: nftables, every mail port) and a metrics listener.
   */
  constructor(private readonly lab: Lab, private readonly source: 'journal' | { readonly tcp: string } = 'journal',
    private readonly own?: {
      readonly name?: string; readonly prefix: string; readonly backend?: 'ipset' | 'nftables';
      readonly ports?: readonly number[]; readonly metrics?: string;
    }) {
    this.name = own?.name ?? (own ? `mailjail-${own.prefix}` : source === 'journal' ? 'mailjail' : 'mailjail-collector');
    this.prefix = own?.prefix ?? (source === 'journal' ? FW_PREFIX : `${FW_PREFIX}c`);
    this.backend = own?.backend ?? 'ipset';
    this.ports = own?.ports ?? PORTS;
    this.sock = join(lab.dir, this.name, 'control.sock');
    this.cfg = join(lab.dir, this.name, 'mailjail.yaml');
  }

  /** Stops the daemon (SIGTERM, orderly); its bans stay in the kernel until they expire. */
  async stop(): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null) return;
    c.kill('SIGTERM');
    if (!(await waitFor(() => (c.exitCode !== null ? true : undefined), 8000))) c.kill('SIGKILL');
  }

  async start(rulesDir: string | undefined): Promise<void> {
    const d = join(this.lab.dir, this.name);
    const src = this.source === 'journal'
      ? `journal: { type: journald, directory: ${JSON.stringify(this.lab.journalDir)}, lookback: 1s }`
      : `collector: { type: syslog-tcp, listen: ${JSON.stringify(this.source.tcp)}, allow: [127.0.0.1/32] }`;
    await run(['mkdir', '-p', join(d, 'state')]);
    writeFileSync(this.cfg, `# mailjail acceptance: the lab's journal, ipset bans in the mail server's namespace
logLevel: info
${rulesDir ? `rules: { dir: ${JSON.stringify(rulesDir)} }\n` : ''}state: { dir: ${JSON.stringify(join(d, 'state'))} }
sources:
  ${src}
policies:
  auth: { classes: [auth], maxretry: ${P2_MAXRETRY}, findtime: 10m, bantime: ${P2_BANTIME_S}s, ipv4Prefix: 32, ipv6Prefix: 64 }
firewall: { backend: ${this.backend}, prefix: ${this.prefix}, ports: [${this.ports.join(', ')}] }
metrics: ${this.own?.metrics ? `{ enabled: true, listen: ${JSON.stringify(this.own.metrics)} }` : '{ enabled: false }'}
control: { socket: ${JSON.stringify(this.sock)} }
`);
    const c = spawn('ip', ['netns', 'exec', this.lab.srv, process.execPath, CLI, 'run', '-c', this.cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
    this.child = c;
    c.stdout!.on('data', (b: Buffer) => { this.out += b.toString(); });
    c.stderr!.on('data', (b: Buffer) => { this.out += b.toString(); });
    this.lab.cleanup.add(`stop ${this.name} run`, async () => {
      if (c.exitCode !== null) return;
      c.kill('SIGTERM');
      if (!(await waitFor(() => (c.exitCode !== null ? true : undefined), 8000))) c.kill('SIGKILL');
    });
    // The firewall objects live in the srv namespace, which is deleted at the end; purge anyway.
    const ready = await waitFor(() => (/"msg":"ready"/.test(this.out) ? true : c.exitCode !== null ? false : undefined), 20_000);
    if (ready !== true) throw new Error(`mailjail run did not become ready (exit ${c.exitCode}):\n${this.out.slice(-2000)}`);
  }

  cli(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return run([process.execPath, CLI, ...args, '--socket', this.sock], { timeoutMs: 20_000 });
  }

  /** Whether the kernel set holds `addr` (an address, or any address inside a banned prefix). */
  async inSet(addr: string): Promise<boolean> {
    if (this.backend === 'nftables') {
      // One set per prefix length (docs/firewall.md); an interval set answers for any address inside.
      const sets = addr.includes(':') ? ['v6', 'v6n64', 'v6n48'] : ['v4', 'v4n24'];
      for (const set of sets) {
        const r = await run(['ip', 'netns', 'exec', this.lab.srv, 'nft', 'get', 'element', 'inet', this.prefix, set, `{ ${addr} }`]);
        if (r.code === 0) return true;
      }
      return false;
    }
    const set = `${this.prefix}-${addr.includes(':') ? 'v6' : 'v4'}`;
    const r = await run(['ip', 'netns', 'exec', this.lab.srv, 'ipset', 'test', set, addr]);
    return r.code === 0;
  }

  async setEntries(): Promise<string> {
    if (this.backend === 'nftables') {
      const r = await run(['ip', 'netns', 'exec', this.lab.srv, 'nft', 'list', 'table', 'inet', this.prefix]);
      return [...r.stdout.matchAll(/elements = \{([^}]*)\}/g)].map((m) => m[1]!.replace(/\s+/g, ' ').trim()).join('; ');
    }
    const v4 = await run(['ip', 'netns', 'exec', this.lab.srv, 'ipset', 'list', `${this.prefix}-v4`]);
    const v6 = await run(['ip', 'netns', 'exec', this.lab.srv, 'ipset', 'list', `${this.prefix}-v6`]);
    const members = (s: string) => s.split('Members:')[1]?.trim().split('\n').filter(Boolean) ?? [];
    return [...members(v4.stdout), ...members(v6.stdout)].join('; ');
  }

  exited(): boolean { return this.child?.exitCode !== null && this.child?.exitCode !== undefined; }
}

export function journalDirOk(lab: Lab): boolean {
  return existsSync(lab.journalDir);
}

/** Connects from `src` (in namespace `ns`) to each protected port: "open", "timeout" (dropped), ... */
export async function probeAll(ns: string, src: string, ports: readonly number[] = PORTS): Promise<Record<number, string>> {
  const host = src.includes(':') ? SRV6 : SRV4;
  const out: Record<number, string> = {};
  await Promise.all(ports.map(async (p) => {
    const r = await clientJob(ns, { proto: 'probe', host, port: p, local: src, connectMs: 2500 }, 20_000);
    out[p] = r.connect;
  }));
  return out;
}

/**
 * One attacker: attempts until banned. A watcher polls the kernel set all along; after each
 * attempt the attacker waits a moment for a ban (longer once it reached maxretry) before trying
 * again, so "banned at attempt N" = the number of attempts it had started when the ban appeared.
 * (The ban usually lands while the attempt that triggered it is still closing its connection.)
 */
export async function attackUntilBanned(lab: Lab, d: Daemon, a: Actor): Promise<AttackRow & { results: StepResult[] }> {
  const key = keyFor(a.addrs[0]!);
  const results: StepResult[] = [];
  let started = 0;
  let made = 0;
  let bannedAt: number | undefined;
  let last = a.addrs[0]!;
  let stop = false;
  const watcher = (async () => {
    while (!stop && bannedAt === undefined) {
      if (await d.inSet(last)) bannedAt = started;
      else await sleep(150);
    }
  })();
  try {
    for (const step of a.steps) {
      if (bannedAt !== undefined) break;
      last = step.src ?? a.addrs[0]!;
      started++;
      const r = await runStep(lab, a, step, 15);
      if (process.env['MJ_ACCEPT_DEBUG_DIR']) process.stderr.write(`${new Date().toISOString()} ${a.name} ${r.src} ${step.proto}:${step.port} → ${r.results.join(',')} ${r.detail ?? ''}\n`);
      results.push(r);
      made += r.results.filter((v) => v === 'fail').length;
      await waitFor(() => (bannedAt !== undefined ? true : undefined), started >= P2_MAXRETRY ? 10_000 : 2500, 100);
    }
  } finally {
    stop = true;
    await watcher;
  }
  // The next connection, from a fresh address of the /64 for the rotator.
  // (Rotators list an address they never use last.)
  const probeSrc = a.addrs.length > 1 && !a.steps.some((s) => s.src === a.addrs.at(-1)) ? a.addrs.at(-1)! : last;
  const blocked = await probeAll(lab.clients.get(a.name)!.ns, probeSrc, d.ports);
  return { name: a.name, key, made: Math.max(made, started), bannedAt, blocked, last: probeSrc, results };
}

export { USERS, sleep };
