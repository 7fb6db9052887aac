// The acceptance lab: a private systemd-journald (journal namespace), a "srv" network namespace
// running real Postfix and Dovecot from Debian packages, and client namespaces on one bridge
// with addresses from the IPv4/IPv6 documentation ranges. Nothing leaves the machine.
//
// Why a journal namespace: other tests (and other people) may run the machine's journald; ours
// is `systemd-journald <ns>` with its own sockets in /run/systemd/journal.<ns>/ and its own files.
// Postfix and Dovecot log through syslog(3) to /dev/log, so they are started through a wrapper
// that bind-mounts our namespace's sockets over the usual path inside their (private) mount
// namespace — `ip netns exec` already gives every command a mount namespace of its own.
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import type { Socket } from 'node:net';
import { spawn } from 'node:child_process';
import { join } from 'node:path';
import { Cleanup, must, run, sleep, startDaemon, waitFor } from './proc.js';
import { utimesSync } from 'node:fs';

// libio-socket-inet6-perl: swaks speaks IPv6 only with it.
// libnet-ssleay-perl: swaks speaks TLS only with it. dovecot-managesieved: the TLS pass's port 4190.
export const PACKAGES = ['postfix', 'dovecot-imapd', 'dovecot-pop3d', 'dovecot-managesieved', 'swaks', 'libio-socket-inet6-perl', 'libnet-ssleay-perl'] as const;
const BINARIES = ['/usr/sbin/postfix', '/usr/sbin/dovecot', '/usr/bin/swaks', '/lib/systemd/systemd-journald', '/usr/bin/journalctl', '/usr/sbin/ip', '/bin/mount'];

/** Server addresses clients talk to. */
export const SRV4 = '192.0.2.1';
export const SRV6 = '2001:db8:1::1';
/** Networks on the lab bridge: the server holds `.1` / `::1` in each, clients route through it. */
const NETS4 = ['192.0.2', '198.51.100', '203.0.113'];
const NETS6 = ['2001:db8:1::', '2001:db8:bad::', '2001:db8:bad:1::', '2001:db8:bad2::', '2001:db8:bad3::', '2001:db8:bad4::'];

export const USERS: Readonly<Record<string, string>> = { 'alice@mx.test': 'alice-pw-1', 'bob@mx.test': 'bob-pw-2', 'carol@mx.test': 'carol-pw-3' };

/** Returns why the suite cannot run here (so it skips loudly), or undefined. Installs missing packages. */
export async function preflight(log: (s: string) => void): Promise<string | undefined> {
  if (process.platform !== 'linux') return 'not Linux';
  if (process.getuid?.() !== 0) return 'not root: network namespaces, journald and mail daemons need root';
  const missing: string[] = [];
  for (const p of PACKAGES) {
    const r = await run(['dpkg-query', '-W', '-f=${Status}', p]);
    if (!r.stdout.includes('install ok installed')) missing.push(p);
  }
  if (missing.length) {
    log(`installing ${missing.join(' ')} from Debian`);
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    await run(['debconf-set-selections'], { input: 'postfix postfix/main_mailer_type select No configuration\npostfix postfix/mailname string mx.test\n' });
    await run(['apt-get', 'update', '-qq'], { timeoutMs: 300_000, env });
    const r = await run(['apt-get', 'install', '-y', '-qq', '--no-install-recommends', ...missing], { timeoutMs: 400_000, env });
    if (r.code !== 0) return `apt-get install ${missing.join(' ')} failed: ${r.stderr.trim().slice(-400)}`;
  }
  const absent = BINARIES.filter((b) => !existsSync(b));
  if (absent.length) return `missing ${absent.join(', ')}`;
  return undefined;
}

export interface Client { readonly name: string; readonly ns: string; readonly addrs: readonly string[] }

/** Prefix of everything this process creates (netns, interfaces, journal namespace). */
export const LAB_ID = `mja${process.pid}`;

