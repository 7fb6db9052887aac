// Who does what in the lab: attackers (failed SMTP AUTH LOGIN/PLAIN, IMAP LOGIN, POP3 USER/PASS
// with unknown users and wrong passwords, at different rates, one rotating inside an IPv6 /64) and
// benign clients (successful logins and deliveries, one who mistypes once, neighbours of attackers).
import { fileURLToPath } from 'node:url';
import type { ClientJob, ClientResult } from './client.js';
import type { Lab } from './lab.js';
import { SRV4, SRV6, USERS } from './lab.js';
import { run, sleep } from './proc.js';

const CLIENT_JS = fileURLToPath(new URL('./client.js', import.meta.url));

export type Verdict = 'ok' | 'fail' | 'error';
export interface Login { readonly user: string; readonly pass: string }

/** One connection. SMTP: at most one AUTH (swaks), optional delivery. IMAP/POP3: one attempt per login. */
export interface Step {
  readonly proto: 'smtp' | 'imap' | 'pop3' | 'sieve';
  readonly port: number;
  /** TLS from the first byte (465, 993, 995) or after STARTTLS (587, 143, 110, 4190). */
  readonly tls?: 'implicit' | 'starttls';
  /** Verify the lab's self-signed certificate: the handshake fails (a client that does not trust it). */
  readonly verify?: boolean;
  /** Plaintext to an implicit-TLS port (a client with TLS switched off). */
  readonly plainOnTls?: boolean;
  readonly logins: readonly Login[];
  readonly mech?: 'LOGIN' | 'PLAIN';
  /** Deliver one message to this recipient after (optional) AUTH. */
  readonly deliver?: string;
  /** Source address (default: the actor's first). */
  readonly src?: string;
}

export interface Actor {
  readonly name: string;
  readonly role: 'attacker' | 'benign';
  readonly addrs: readonly string[];
  readonly steps: readonly Step[];
  /** Pause between steps (ms): attackers come at different rates. */
  readonly pauseMs: number;
  /** Failed attempts this benign actor makes on purpose (the mistyping user). */
  readonly mistakes?: number;
}

export interface StepResult { readonly actor: string; readonly role: Actor['role']; readonly src: string; readonly step: Step; readonly connect: ClientResult['connect']; readonly results: readonly Verdict[]; readonly detail?: string; readonly tls?: 'ok' | 'failed' }

const bad = (n: number): Login => ({ user: `ghost${n}@mx.test`, pass: `guess-${n}` });
const wrong = (user: string, n: number): Login => ({ user, pass: `wrong-${n}` });
const good = (user: string): Login => ({ user, pass: USERS[user]! });

const smtp = (port: number, mech: 'LOGIN' | 'PLAIN', login: Login, src?: string): Step => ({ proto: 'smtp', port, mech, logins: [login], ...(src ? { src } : {}) });
const imap = (logins: Login[], src?: string): Step => ({ proto: 'imap', port: 143, logins, ...(src ? { src } : {}) });
const pop3 = (logins: Login[], src?: string): Step => ({ proto: 'pop3', port: 110, logins, ...(src ? { src } : {}) });

export const ROTATOR = ['2001:db8:bad::10', '2001:db8:bad::2a', '2001:db8:bad::beef', '2001:db8:bad::1:7', '2001:db8:bad:0:ffff::9', '2001:db8:bad::d00d', '2001:db8:bad::77'];

/**
 * Attackers make `n` failed attempts each (n = maxretry + 1 in the capture pass: enough to be
 * banned, and one more to see that nothing is counted twice).
 */
export function actors(n: number): Actor[] {
  const r = (k: number) => Array.from({ length: k }, (_, i) => i);
  return [
    { name: 'smtp25-login-unknown', role: 'attacker', addrs: ['198.51.100.10'], pauseMs: 0,
      steps: r(n).map((i) => smtp(25, 'LOGIN', bad(i))) },
    { name: 'smtp587-plain-wrongpw', role: 'attacker', addrs: ['198.51.100.11'], pauseMs: 700,
      steps: r(n).map((i) => smtp(587, 'PLAIN', wrong('alice@mx.test', i))) },
    // Several LOGINs per IMAP connection: Dovecot sums them up in one "auth failed, N attempts" line.
    { name: 'imap-multi-login', role: 'attacker', addrs: ['203.0.113.7'], pauseMs: 300,
      steps: chunk(r(n).map((i) => (i % 2 ? wrong('bob@mx.test', i) : bad(i))), 3).map((ls) => imap(ls)) },
    { name: 'pop3-user-pass', role: 'attacker', addrs: ['203.0.113.8'], pauseMs: 1500,
      steps: chunk(r(n).map((i) => (i % 2 ? bad(i) : wrong('carol@mx.test', i))), 2).map((ls) => pop3(ls)) },
    // One attempt from each of several addresses inside 2001:db8:bad::/64: only the /64 adds up.
    { name: 'ipv6-rotator', role: 'attacker', addrs: ROTATOR, pauseMs: 400,
      steps: r(n).map((i) => {
        const src = ROTATOR[i % ROTATOR.length]!;
        return i % 3 === 0 ? imap([bad(i)], src) : i % 3 === 1 ? smtp(587, 'LOGIN', wrong('alice@mx.test', i), src) : pop3([bad(i)], src);
      }) },
    { name: 'mixed-services', role: 'attacker', addrs: ['192.0.2.50'], pauseMs: 200,
      steps: r(n).map((i) => [smtp(25, 'LOGIN', bad(i)), imap([wrong('carol@mx.test', i)]), pop3([bad(i)]), smtp(587, 'PLAIN', bad(i))][i % 4]!) },

    { name: 'imap-pop3-user', role: 'benign', addrs: ['192.0.2.20'], pauseMs: 300,
      steps: [imap([good('alice@mx.test')]), pop3([good('alice@mx.test')]), imap([good('alice@mx.test')])] },
    { name: 'submitter', role: 'benign', addrs: ['192.0.2.21'], pauseMs: 300,
      steps: [{ ...smtp(587, 'PLAIN', good('bob@mx.test')), deliver: 'carol@mx.test' }, { proto: 'smtp', port: 25, logins: [], deliver: 'alice@mx.test' }, { ...smtp(25, 'LOGIN', good('bob@mx.test')), deliver: 'alice@mx.test' }] },
    { name: 'mistypes-once', role: 'benign', addrs: ['192.0.2.22'], pauseMs: 500, mistakes: 1,
      steps: [imap([wrong('carol@mx.test', 99), good('carol@mx.test')]), smtp(587, 'LOGIN', good('carol@mx.test')), pop3([good('carol@mx.test')])] },
    // 192.0.2.51 sits next to the attacker at 192.0.2.50.
    { name: 'attacker-neighbour', role: 'benign', addrs: ['192.0.2.51'], pauseMs: 300,
      steps: [imap([good('bob@mx.test')]), { ...smtp(587, 'LOGIN', good('bob@mx.test')), deliver: 'alice@mx.test' }, pop3([good('bob@mx.test')])] },
    // The /64 right next to the rotator's.
    { name: 'ipv6-neighbour-64', role: 'benign', addrs: ['2001:db8:bad:1::20'], pauseMs: 300,
      steps: [imap([good('alice@mx.test')]), smtp(587, 'PLAIN', good('alice@mx.test')), pop3([good('alice@mx.test')])] },
  ];
}

