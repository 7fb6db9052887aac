// rsyslog forwarding (omfwd) into the syslog listener, with the configs docs/ingest.md gives mail
// hosts: plain TCP octet-counted, TLS with a client certificate (gtls driver, test CA made by
// openssl), and imjournal → omfwd (a journald mail host forwarding to the collector).
// rsyslogd runs in the foreground with a temp config and no system socket.
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseRecord } from '../../src/parse/index.js';
import { SyslogSource, type SyslogListenerConfig } from '../../src/sources/syslog.js';
import type { RawRecord } from '../../src/types.js';
import { waitFor } from '../helpers/wait.js';
import { collect, ensureJournald, isRoot, makePki, tempDir, texts, which } from './helpers.js';

const RSYSLOGD = which('rsyslogd');
const LOGGER = which('logger');
const procs: ChildProcess[] = [];

after(() => {
  for (const p of procs) if (p.exitCode === null) p.kill('SIGTERM');
});

async function rsyslog(conf: (dir: string) => string): Promise<{ dir: string; sock: string }> {
  const dir = tempDir('mj-rsyslog-');
  const sock = join(dir, 'log');
  const head = `global(workDirectory="${dir}")\nmodule(load="imuxsock" SysSock.Use="off")\ninput(type="imuxsock" Socket="${sock}")\n`;
  writeFileSync(join(dir, 'rsyslog.conf'), head + conf(dir));
  const p = spawn(RSYSLOGD!, ['-n', '-f', join(dir, 'rsyslog.conf'), '-i', join(dir, 'pid')], { stdio: ['ignore', 'ignore', 'pipe'] });
  procs.push(p);
  let err = '';
  p.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  await waitFor(() => existsSync(sock) || p.exitCode !== null, { timeoutMs: 15_000, what: `rsyslogd's socket ${sock}`, observe: () => err });
  if (!existsSync(sock)) throw new Error(`rsyslogd exited (${p.exitCode}) before making its socket: ${err}`);
  return { dir, sock };
}

async function listener(cfg: Partial<SyslogListenerConfig> & Pick<SyslogListenerConfig, 'protocol'>): Promise<{ src: SyslogSource; port: number }> {
  const src = new SyslogSource({ name: `rs-${cfg.protocol}`, host: '127.0.0.1', port: 0, allow: ['127.0.0.1'], ...cfg });
  return { src, port: (await src.listen()).port };
}

/** Hands a record to the parse stage, as the pipeline will: the program must survive forwarding. */
function parsed(r: RawRecord | undefined): { program: string; message: string } {
  assert.ok(r);
  const res = parseRecord(r, { format: 'auto', now: Date.now() });
  assert.ok('event' in res, JSON.stringify(res));
  return { program: res.event.program, message: res.event.message };
}

const skipWhy = (): string | undefined =>
  !RSYSLOGD ? 'rsyslogd not installed (package rsyslog)' : !LOGGER ? 'logger not installed (package bsdutils)' : !isRoot() ? 'not root' : undefined;

test('rsyslog omfwd over TCP, octet-counted RFC 5424', async (t) => {
  const why = skipWhy();
  if (why) return t.skip(`SKIP: ${why}`);
  const { src, port } = await listener({ protocol: 'tcp' });
  // Without PermitSlashInProgramName, rsyslog cuts APP-NAME at "/" ("postfix/smtpd" → "postfix").
  // docs/ingest.md "rsyslog, TCP" with target/port filled in.
  const { sock } = await rsyslog(() => `global(parser.PermitSlashInProgramName="on")
if ($syslogfacility-text == "mail") then {
  action(type="omfwd" target="127.0.0.1" port="${port}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
         queue.type="LinkedList" queue.size="100000" queue.filename="mailjail-fwd"
         queue.saveOnShutdown="on" action.resumeRetryCount="-1")
}\n`);
  // Note: rsyslog's RFC 5424 template keeps the space that followed the 3164 tag ("-  warning").
  const got = collect(src, (a) => a.length >= 2, 8000);
  execFileSync(LOGGER!, ['-u', sock, '-t', 'postfix/smtpd', '-p', 'mail.warn', 'warning: unknown[192.0.2.9]: SASL LOGIN authentication failed: x']);
  execFileSync(LOGGER!, ['-u', sock, '-t', 'sshd', '-p', 'auth.info', 'not mail: filtered on the host']);
  execFileSync(LOGGER!, ['-u', sock, '-t', 'dovecot', '-p', 'mail.info', 'imap-login: second']);
  const rs = await got;
  assert.equal(rs.length, 2);
  assert.match(texts(rs)[1]!, /dovecot .*imap-login: second$/);
  assert.match(texts(rs)[0]!, /^<20>1 \S+ \S+ postfix\/smtpd \S+ - - {1,2}warning: unknown\[192\.0\.2\.9\]: SASL LOGIN authentication failed: x$/);
  assert.equal(rs[0]!.origin.kind, 'syslog-tcp');
  assert.equal(parsed(rs[0]).program, 'postfix/smtpd');
  assert.match(parsed(rs[0]).message, /^ ?warning: unknown\[192\.0\.2\.9\]/);
});