/** Removes namespaces and journals left by an earlier run that was SIGKILLed. */
export async function sweepStale(): Promise<void> {
  const r = await run(['ip', 'netns', 'list']);
  for (const line of r.stdout.split('\n')) {
    const m = /^(mja(\d+))-\S+/.exec(line);
    if (!m || Number(m[2]) === process.pid || pidAlive(Number(m[2]))) continue;
    const ns = line.split(' ')[0]!;
    await killNetnsPids(ns);
    await run(['ip', 'netns', 'del', ns]);
  }
}

function pidAlive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

async function killNetnsPids(ns: string): Promise<void> {
  const r = await run(['ip', 'netns', 'pids', ns]);
  for (const p of r.stdout.split(/\s+/).filter(Boolean)) { try { process.kill(Number(p), 'SIGKILL'); } catch { /* gone */ } }
}

export class Lab {
  readonly id = LAB_ID;
  readonly srv = `${LAB_ID}-srv`;
  readonly dir: string;
  readonly cleanup = new Cleanup();
  readonly clients = new Map<string, Client>();
  /** Directory holding our journal namespace's sockets. */
  readonly journalSockets: string;
  /** Directory holding our journal namespace's files (what `journalctl --directory` and the daemon read). */
  journalDir = '';
  private bindSrc = '';
  private bindDst = '';
  private keepalive: Socket | undefined;
  private nClients = 0;
  readonly log: (s: string) => void;

  constructor(log: (s: string) => void) {
    this.log = log;
    this.dir = mkdtempSync('/tmp/mjacc-');
    chmodSync(this.dir, 0o755); // postfix and dovecot users must traverse it
    this.cleanup.add(`rm ${this.dir}`, () => rmSync(this.dir, { recursive: true, force: true }));
    this.journalSockets = `/run/systemd/journal.${this.id}`;
  }

  // ---------- journald ----------

