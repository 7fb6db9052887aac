// The TLS pass: Postfix and Dovecot restarted as a production mail host runs them, attacked and
// used over the ports clients use, with `mailjail run` on the nftables backend.
//
//   Postfix:  postscreen in front of smtpd on 25 (STARTTLS offered), submission 587 with
//             STARTTLS required before AUTH (smtpd_tls_security_level=encrypt, smtpd_tls_auth_only),
//             smtps 465 (wrapper mode, syslog_name postfix/submissions);
//   Dovecot:  imaps 993, pop3s 995, IMAP 143 / POP3 110 with STARTTLS and disable_plaintext_auth,
//             ManageSieve 4190 (STARTTLS);
//   a self-signed certificate made by openssl in the lab's temp dir.
//
// Attackers (one per port, and an IPv6 rotator over 993/465) guess passwords over TLS until they
// are banned: each must be banned at exactly maxretry. Benign clients log in over TLS (one
// mistypes once); a client that does not trust the certificate fails every TLS handshake, another
// speaks plaintext to the TLS ports; an old
// client sends its LOGIN / USER+PASS in plaintext and is refused. None of them may be banned: a
// handshake failure is no failed login, and a refused plaintext login is a probe, not a guess.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { analyse, keyFor } from './analyse.js';
import type { Lab } from './lab.js';
import { USERS } from './lab.js';
import { must, run, waitFor } from './proc.js';
import { keysOf, sanitizeJournal, table } from './report.js';
import { attackUntilBanned, Daemon, P2_MAXRETRY, probeAll } from './phase2.js';
import type { AttackRow } from './phase2.js';
import { playAll } from './scenario.js';
import type { Actor, Login, Step, StepResult } from './scenario.js';

/** Every port a mail client uses; the nftables daemon filters all of them. */
export const TLS_PORTS = [25, 465, 587, 110, 995, 143, 993, 4190] as const;
export const ROT4_NET = '2001:db8:bad4::/64';
const ROT4 = ['2001:db8:bad4::100', '2001:db8:bad4::101', '2001:db8:bad4::102', '2001:db8:bad4::103', '2001:db8:bad4::104'];
const ROT4_UNUSED = '2001:db8:bad4::dead';

const wrong = (user: string, n: number): Login => ({ user, pass: `wrong-${n}` });
const ghost = (n: number): Login => ({ user: `ghost${n}@mx.test`, pass: `guess-${n}` });
const good = (user: string): Login => ({ user, pass: USERS[user]! });

/** Attackers over TLS: at most maxretry + 2 attempts each, one connection per attempt. */
export function tlsAttackers(): Actor[] {
  const r = Array.from({ length: P2_MAXRETRY + 2 }, (_, i) => i);
  const each = (name: string, addr: string, step: (i: number) => Step): Actor => ({ name, role: 'attacker', addrs: [addr], pauseMs: 0, steps: r.map(step) });
  return [
    each('t-smtp587-starttls', '198.51.100.70', (i) => ({ proto: 'smtp', port: 587, tls: 'starttls', mech: 'PLAIN', logins: [wrong('alice@mx.test', i)] })),
    each('t-smtps465', '198.51.100.71', (i) => ({ proto: 'smtp', port: 465, tls: 'implicit', mech: 'LOGIN', logins: [ghost(i)] })),
    each('t-smtp25-postscreen', '198.51.100.72', (i) => ({ proto: 'smtp', port: 25, tls: 'starttls', mech: 'LOGIN', logins: [ghost(i)] })),
    each('t-imaps993', '203.0.113.70', (i) => ({ proto: 'imap', port: 993, tls: 'implicit', logins: [wrong('bob@mx.test', i)] })),
    each('t-pop3s995', '203.0.113.71', (i) => ({ proto: 'pop3', port: 995, tls: 'implicit', logins: [ghost(i)] })),
    each('t-imap143-starttls', '203.0.113.72', (i) => ({ proto: 'imap', port: 143, tls: 'starttls', logins: [i % 2 ? ghost(i) : wrong('carol@mx.test', i)] })),
    each('t-sieve4190', '203.0.113.73', (i) => ({ proto: 'sieve', port: 4190, tls: 'starttls', logins: [wrong('carol@mx.test', i)] })),
    { name: 't-ipv6-rotator', role: 'attacker', addrs: [...ROT4, ROT4_UNUSED], pauseMs: 0,
      steps: r.map((i): Step => (i % 2 ? { proto: 'smtp', port: 465, tls: 'implicit', mech: 'PLAIN', logins: [ghost(i)], src: ROT4[i]! } : { proto: 'imap', port: 993, tls: 'implicit', logins: [ghost(i)], src: ROT4[i]! })) },
  ];
}