test('rsyslog omfwd over TLS (gtls, x509/name) with a client certificate from our CA', async (t) => {
  const why = skipWhy();
  if (why) return t.skip(`SKIP: ${why}`);
  if (!existsSync('/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so') && !existsSync('/usr/lib/rsyslog/lmnsd_gtls.so')) {
    return t.skip('SKIP: rsyslog-gnutls not installed');
  }
  const pki = makePki();
  const { src, port } = await listener({
    protocol: 'tls',
    tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.ca, requireClientCert: true },
  });
  // docs/ingest.md "rsyslog, TLS" with paths/target/port filled in.
  const { sock } = await rsyslog(() => `global(DefaultNetstreamDriver="gtls"
       DefaultNetstreamDriverCAFile="${pki.ca}"
       DefaultNetstreamDriverCertFile="${pki.clientCert}"
       DefaultNetstreamDriverKeyFile="${pki.clientKey}")
if ($syslogfacility-text == "mail") then {
  action(type="omfwd" target="127.0.0.1" port="${port}" protocol="tcp"
         StreamDriver="gtls" StreamDriverMode="1" StreamDriverAuthMode="x509/name"
         StreamDriverPermittedPeers="localhost"
         TCP_Framing="octet-counted" template="RSYSLOG_ForwardFormat"
         queue.type="LinkedList" queue.filename="mailjail-tls" action.resumeRetryCount="-1")
}\n`);
  const got = collect(src, (a) => a.length >= 1, 10000);
  execFileSync(LOGGER!, ['-u', sock, '-t', 'postfix/submission/smtpd', '-p', 'mail.warn', 'over tls']);
  const rs = await got;
  assert.match(texts(rs)[0] ?? '', /^<20>\d{4}-\d\d-\d\dT\S+ \S+ postfix\/submission\/smtpd: over tls$/);
  assert.equal(rs[0]!.origin.kind, 'syslog-tls');
  assert.deepEqual(parsed(rs[0]), { program: 'postfix/submission/smtpd', message: 'over tls' });
});

test('rsyslog imjournal → omfwd: a journald mail host forwarding to the collector', async (t) => {
  const why = skipWhy();
  if (why) return t.skip(`SKIP: ${why}`);
  const jd = await ensureJournald();
  t.after(() => jd.stop());
  if (jd.reason) return t.skip(`SKIP: ${jd.reason}`);
  if (!existsSync('/usr/lib/x86_64-linux-gnu/rsyslog/imjournal.so') && !existsSync('/usr/lib/rsyslog/imjournal.so')) {
    return t.skip('SKIP: rsyslog imjournal module missing');
  }
  const { src, port } = await listener({ protocol: 'tcp' });
  const id = `postfix-mjt${process.pid}/smtpd`;
  // docs/ingest.md "rsyslog imjournal → omfwd" with target/port filled in.
  await rsyslog(() => `global(parser.PermitSlashInProgramName="on")
module(load="imjournal" StateFile="imjournal.state" IgnorePreviousMessages="on")
if ($programname startswith "postfix" or $programname == "dovecot" or $programname == "exim") then {
  action(type="omfwd" target="127.0.0.1" port="${port}" protocol="tcp"
         TCP_Framing="octet-counted" template="RSYSLOG_SyslogProtocol23Format"
         action.resumeRetryCount="-1")
}\n`);
  // imjournal ignores what was in the journal when it started: send "sync" entries until one
  // comes through, so the entry under test is written once rsyslog is surely reading.
  const seen: RawRecord[] = [];
  const got = collect(src, (a) => texts(a).some((l) => l.endsWith('from the journal')), 30_000, (b) => seen.push(...b));
  let n = 0;
  await waitFor(() => {
    if (texts(seen).some((l) => / sync \d+$/.test(l))) return true;
    execFileSync('systemd-cat', ['-t', id], { input: `sync ${n++}\n` });
    return false;
  }, { timeoutMs: 20_000, intervalMs: 250, what: 'a sync entry through imjournal → omfwd', observe: () => `${n} written, ${seen.length} received` });
  execFileSync('systemd-cat', ['-t', id], { input: 'from the journal\n' });
  const rs = (await got).filter((r) => !/ sync \d+$/.test(texts([r])[0] ?? ''));
  assert.match(texts(rs)[0] ?? '', new RegExp(`^<\\d+>1 \\S+ \\S+ ${id} \\d+ - - from the journal$`));
  assert.deepEqual(parsed(rs[0]), { program: id, message: 'from the journal' });
});