  async startJournald(): Promise<void> {
    const machineId = readFileSync('/etc/machine-id', 'utf8').trim();
    const dirs = [`/var/log/journal/${machineId}.${this.id}`, `/run/log/journal/${machineId}.${this.id}`];
    this.cleanup.add('journal files', () => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); rmSync(this.journalSockets, { recursive: true, force: true }); });
    // Forward to syslog too (the Debian journald → rsyslog path): the syslog pass reads it from
    // /run/systemd/journal.<ns>/syslog when an rsyslogd listens there.
    const conf = `/etc/systemd/journald@${this.id}.conf`;
    writeFileSync(conf, '# mailjail acceptance test (removed at the end)\n[Journal]\nForwardToSyslog=yes\n');
    this.cleanup.add(`rm ${conf}`, () => rmSync(conf, { force: true }));
    const child = spawn('/lib/systemd/systemd-journald', [this.id], { stdio: 'ignore', detached: false });
    this.cleanup.add('stop journald', async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      await waitFor(() => (child.exitCode !== null ? true : undefined), 3000);
      if (child.exitCode === null) child.kill('SIGKILL');
    });
    const up = await waitFor(() => (existsSync(join(this.journalSockets, 'dev-log')) && existsSync(join(this.journalSockets, 'stdout')) ? true : undefined), 5000);
    if (!up) throw new Error(`systemd-journald ${this.id} did not create its sockets`);
    // A namespaced journald exits when idle (it expects socket activation); an open stdout stream keeps it up.
    this.keepalive = await new Promise<Socket>((resolve, reject) => {
      const s = connect(join(this.journalSockets, 'stdout'), () => resolve(s));
      s.on('error', reject);
    });
    this.keepalive.write('mailjail-acceptance\n\n6\n0\n0\n0\n0\n');
    this.keepalive.write('acceptance lab started\n');
    this.cleanup.add('journald keepalive', () => this.keepalive?.destroy());
    this.journalDir = (await waitFor(() => dirs.find((d) => existsSync(d)), 5000)) ?? dirs[0]!;

    // How syslog(3) reaches our journald inside the daemons' mount namespaces.
    if (!existsSync('/dev/log') && !isSymlink('/dev/log')) {
      // The standard systemd layout; removed again at the end since we made it.
      symlinkSync('/run/systemd/journal/dev-log', '/dev/log');
      this.cleanup.add('rm /dev/log symlink', () => { if (isSymlink('/dev/log')) unlinkSync('/dev/log'); });
    }
    if (isSymlink('/dev/log') && readlinkSync('/dev/log') === '/run/systemd/journal/dev-log') {
      mkdirSync('/run/systemd/journal', { recursive: true });
      this.bindSrc = this.journalSockets;
      this.bindDst = '/run/systemd/journal';
    } else {
      this.bindSrc = join(this.journalSockets, 'dev-log');
      this.bindDst = '/dev/log';
    }
  }

  /** The whole journal of the lab in `journalctl -o json` form (one object per line). */
  async journalJson(): Promise<string> {
    await run(['journalctl', `--namespace=${this.id}`, '--sync'], { timeoutMs: 10_000 });
    return must(['journalctl', `--namespace=${this.id}`, '--no-pager', '-o', 'json'], { timeoutMs: 30_000 });
  }

  /** Wall time (ms) of the newest entry in our journal, or 0 when it holds none. */
  async newestEntryMs(): Promise<number> {
    const out = await must(['journalctl', `--namespace=${this.id}`, '--no-pager', '-o', 'json', '-n', '1'], { timeoutMs: 10_000 });
    const line = out.trim().split('\n').pop();
    return line ? Number((JSON.parse(line) as { __REALTIME_TIMESTAMP: string }).__REALTIME_TIMESTAMP) / 1000 : 0;
  }

  /** The same entries in the classic syslog form (`journalctl -o short`, as rsyslog would write them). */
  async journalSyslog(): Promise<string> {
    return must(['journalctl', `--namespace=${this.id}`, '--no-pager', '-o', 'short'], { timeoutMs: 30_000 });
  }

  // ---------- network ----------

  async startNetwork(): Promise<void> {
    await sweepStale();
    await must(['ip', 'netns', 'add', this.srv]);
    this.cleanup.add(`netns ${this.srv}`, async () => { await killNetnsPids(this.srv); await run(['ip', 'netns', 'del', this.srv]); });
    const n = (...a: string[]) => must(['ip', '-n', this.srv, ...a]);
    await n('link', 'set', 'lo', 'up');
    await n('link', 'add', 'br0', 'type', 'bridge');
    await n('link', 'set', 'br0', 'up');
    for (const p of NETS4) await n('addr', 'add', `${p}.1/24`, 'dev', 'br0');
    // IPv6: the server holds an address in its own /64 only; the client /64s are on-link routes.
    // (Holding 2001:db8:bad::1 itself would make the daemon's own-address allowlist overlap the
    // rotator's /64, and mailjail then rightly falls back to banning single addresses.)
    await n('addr', 'add', `${SRV6}/64`, 'dev', 'br0', 'nodad');
    for (const p of NETS6.slice(1)) await n('-6', 'route', 'add', `${p}/64`, 'dev', 'br0');
  }

  /** A client namespace with the given addresses (first one is the source by default). */
  async addClient(name: string, addrs: readonly string[]): Promise<Client> {
    const i = ++this.nClients;
    const ns = `${this.id}-c${i}`;
    const veth = `${this.id}v${i}`;
    await must(['ip', 'netns', 'add', ns]);
    this.cleanup.add(`netns ${ns}`, async () => { await killNetnsPids(ns); await run(['ip', 'netns', 'del', ns]); });
    await must(['ip', 'link', 'add', veth, 'netns', this.srv, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
    await must(['ip', '-n', this.srv, 'link', 'set', veth, 'master', 'br0', 'up']);
    const c = (...a: string[]) => must(['ip', '-n', ns, ...a]);
    await c('link', 'set', 'lo', 'up');
    await c('link', 'set', 'eth0', 'up');
    let v4 = false;
    let v6 = false;
    for (const a of addrs) {
      if (a.includes(':')) {
        await c('addr', 'add', `${a}/64`, 'dev', 'eth0', 'nodad');
        if (!v6 && !sameNet64(NETS6[0]!, a)) await c('-6', 'route', 'add', `${NETS6[0]}/64`, 'dev', 'eth0');
        v6 = true;
      } else {
        await c('addr', 'add', `${a}/24`, 'dev', 'eth0');
        if (!v4) await c('route', 'add', 'default', 'via', `${a.split('.').slice(0, 3).join('.')}.1`);
        v4 = true;
      }
    }
    const client = { name, ns, addrs };
    this.clients.set(name, client);
    return client;
  }

  // ---------- daemons ----------

  /** argv that runs `argv` in the srv namespace with /dev/log leading to our journald. */
  inSrv(argv: readonly string[]): string[] {
    return ['ip', 'netns', 'exec', this.srv, 'sh', '-c', 'mount --bind "$0" "$1" && shift && exec "$@"', this.bindSrc, this.bindDst, ...argv];
  }

  /**
   * `extra` is appended to the base config (a later setting wins in Dovecot): the TLS pass
   * restarts Dovecot with TLS listeners, disable_plaintext_auth and ManageSieve this way.
   */
  async startDovecot(extra = ''): Promise<void> {
    const d = join(this.dir, 'dovecot');
    mkdirSync(join(d, 'run'), { recursive: true });
    mkdirSync(join(d, 'state'), { recursive: true });
    const mail = join(this.dir, 'mail');
    mkdirSync(mail, { recursive: true });
    chownSync(mail, 65534, 65534);
    writeFileSync(join(d, 'users'), Object.entries(USERS).map(([u, p]) => `${u}:{PLAIN}${p}:65534:65534::${mail}/${u.split('@')[0]}\n`).join(''), { mode: 0o640 });
    chownSync(join(d, 'users'), 0, gidOf('dovecot')); // read by the auth process, which runs as dovecot
    writeFileSync(join(d, 'dovecot.conf'), dovecotConf(d, mail) + extra);
    const conf = join(d, 'dovecot.conf');
    await startDaemon(this.inSrv(['dovecot', '-c', conf]), join(this.dir, 'dovecot.out'), 20_000);
    this.stopDovecot = async () => {
      // Read now: the pid file appears only after `dovecot` has forked and returned.
      const pid = Number(readFileSafe(join(d, 'run', 'master.pid')));
      if (pid > 0) { try { process.kill(pid, 'SIGTERM'); } catch { /* gone */ } }
      if (!(await waitFor(() => (pid > 0 && pidAlive(pid) ? undefined : true), 10_000))) throw new Error(`dovecot master ${pid} did not exit`);
    };
    this.cleanup.add('stop dovecot', () => this.stopDovecot());
    if (!(await waitFor(() => (existsSync(join(d, 'run', 'auth-postfix')) ? true : undefined), 10_000))) throw new Error('dovecot did not create its auth socket');
  }

  /** Stops the running Dovecot (the TLS pass restarts it with another config); a no-op when none runs. */
  stopDovecot: () => Promise<void> = async () => {};
  /** Stops the running Postfix; a no-op when none runs. */
  stopPostfix: () => Promise<void> = async () => {};

  /** `extraMain` is appended to main.cf (a later setting wins); `master` replaces master.cf. */
  async startPostfix(extraMain = '', master = POSTFIX_MASTER): Promise<void> {
    const p = join(this.dir, 'postfix');
    for (const s of ['etc', 'spool', 'data']) mkdirSync(join(p, s), { recursive: true });
    chownSync(join(p, 'data'), uidOf('postfix'), 0);
    writeFileSync(join(p, 'etc', 'main.cf'), postfixMain(p, join(this.dir, 'dovecot', 'run', 'auth-postfix'), join(this.dir, 'mail')) + extraMain);
    writeFileSync(join(p, 'etc', 'master.cf'), master);
    await startDaemon(this.inSrv(['postfix', '-c', join(p, 'etc'), 'start']), join(this.dir, 'postfix.out'), 60_000);
    let running = true;
    this.stopPostfix = async () => {
      if (!running) return;
      running = false;
      await startDaemon(this.inSrv(['postfix', '-c', join(p, 'etc'), 'abort']), join(this.dir, 'postfix.out'), 20_000);
      // `abort` returns before every child has gone; the master's pid file goes last.
      await waitFor(() => (existsSync(join(p, 'spool', 'pid', 'master.pid')) ? undefined : true), 10_000);
    };
    this.cleanup.add('stop postfix', () => this.stopPostfix());
    const up = await waitFor(async () => ((await run(['ip', 'netns', 'exec', this.srv, 'ss', '-Hltn', 'sport = :587'])).stdout.includes('587') ? true : undefined), 10_000, 200);
    if (!up) throw new Error('postfix is not listening on 587');
  }

  /**
   * rsyslogd in the srv namespace, reading what our journald forwards (imuxsock on the
   * namespace's syslog socket) and sending it over TCP (octet-counted) to `target`:`port`,
   * the way a mail host forwards to a central collector.
   */
  async startRsyslog(target: string, port: number): Promise<void> {
    const d = join(this.dir, 'rsyslog');
    mkdirSync(d, { recursive: true });
    const conf = join(d, 'rsyslog.conf');
    writeFileSync(conf, `global(workDirectory="${d}")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="${join(this.journalSockets, 'syslog')}" CreatePath="off")
action(type="omfwd" target="${target}" port="${port}" protocol="tcp" TCP_Framing="octet-counted"
       template="RSYSLOG_ForwardFormat" action.resumeRetryCount="-1" queue.type="LinkedList")
`);
    const child = spawn('ip', ['netns', 'exec', this.srv, 'rsyslogd', '-n', '-f', conf, '-i', join(d, 'rsyslogd.pid')], { stdio: 'ignore' });
    this.cleanup.add('stop rsyslogd', async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGTERM');
      if (!(await waitFor(() => (child.exitCode !== null ? true : undefined), 5000))) child.kill('SIGKILL');
    });
    const up = await waitFor(() => (existsSync(join(this.journalSockets, 'syslog')) ? true : child.exitCode !== null ? false : undefined), 10_000);
    if (up !== true) throw new Error(`rsyslogd did not open ${join(this.journalSockets, 'syslog')}`);
  }

  /**
   * Makes Dovecot's passwd-file unreadable for its auth process (an outage of our own auth back
   * end: every login gets a temporary failure) or readable again. The file is touched because
   * passwd-file re-reads it only when its mtime changes.
   */
  setPassdbReadable(readable: boolean): void {
    const f = join(this.dir, 'dovecot', 'users');
    chmodSync(f, readable ? 0o640 : 0o000);
    const now = new Date();
    utimesSync(f, now, now);
  }

  async stopAll(): Promise<string[]> {
    return this.cleanup.runAll();
  }
}