function chunk<T>(xs: T[], k: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += k) out.push(xs.slice(i, i + k));
  return out;
}

/** Runs one step from the actor's namespace. */
export async function runStep(lab: Lab, a: Actor, step: Step, timeoutS = 40): Promise<StepResult> {
  const c = lab.clients.get(a.name);
  if (!c) throw new Error(`no namespace for ${a.name}`);
  const src = step.src ?? a.addrs[0]!;
  const server = src.includes(':') ? SRV6 : SRV4;
  // SMTP through swaks, except a handshake that verifies the certificate (swaks cannot): the Node client.
  if (step.proto === 'smtp' && !step.verify && !step.plainOnTls) {
    const argv = ['ip', 'netns', 'exec', c.ns, 'swaks', '--server', server, '--port', String(step.port),
      '--local-interface', src, '--helo', `${a.name}.client.test`, '--timeout', String(timeoutS), '--hide-all'];
    const login = step.logins[0];
    if (step.tls) argv.push(step.tls === 'implicit' ? '--tlsc' : '--tls');
    if (login) argv.push('--auth', step.mech ?? 'PLAIN', '--auth-user', login.user, '--auth-password', login.pass);
    if (step.deliver) argv.push('--from', login?.user ?? `someone@${a.name}.client.test`, '--to', step.deliver, '--body', `test mail from ${a.name}`);
    else argv.push('--quit-after', 'AUTH');
    const r = await run(argv, { timeoutMs: 90_000 });
    // swaks: 0 ok, 28 AUTH failed, 2x connection/transaction errors.
    const v: Verdict = r.code === 0 ? 'ok' : r.code === 28 ? 'fail' : 'error';
    const connect = r.code === 21 || r.timedOut ? 'timeout' : 'open';
    return { actor: a.name, role: a.role, src, step, connect, results: login ? [v] : [v === 'ok' ? 'ok' : 'error'], ...(v === 'error' ? { detail: `swaks exit ${r.code}: ${r.stderr.trim().slice(0, 200)}` } : {}) };
  }
  const job: ClientJob = { proto: step.proto, host: server, port: step.port, local: src, logins: step.logins, replyMs: timeoutS * 1000,
    ...(step.tls ? { tls: step.tls } : {}), ...(step.verify ? { verify: true } : {}), ...(step.plainOnTls ? { plainOnTls: true } : {}) };
  const r = await clientJob(c.ns, job);
  return { actor: a.name, role: a.role, src, step, connect: r.connect, results: r.results, ...(r.detail ? { detail: r.detail } : {}), ...(r.tls ? { tls: r.tls } : {}) };
}

export async function clientJob(ns: string, job: ClientJob, timeoutMs = 120_000): Promise<ClientResult> {
  const r = await run(['ip', 'netns', 'exec', ns, process.execPath, CLIENT_JS, JSON.stringify(job)], { timeoutMs });
  try {
    return JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as ClientResult;
  } catch {
    return { connect: 'error', results: [], detail: `client exit ${r.code}: ${r.stderr.trim().slice(0, 300)}` };
  }
}

/** Plays every actor's steps, actors in parallel, each at its own pace. */
export async function playAll(lab: Lab, list: readonly Actor[]): Promise<StepResult[]> {
  const all = await Promise.all(list.map(async (a) => {
    const out: StepResult[] = [];
    for (const [i, s] of a.steps.entries()) {
      if (i > 0 && a.pauseMs) await sleep(a.pauseMs);
      out.push(await runStep(lab, a, s));
    }
    return out;
  }));
  return all.flat();
}

export const failures = (rs: readonly StepResult[]): number => rs.reduce((n, r) => n + r.results.filter((v) => v === 'fail').length, 0);