/** What each benign client is expected to see, step by step (checked before anything else). */
export interface BenignTls extends Actor { readonly expect: readonly { readonly results: readonly string[]; readonly tls?: 'ok' | 'failed' }[] }

export function tlsBenign(): BenignTls[] {
  const n = P2_MAXRETRY + 2;
  const handshakes: Step[] = [
    { proto: 'imap', port: 993, tls: 'implicit', verify: true, logins: [good('alice@mx.test')] },
    { proto: 'pop3', port: 995, tls: 'implicit', verify: true, logins: [good('alice@mx.test')] },
    { proto: 'smtp', port: 465, tls: 'implicit', verify: true, logins: [] },
    { proto: 'imap', port: 143, tls: 'starttls', verify: true, logins: [good('alice@mx.test')] },
    { proto: 'sieve', port: 4190, tls: 'starttls', verify: true, logins: [good('alice@mx.test')] },
    { proto: 'smtp', port: 587, tls: 'starttls', verify: true, logins: [] },
    { proto: 'smtp', port: 25, tls: 'starttls', verify: true, logins: [] },
  ];
  const plainOnTls: Step[] = [993, 995, 465, 993, 995, 465].map((port): Step => ({ proto: port === 993 ? 'imap' : port === 995 ? 'pop3' : 'smtp', port, plainOnTls: true, logins: [] }));
  const plaintext: Step[] = Array.from({ length: n }, (_, i): Step => (i % 2 ? { proto: 'pop3', port: 110, logins: [good('bob@mx.test')] } : { proto: 'imap', port: 143, logins: [good('bob@mx.test')] }));
  return [
    { name: 't-user', role: 'benign', addrs: ['192.0.2.70'], pauseMs: 200,
      steps: [
        { proto: 'imap', port: 993, tls: 'implicit', logins: [good('alice@mx.test')] },
        { proto: 'pop3', port: 995, tls: 'implicit', logins: [good('alice@mx.test')] },
        { proto: 'smtp', port: 587, tls: 'starttls', mech: 'PLAIN', logins: [good('alice@mx.test')], deliver: 'bob@mx.test' },
        { proto: 'smtp', port: 465, tls: 'implicit', mech: 'LOGIN', logins: [good('alice@mx.test')] },
        { proto: 'imap', port: 143, tls: 'starttls', logins: [good('alice@mx.test')] },
        { proto: 'pop3', port: 110, tls: 'starttls', logins: [good('alice@mx.test')] },
        { proto: 'sieve', port: 4190, tls: 'starttls', logins: [good('alice@mx.test')] },
        { proto: 'smtp', port: 25, tls: 'starttls', logins: [], deliver: 'carol@mx.test' },
      ],
      // (swaks reports no TLS state: its SMTP steps expect only the server's answers.)
      expect: [{ results: ['ok'], tls: 'ok' }, { results: ['ok'], tls: 'ok' }, { results: ['ok'] }, { results: ['ok'] },
        { results: ['ok'], tls: 'ok' }, { results: ['ok'], tls: 'ok' }, { results: ['ok'], tls: 'ok' }, { results: ['ok'] }] },
    { name: 't-mistypes-once', role: 'benign', addrs: ['192.0.2.71'], pauseMs: 200, mistakes: 1,
      steps: [
        { proto: 'imap', port: 993, tls: 'implicit', logins: [wrong('carol@mx.test', 98), good('carol@mx.test')] },
        { proto: 'smtp', port: 465, tls: 'implicit', mech: 'PLAIN', logins: [good('carol@mx.test')] },
        { proto: 'sieve', port: 4190, tls: 'starttls', logins: [good('carol@mx.test')] },
      ],
      expect: [{ results: ['fail', 'ok'], tls: 'ok' }, { results: ['ok'] }, { results: ['ok'], tls: 'ok' }] },
    // Does not trust the self-signed certificate: every handshake fails (7 > maxretry).
    { name: 't-untrusted-cert', role: 'benign', addrs: ['192.0.2.72'], pauseMs: 200, steps: handshakes,
      expect: handshakes.map(() => ({ results: [], tls: 'failed' })) },
    // TLS switched off but the TLS port kept: plaintext into 993/995/465, the server's handshake
    // fails (`SSL_accept() failed`, `SSL_accept error`, `TLS library problem`); 6 > maxretry.
    { name: 't-plain-on-tls-port', role: 'benign', addrs: ['192.0.2.74'], pauseMs: 200, steps: plainOnTls,
      expect: plainOnTls.map(() => ({ results: [], tls: 'failed' })) },
    // An old client configured without TLS: its LOGIN / USER is refused before a password is checked.
    { name: 't-plaintext-refused', role: 'benign', addrs: ['192.0.2.73'], pauseMs: 200, steps: plaintext,
      expect: plaintext.map(() => ({ results: ['fail'] })) },
  ];
}