function isSymlink(p: string): boolean {
  try { return lstatSync(p).isSymbolicLink(); } catch { return false; }
}

function readFileSafe(p: string): string {
  try { return readFileSync(p, 'utf8').trim(); } catch { return ''; }
}

function gidOf(group: string): number {
  const line = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith(`${group}:`));
  return Number(line?.split(':')[2] ?? 0);
}

function uidOf(user: string): number {
  const line = readFileSync('/etc/passwd', 'utf8').split('\n').find((l) => l.startsWith(`${user}:`));
  return Number(line?.split(':')[2] ?? 0);
}

/** Whether an IPv6 address lies in the /64 of a `prefix::` string from NETS6 (exact textual /64 compare is enough here). */
function sameNet64(prefix: string, addr: string): boolean {
  const want = expand6(`${prefix}1`).slice(0, 4).join(':');
  return expand6(addr).slice(0, 4).join(':') === want;
}

export function expand6(a: string): string[] {
  const [head, tail] = a.split('::') as [string, string | undefined];
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const fill = tail === undefined ? [] : Array(8 - h.length - t.length).fill('0');
  return [...h, ...fill, ...t].map((x) => x.padStart(4, '0'));
}

// Debian's dovecot 2.3: its own base_dir (sockets) and state_dir, syslog logging, passwd-file users,
// plaintext auth allowed without TLS (test only), auth_verbose so the auth process logs its verdicts.
// The anvil auth penalty (delays for addresses with recent failures) is Dovecot's default and stays on.
function dovecotConf(d: string, mail: string): string {
  return `# mailjail acceptance test instance
base_dir = ${d}/run
state_dir = ${d}/state
protocols = imap pop3
listen = *, ::
log_path = syslog
syslog_facility = mail
auth_verbose = yes
auth_mechanisms = plain login
disable_plaintext_auth = no
ssl = no
mail_location = maildir:${mail}/%n
first_valid_uid = 100
default_internal_user = dovecot
default_login_user = dovenull
auth_failure_delay = 2 secs
pop3_uidl_format = %08Xu%08Xv
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%u ${d}/users
}
userdb {
  driver = passwd-file
  args = username_format=%u ${d}/users
}
service auth {
  unix_listener auth-postfix {
    mode = 0660
    user = postfix
    group = postfix
  }
}
`;
}

