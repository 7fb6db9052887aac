// syslog-ng forwarding into the syslog listener, with the destination docs/ingest.md gives mail
// hosts ("syslog-ng"): the RFC 5424 syslog() driver over plain TCP and over TLS with a client
// certificate (test CA made by openssl), behind Debian's `s_src` / `f_mail` names.
//
// syslog-ng-core conflicts with rsyslog in Debian (both provide system-log-daemon), and the other
// tests need rsyslog, so CI unpacks syslog-ng privately (.ci/run: `dpkg -x` into
// /opt/mailjail-ci/syslog-ng, or MJ_SYSLOG_NG_ROOT); a system-wide /usr/sbin/syslog-ng works too.
// syslog-ng runs in the foreground with a temp config, persist file and control socket.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseRecord } from '../../src/parse/index.js';
import { SyslogSource, type SyslogListenerConfig } from '../../src/sources/syslog.js';
import type { RawRecord } from '../../src/types.js';
import { waitFor } from '../helpers/wait.js';
import { collect, isRoot, makePki, tempDir, texts, which } from './helpers.js';

interface SyslogNg { readonly bin: string; readonly env: NodeJS.ProcessEnv; readonly modules?: string }

/** The private unpack (.ci/run) first, then a system install. */
function findSyslogNg(): SyslogNg | undefined {
  const root = process.env['MJ_SYSLOG_NG_ROOT'] ?? '/opt/mailjail-ci/syslog-ng';
  const bin = join(root, 'usr/sbin/syslog-ng');
  if (existsSync(bin)) {
    const libs = ['usr/lib/syslog-ng', 'usr/lib/x86_64-linux-gnu', 'lib/x86_64-linux-gnu', 'usr/lib/aarch64-linux-gnu', 'lib/aarch64-linux-gnu'].map((d) => join(root, d));
    const ld = [...libs, process.env['LD_LIBRARY_PATH'] ?? ''].filter(Boolean).join(':');
    const version = /^3\.\d+/.exec(execFileSync(bin, ['--version'], { env: { ...process.env, LD_LIBRARY_PATH: ld }, encoding: 'utf8' }).split('\n').find((l) => l.startsWith('Installer-Version:'))?.split(' ')[1] ?? '')?.[0];
    return { bin, env: { ...process.env, LD_LIBRARY_PATH: ld }, ...(version ? { modules: join(root, 'usr/lib/syslog-ng', version) } : {}) };
  }
  const sys = which('syslog-ng');
  return sys ? { bin: sys, env: process.env } : undefined;
}

const SNG = (() => { try { return findSyslogNg(); } catch { return undefined; } })();
const LOGGER = which('logger');
const procs: ChildProcess[] = [];

after(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
});

const skipWhy = (): string | undefined =>
  !SNG ? 'syslog-ng not found (Debian syslog-ng-core, unpacked by .ci/run into /opt/mailjail-ci/syslog-ng)'
    : !LOGGER ? 'logger not installed (package bsdutils)' : !isRoot() ? 'not root' : undefined;

/**
 * syslog-ng with Debian's source and filter names (what the snippet refers to) and `destination`
 * as given in docs/ingest.md. Resolves once its local socket exists.
 */
async function syslogNg(destination: string): Promise<string> {
  const dir = tempDir('mj-syslog-ng-');
  const sock = join(dir, 'log');
  writeFileSync(join(dir, 'syslog-ng.conf'), `@version: 3.38
options { stats_freq(0); };
source s_src { unix-dgram("${sock}"); };
filter f_mail { facility(mail); };
${destination}
log { source(s_src); filter(f_mail); destination(d_mailjail); };
`);
  const p = spawn(SNG!.bin, ['-F', '-f', join(dir, 'syslog-ng.conf'), '-R', join(dir, 'persist'), '-c', join(dir, 'ctl'), '-p', join(dir, 'pid'),
    ...(SNG!.modules ? [`--module-path=${SNG!.modules}`] : [])], { stdio: ['ignore', 'ignore', 'pipe'], env: SNG!.env });
  procs.push(p);
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await waitFor(() => existsSync(sock) || p.exitCode !== null, { timeoutMs: 15_000, what: `syslog-ng's socket ${sock}`, observe: () => err });
  if (!existsSync(sock)) throw new Error(`syslog-ng exited (${p.exitCode}) before making its socket: ${err}`);
  return sock;
}

