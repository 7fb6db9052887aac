// rediss:// with a private CA and a client certificate (mutual TLS), against a real redis-server.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { ClusterPublisher } from '../../src/cluster/publisher.js';
import { ban, capturingLog, Host, quiet, redisCfg, until } from './helpers.js';
import { freePort, haveRedis, RedisServer } from './redis-server.js';

function haveOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version']);
    return true;
  } catch {
    return false;
  }
}

/** A throw-away CA, a server cert for 127.0.0.1 and a client cert, all signed by the CA. */
function makePki(dir: string): void {
  const o = (...a: string[]) => execFileSync('openssl', a, { cwd: dir, stdio: 'pipe' });
  o('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'ca.key', '-out', 'ca.crt', '-subj', '/CN=mailjail test CA', '-days', '2');
  for (const who of ['server', 'client']) {
    o('req', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${who}.key`, '-out', `${who}.csr`, '-subj', `/CN=${who}`);
    execFileSync('sh', ['-c', `printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\\n' > ${who}.ext`], { cwd: dir });
    o('x509', '-req', '-in', `${who}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-out', `${who}.crt`, '-days', '2', '-extfile', `${who}.ext`);
  }
}

const skip = !haveRedis() ? 'redis-server is not installed' : !haveOpenssl() ? 'openssl is not installed' : undefined;
if (skip) console.warn(`SKIPPED cluster TLS test: ${skip}`);

test('rediss:// with CA and client certificate; an untrusting client is refused', { skip }, async () => {
  const pki = mkdtempSync(join(tmpdir(), 'mj-pki-'));
  makePki(pki);
  const port = await freePort();
  const srv = new RedisServer(port, [
    '--port', '0', '--tls-port', String(port), '--tls-cert-file', join(pki, 'server.crt'), '--tls-key-file', join(pki, 'server.key'),
    '--tls-ca-cert-file', join(pki, 'ca.crt'), '--tls-auth-clients', 'yes',
  ]);
  await srv.up();
  try {
    const cfg = redisCfg(`rediss://127.0.0.1:${port}`, { tls: { ca: join(pki, 'ca.crt'), cert: join(pki, 'client.crt'), key: join(pki, 'client.key') } });
    const h = new Host();
    h.start(cfg);
    const pub = new ClusterPublisher(cfg, quiet);
    pub.publish([ban('192.0.2.123', Date.now() + 3600_000)]);
    await until(() => h.count('192.0.2.123') === 1, 10_000, 'ban over TLS');
    // No client certificate: the server refuses the handshake; nothing is published, it stays queued.
    const cap = capturingLog();
    const noCert = new ClusterPublisher({ ...cfg, tls: { ca: join(pki, 'ca.crt') } }, cap.log);
    noCert.publish([ban('192.0.2.124', Date.now() + 3600_000)]);
    // Wait for the refusal itself (the connection error it logs), not for a guessed delay.
    await until(() => cap.lines().some((l) => l.msg === 'redis error'), 15_000, 'the refused handshake to be logged');
    assert.equal(noCert.stats().published, 0);
    assert.equal(noCert.stats().queued, 1);
    await noCert.close(10);
    await pub.close();
    await h.stop();
  } finally {
    await srv.destroy();
    rmSync(pki, { recursive: true, force: true });
  }
});