/** A self-signed certificate for mx.test (EC P-256), made by openssl in the lab's temp dir. */
async function makeCert(dir: string): Promise<{ cert: string; key: string }> {
  mkdirSync(dir, { recursive: true });
  const cert = join(dir, 'mx.test.pem');
  const key = join(dir, 'mx.test.key');
  await must(['openssl', 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '2',
    '-subj', '/CN=mx.test', '-addext', 'subjectAltName=DNS:mx.test', '-keyout', key, '-out', cert]);
  return { cert, key };
}

function dovecotTls(cert: string, key: string): string {
  return `
# ---- TLS pass (appended; later settings win)
protocols = imap pop3 sieve
ssl = yes
ssl_cert = <${cert}
ssl_key = <${key}
ssl_min_protocol = TLSv1.2
disable_plaintext_auth = yes
plugin {
  sieve = file:~/sieve;active=~/.dovecot.sieve
}
`;
}

function postfixTlsMain(cert: string, key: string): string {
  return `
# ---- TLS pass (appended; later settings win)
smtpd_tls_cert_file = ${cert}
smtpd_tls_key_file = ${key}
smtpd_tls_security_level = may
smtpd_tls_auth_only = yes
postscreen_greet_wait = 2s
`;
}

// postscreen in front of smtpd on 25 (with tlsproxy for its STARTTLS and dnsblog, as master.cf ships
// them), submission with TLS required, smtps on 465 in wrapper mode.
const MASTER_TLS = `# service type private unpriv chroot wakeup maxproc command
smtp       inet  n - n - 1 postscreen
smtpd      pass  - - n - - smtpd
tlsproxy   unix  - - n - 0 tlsproxy
tlsmgr     unix  - - n 1000? 1 tlsmgr
dnsblog    unix  - - n - 0 dnsblog
submission inet  n - n - - smtpd -o syslog_name=postfix/submission -o smtpd_tls_security_level=encrypt -o smtpd_tls_auth_only=yes -o smtpd_sasl_auth_enable=yes -o smtpd_relay_restrictions=permit_sasl_authenticated,reject -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
465        inet  n - n - - smtpd -o syslog_name=postfix/submissions -o smtpd_tls_wrappermode=yes -o smtpd_sasl_auth_enable=yes -o smtpd_relay_restrictions=permit_sasl_authenticated,reject -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
pickup     unix  n - n 60 1 pickup
cleanup    unix  n - n - 0 cleanup
qmgr       unix  n - n 300 1 qmgr
rewrite    unix  - - n - - trivial-rewrite
bounce     unix  - - n - 0 bounce
defer      unix  - - n - 0 bounce
trace      unix  - - n - 0 bounce
verify     unix  - - n - 1 verify
flush      unix  n - n 1000? 0 flush
proxymap   unix  - - n - - proxymap
smtp-out   unix  - - n - - smtp
relay      unix  - - n - - smtp
error      unix  - - n - - error
retry      unix  - - n - - error
discard    unix  - - n - - discard
local      unix  - n n - - local
virtual    unix  - n n - - virtual
anvil      unix  - - n - 1 anvil
scache     unix  - - n - 1 scache
postlog    unix-dgram n - n - 1 postlogd
`;