async function listener(cfg: Partial<SyslogListenerConfig> & Pick<SyslogListenerConfig, 'protocol'>): Promise<{ src: SyslogSource; port: number }> {
  const src = new SyslogSource({ name: `sng-${cfg.protocol}`, host: '127.0.0.1', port: 0, allow: ['127.0.0.1'], ...cfg });
  return { src, port: (await src.listen()).port };
}

function parsed(r: RawRecord | undefined): { program: string; message: string } {
  assert.ok(r);
  const res = parseRecord(r, { format: 'auto', now: Date.now() });
  assert.ok('event' in res, JSON.stringify(res));
  return { program: res.event.program, message: res.event.message };
}

test('syslog-ng syslog() over TCP (RFC 5424, octet-counted): mail only, program names kept whole', async (t) => {
  const why = skipWhy();
  if (why) { process.stderr.write(`\n!!! syslog-ng test SKIPPED: ${why}\n`); return t.skip(`SKIPPED LOUDLY: ${why}`); }
  const { src, port } = await listener({ protocol: 'tcp' });
  // docs/ingest.md "syslog-ng", the plain TCP line, with target/port filled in.
  const sock = await syslogNg(`destination d_mailjail { syslog("127.0.0.1" transport("tcp") port(${port})); };`);
  const got = collect(src, (a) => a.length >= 2, 10_000);
  execFileSync(LOGGER!, ['-u', sock, '-d', '-t', 'postfix/submission/smtpd', '-p', 'mail.warn', 'warning: unknown[192.0.2.9]: SASL LOGIN authentication failed: x']);
  execFileSync(LOGGER!, ['-u', sock, '-d', '-t', 'sshd', '-p', 'auth.info', 'not mail: filtered on the host']);
  execFileSync(LOGGER!, ['-u', sock, '-d', '-t', 'dovecot', '-p', 'mail.info', 'imap-login: second']);
  const rs = await got;
  assert.equal(rs.length, 2, texts(rs).join('\n'));
  assert.equal(rs[0]!.origin.kind, 'syslog-tcp');
  assert.match(texts(rs)[0]!, /^<20>1 \S+ \S+ postfix\/submission\/smtpd \S+ /);
  assert.deepEqual(parsed(rs[0]), { program: 'postfix/submission/smtpd', message: 'warning: unknown[192.0.2.9]: SASL LOGIN authentication failed: x' });
  assert.deepEqual(parsed(rs[1]), { program: 'dovecot', message: 'imap-login: second' });
});

test('syslog-ng syslog() over TLS with a client certificate from our CA (peer-verify required-trusted)', async (t) => {
  const why = skipWhy();
  if (why) { process.stderr.write(`\n!!! syslog-ng test SKIPPED: ${why}\n`); return t.skip(`SKIPPED LOUDLY: ${why}`); }
  const pki = makePki();
  const { src, port } = await listener({
    protocol: 'tls',
    tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.ca, requireClientCert: true },
  });
  // docs/ingest.md "syslog-ng" verbatim but for host, port and file names; the server cert is for
  // "localhost", which syslog-ng checks against the host it connects to.
  const sock = await syslogNg(`destination d_mailjail {
  syslog("localhost" transport("tls") port(${port})
    tls(ca-file("${pki.ca}")
        cert-file("${pki.clientCert}") key-file("${pki.clientKey}")
        peer-verify(required-trusted)));
};`);
  const got = collect(src, (a) => a.length >= 1, 15_000);
  execFileSync(LOGGER!, ['-u', sock, '-d', '-t', 'dovecot', '-p', 'mail.info', 'imap-login: over tls']);
  const rs = await got;
  assert.equal(rs.length, 1, 'nothing arrived over TLS');
  assert.equal(rs[0]!.origin.kind, 'syslog-tls');
  assert.deepEqual(parsed(rs[0]), { program: 'dovecot', message: 'imap-login: over tls' });
});