// A separate Postfix instance (own config_directory and queue_directory): smtpd on 25 and
// submission on 587, SASL through Dovecot's auth socket on both, plain AUTH without TLS (test
// only), mail for mx.test delivered by virtual(8) into the maildirs Dovecot serves.
function postfixMain(p: string, authSocket: string, mail: string): string {
  return `# mailjail acceptance test instance
compatibility_level = 3.6
config_directory = ${p}/etc
queue_directory = ${p}/spool
data_directory = ${p}/data
mail_owner = postfix
setgid_group = postdrop
myhostname = mx.test
mydomain = mx.test
mydestination =
alias_maps =
alias_database =
inet_interfaces = all
inet_protocols = all
mynetworks = 127.0.0.0/8 [::1]/128
smtpd_banner = $myhostname ESMTP
biff = no
smtpd_sasl_type = dovecot
smtpd_sasl_path = ${authSocket}
smtpd_sasl_auth_enable = yes
smtpd_sasl_security_options = noanonymous
smtpd_tls_security_level = none
smtpd_tls_auth_only = no
smtpd_relay_restrictions = permit_sasl_authenticated, reject_unauth_destination
smtpd_recipient_restrictions = permit_sasl_authenticated, reject_unauth_destination
virtual_mailbox_domains = mx.test
virtual_mailbox_base = ${mail}
virtual_mailbox_maps = inline:{ ${Object.keys(USERS).map((u) => `${u}=${u.split('@')[0]}/`).join(', ')} }
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
virtual_minimum_uid = 100
smtpd_peername_lookup = no
disable_dns_lookups = yes
smtp_dns_support_level = disabled
`;
}

const POSTFIX_MASTER = `# service type private unpriv chroot wakeup maxproc command
smtp       inet  n - n - - smtpd
submission inet  n - n - - smtpd -o syslog_name=postfix/submission -o smtpd_sasl_auth_enable=yes -o smtpd_relay_restrictions=permit_sasl_authenticated,reject -o smtpd_recipient_restrictions=permit_sasl_authenticated,reject
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
smtp       unix  - - n - - smtp
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

export { sleep };
