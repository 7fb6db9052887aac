// One conformance suite for every Source: it yields arrays, ends promptly when its signal aborts
// (also when idle), and frees what it held (a listener's port is closed afterwards).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { JournaldSource } from '../../src/sources/journald.js';
import { loadNativeJournal } from '../../src/sources/journal-native.js';
import { SyslogSource } from '../../src/sources/syslog.js';
import type { Source } from '../../src/types.js';
import { ensureJournald, makePki, tempDir } from './helpers.js';

async function endsOnAbort(src: Source, idleMs = 200): Promise<number> {
  const ac = new AbortController();
  setTimeout(() => ac.abort(), idleMs);
  const t0 = Date.now();
  for await (const b of src.records(ac.signal)) assert.ok(Array.isArray(b));
  return Date.now() - t0;
}

const refused = (port: number): Promise<boolean> => new Promise((resolve) => {
  const c = connect(port, '127.0.0.1');
  c.on('connect', () => { c.destroy(); resolve(false); });
  c.on('error', () => resolve(true));
});

for (const protocol of ['udp', 'tcp', 'tls'] as const) {
  test(`conformance: syslog ${protocol} ends on abort (even with a silent peer) and closes its port`, async () => {
    const pki = protocol === 'tls' ? makePki() : undefined;
    const src = new SyslogSource({
      name: 'c', protocol, host: '127.0.0.1', port: 0, allow: ['127.0.0.1'],
      ...(pki ? { tls: { certFile: pki.serverCert, keyFile: pki.serverKey } } : {}),
    });
    const { port } = await src.listen();
    // A silent peer (for TLS: stuck before its handshake) must not hold the close up.
    const idle = protocol === 'udp' ? undefined : connect(port, '127.0.0.1');
    idle?.on('error', () => {});
    const took = await endsOnAbort(src);
    idle?.destroy();
    assert.ok(took < 3000, `ended ${took} ms after start`);
    if (protocol !== 'udp') assert.ok(await refused(port), 'port closed after abort');
  });
}

const backends = (loadNativeJournal() ? ['native', 'journalctl'] : ['journalctl']) as ('native' | 'journalctl')[];
for (const backend of backends) {
  test(`conformance: journald (${backend}) following an idle journal ends on abort`, async (t) => {
    const jd = await ensureJournald();
    t.after(() => jd.stop());
    if (jd.reason) return t.skip(`SKIP: ${jd.reason}`);
    const src = new JournaldSource({ stateDir: tempDir('mj-conf-'), backend, programs: ['mj-nothing-ever'] });
    const took = await endsOnAbort(src, 300);
    assert.ok(took < 5000);
  });
}
