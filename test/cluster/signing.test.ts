// Signing of cluster entries and ban tokens (src/cluster/signing.ts): key file checks, tampering,
// key rotation. The real-Redis side (forged entries refused by a running enforcer) is in
// forgery.test.ts.
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import fc from 'fast-check';
import { encode } from '../../src/cluster/codec.js';
import { banToken, loadClusterKeys, signEntry, verifyBanToken, verifyEntry } from '../../src/cluster/signing.js';
import { ban, keyFile, unban } from './helpers.js';

const K1 = 'first-key-0123456789abcdefghijklmnopqrstuv';
const K2 = 'second-key-0123456789abcdefghijklmnopqrstu';
const NOW = 1_800_000_000_000;

test('key file: refused when missing, unset, readable by others, empty or short', () => {
  const code = (f: () => unknown, re: RegExp) => assert.throws(f, (e: Error & { code?: string }) => e.code === 'MJ_CLUSTER_KEY' && re.test(e.message));
  code(() => loadClusterKeys(undefined), /redis\.signingKeyFile \(not set\): cluster mode needs a signing key file/);
  code(() => loadClusterKeys('/nonexistent/cluster.key'), /cannot read it/);
  const f = keyFile(K1);
  chmodSync(f, 0o644);
  code(() => loadClusterKeys(f), /mode 644 gives access to others/);
  chmodSync(f, 0o604);
  code(() => loadClusterKeys(f), /mode 604/);
  chmodSync(f, 0o640);
  assert.equal(loadClusterKeys(f).verify.length, 1, 'group-readable (a mailjail group) is fine');
  code(() => loadClusterKeys(keyFile('# only a comment')), /holds no key/);
  code(() => loadClusterKeys(keyFile(K1, 'short')), /key 2 is shorter than 32 characters/);
  const dir = mkdtempSync(join(tmpdir(), 'mj-keydir-'));
  code(() => loadClusterKeys(dir), /not a regular file/);
  const crlf = join(dir, 'k');
  writeFileSync(crlf, `${K1}\r\n\r\n${K2}\r\n`, { mode: 0o600 });
  const ks = loadClusterKeys(crlf);
  assert.equal(ks.sign.toString(), K1);
  assert.deepEqual(ks.verify.map(String), [K1, K2]);
});

test('entries: signed verify; unsigned, tampered, other key, other prefix or doubled signature do not', () => {
  const keys = loadClusterKeys(keyFile(K1));
  const other = loadClusterKeys(keyFile(K2));
  for (const d of [ban('192.0.2.7', NOW + 1000), ban('2001:db8:1::/64', NOW), unban('198.51.100.9')]) {
    const f = encode(d, 'mx-1', NOW);
    const s = signEntry(keys, 'mailjail', f);
    assert.deepEqual(verifyEntry(keys, 'mailjail', s), { ok: true });
    // The field order on the wire does not matter (pairs are sorted before signing).
    const pairs: string[][] = [];
    for (let i = 0; i < s.length; i += 2) pairs.push([s[i]!, s[i + 1]!]);
    assert.deepEqual(verifyEntry(keys, 'mailjail', pairs.reverse().flat()), { ok: true });
    assert.deepEqual(verifyEntry(keys, 'mailjail', f), { error: 'unsigned entry' });
    assert.deepEqual(verifyEntry(other, 'mailjail', s), { error: 'bad signature' });
    assert.deepEqual(verifyEntry(keys, 'other-cluster', s), { error: 'bad signature' });
    assert.deepEqual(verifyEntry(keys, 'mailjail', [...s, 's', s[s.length - 1]!]), { error: 'bad signature' });
    // Every single field changed, added or removed breaks the signature.
    for (let i = 0; i < f.length; i += 2) {
      const changed = [...s];
      changed[i + 1] = `${changed[i + 1]}x`;
      assert.deepEqual(verifyEntry(keys, 'mailjail', changed), { error: 'bad signature' }, `field ${f[i]}`);
      const removed = [...s.slice(0, i), ...s.slice(i + 2)];
      assert.deepEqual(verifyEntry(keys, 'mailjail', removed), { error: 'bad signature' }, `without ${f[i]}`);
    }
    assert.deepEqual(verifyEntry(keys, 'mailjail', [...s, 'x', '1']), { error: 'bad signature' });
  }
});

test('a forged signature never verifies (property), and verify never throws', () => {
  const keys = loadClusterKeys(keyFile(K1));
  const f = encode(ban('192.0.2.7', NOW + 1000), 'mx-1', NOW);
  fc.assert(fc.property(fc.string({ maxLength: 80 }), fc.array(fc.string({ maxLength: 20 }), { maxLength: 10 }), (sig, junk) => {
    assert.deepEqual(verifyEntry(keys, 'mailjail', [...f, 's', sig]), { error: 'bad signature' });
    const r = verifyEntry(keys, 'mailjail', junk);
    assert.ok('error' in r);
  }));
});

test('ban tokens: bound to target, expiry, prefix and key', () => {
  const keys = loadClusterKeys(keyFile(K1));
  const t = banToken(keys, 'mailjail', '192.0.2.7', NOW + 5000);
  assert.deepEqual(verifyBanToken(keys, 'mailjail', '192.0.2.7', t), { ok: NOW + 5000 });
  assert.deepEqual(verifyBanToken(keys, 'mailjail', '192.0.2.8', t), { error: 'bad signature' });
  assert.deepEqual(verifyBanToken(keys, 'other', '192.0.2.7', t), { error: 'bad signature' });
  assert.deepEqual(verifyBanToken(keys, 'mailjail', '192.0.2.7', t.replace(/^\d+/, String(NOW + 99_999_999))), { error: 'bad signature' }, 'a longer expiry');
  assert.deepEqual(verifyBanToken(keys, 'mailjail', '192.0.2.7', undefined), { error: 'unsigned ban' });
  assert.deepEqual(verifyBanToken(keys, 'mailjail', '192.0.2.7', String(NOW + 5000)), { error: 'malformed ban token' });
  assert.deepEqual(verifyBanToken(loadClusterKeys(keyFile(K2)), 'mailjail', '192.0.2.7', t), { error: 'bad signature' });
});

test('rotation: a file with the new key first and the old one after signs with the new, accepts both', () => {
  const old = loadClusterKeys(keyFile(K1));
  const rotating = loadClusterKeys(keyFile(K2, K1));
  const fresh = loadClusterKeys(keyFile(K2));
  const byOld = signEntry(old, 'mailjail', encode(ban('192.0.2.7', NOW), 'mx', NOW));
  const byRotating = signEntry(rotating, 'mailjail', encode(ban('192.0.2.7', NOW), 'mx', NOW));
  assert.deepEqual(verifyEntry(rotating, 'mailjail', byOld), { ok: true });
  assert.deepEqual(verifyEntry(fresh, 'mailjail', byRotating), { ok: true });
  assert.deepEqual(verifyEntry(old, 'mailjail', byRotating), { error: 'bad signature' });
  assert.deepEqual(verifyEntry(fresh, 'mailjail', byOld), { error: 'bad signature' }, 'once the old key is dropped its entries are refused');
});