/** Restarts Postfix and Dovecot with the TLS configuration; resolves once every port listens. */
export async function restartWithTls(lab: Lab): Promise<void> {
  const { cert, key } = await makeCert(join(lab.dir, 'tls'));
  await lab.stopPostfix();
  await lab.stopDovecot();
  await lab.startDovecot(dovecotTls(cert, key));
  await lab.startPostfix(postfixTlsMain(cert, key), MASTER_TLS);
  const listening = async () => {
    const r = await run(['ip', 'netns', 'exec', lab.srv, 'ss', '-Hltn']);
    const ports = new Set([...r.stdout.matchAll(/:(\d+)\s/g)].map((m) => Number(m[1])));
    return TLS_PORTS.every((p) => ports.has(p)) ? true : undefined;
  };
  if (!(await waitFor(listening, 20_000, 200))) {
    const r = await run(['ip', 'netns', 'exec', lab.srv, 'ss', '-Hltn']);
    throw new Error(`after the TLS restart not every port of ${TLS_PORTS.join(' ')} listens:\n${r.stdout}`);
  }
}

export interface TlsOutcome { readonly problems: string[]; readonly report: string; readonly daemon: Daemon }

/**
 * The pass itself: the daemon (nftables) follows the journal; attackers attack until banned while
 * the benign clients work; then the bans, the benign clients' reach, and what the rules counted.
 */
export async function tlsPass(lab: Lab, rulesDir: string | undefined): Promise<TlsOutcome> {
  const d = new Daemon(lab, 'journal', { backend: 'nftables', prefix: 'mjtls', ports: TLS_PORTS });
  await d.start(rulesDir);
  const problems: string[] = [];
  const attackers = tlsAttackers();
  const benign = tlsBenign();
  const [rows, benignResults] = await Promise.all([
    Promise.all(attackers.map((a) => attackUntilBanned(lab, d, a))),
    playAll(lab, benign),
  ]);
  problems.push(...checkBenignSteps(benign, benignResults));
  for (const r of rows) {
    // The attempts up to the ban must be real failed logins (the one in flight at the ban may be cut).
    const bad = r.results.slice(0, P2_MAXRETRY - 1).filter((x) => x.results.length === 0 || x.results.some((v) => v !== 'fail'));
    if (bad.length) problems.push(`${r.name}: an attack step did not get the server's "authentication failed": ${bad.map((x) => `${x.step.proto}:${x.step.port} ${x.connect} ${x.tls ?? ''} ${x.results.join(',')} ${x.detail ?? ''}`).join('; ')}`);
    if (r.bannedAt !== P2_MAXRETRY) problems.push(`${r.name} (${r.key}): banned at attempt ${r.bannedAt ?? 'never'} of ${r.made}, want ${P2_MAXRETRY}`);
    const open = Object.entries(r.blocked).filter(([, v]) => v !== 'timeout');
    if (open.length) problems.push(`${r.name}: after the ban, ${r.last} still reaches ${open.map(([p, v]) => `${p} (${v})`).join(', ')}`);
  }
  for (const a of benign) {
    for (const addr of a.addrs) if (await d.inSet(addr)) problems.push(`benign ${a.name} ${addr} is banned`);
    const reach = await probeAll(lab.clients.get(a.name)!.ns, a.addrs[0]!, TLS_PORTS);
    const bad = Object.entries(reach).filter(([, v]) => v !== 'open');
    if (bad.length) problems.push(`benign ${a.name} cannot reach ${bad.map(([p, v]) => `${p} (${v})`).join(', ')}`);
  }
  const bans = await d.cli(['bans', '--json']);
  const targets = bans.code === 0 ? (JSON.parse(bans.stdout) as { target: string }[]).map((b) => b.target) : [];
  if (bans.code !== 0) problems.push(`mailjail bans --json failed: ${bans.stderr}`);
  if (!targets.includes(ROT4_NET)) problems.push(`the IPv6 rotator is not banned as one /64: bans are ${targets.join(', ')}`);
  if (d.exited()) problems.push('mailjail run (nftables) exited during the TLS pass');

  // What the rules made of the real lines: per client, attempts counted (counting-only policy).
  const an = analyse(sanitizeJournal(await lab.journalJson(), lab.dir), rulesDir);
  const countedFor = (a: Actor) => keysOf(a).reduce((n, k) => n + (an.counted.get(k) ?? 0), 0);
  for (const a of benign) {
    const c = countedFor(a);
    if (c !== (a.mistakes ?? 0)) problems.push(`benign ${a.name}: the rules counted ${c} failed logins, it made ${a.mistakes ?? 0}: ${an.matches.filter((x) => keysOf(a).includes(keyFor(x.m.ip)) && x.counted).map((x) => `${x.m.ruleId}: ${x.m.event.message}`).join(' | ')}`);
  }
  const rowsOut = [
    ...rows.map((r) => [r.name, 'attacker', r.key, String(r.made), String(countedFor(attackers.find((a) => a.name === r.name)!)), String(r.bannedAt ?? 'never'),
      Object.values(r.blocked).every((v) => v === 'timeout') ? 'dropped' : JSON.stringify(r.blocked)]),
    ...benign.map((a) => [a.name, 'benign', keysOf(a).join(' '), String(a.mistakes ?? 0), String(countedFor(a)), 'no', 'open']),
  ];
  const report = `\nTLS pass (postscreen 25, 587 STARTTLS-only AUTH, 465, 993, 995, 143/110 STARTTLS + disable_plaintext_auth, 4190; mailjail run with nftables, maxretry ${P2_MAXRETRY}): set holds ${await d.setEntries()}\n` +
    table(['client', 'role', 'address / prefix', 'failed logins made', 'counted', 'banned at attempt', `next connection ${TLS_PORTS.join('/')}`], rowsOut);
  return { problems, report, daemon: d };
}

function checkBenignSteps(benign: readonly BenignTls[], results: readonly StepResult[]): string[] {
  const out: string[] = [];
  for (const a of benign) {
    const mine = results.filter((r) => r.actor === a.name);
    a.expect.forEach((e, i) => {
      const r = mine[i];
      const got = r ? { results: r.results, ...(r.tls ? { tls: r.tls } : {}) } : undefined;
      const want = { results: e.results, ...(e.tls ? { tls: e.tls } : {}) };
      if (JSON.stringify(got) !== JSON.stringify(want)) out.push(`lab: benign ${a.name} step ${i + 1} (${a.steps[i]?.proto}:${a.steps[i]?.port}${a.steps[i]?.tls ? ` ${a.steps[i]?.tls}` : ''}): got ${JSON.stringify(got)} ${r?.detail ?? ''}, want ${JSON.stringify(want)}`);
    });
  }
  return out;
}

export type { AttackRow };
