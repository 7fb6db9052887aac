// Authenticity of what goes through Redis: whoever can write to Redis could otherwise ban any
// network on every mail host or lift any ban. Collectors sign each stream entry and each active-ban
// token with HMAC-SHA256 under a key that only mailjail hosts hold (redis.signingKeyFile);
// enforcers verify before anything else is looked at and refuse what does not verify.
// The key file: one key per line (>= 32 characters, e.g. `openssl rand -base64 48`); the first
// line signs and verifies, further lines only verify (the previous key during a rotation).
import { createHmac, timingSafeEqual } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { MailjailError } from '../types.js';

export interface ClusterKeys {
  readonly sign: Buffer;
  /** sign first, then the keys that are still accepted. */
  readonly verify: readonly Buffer[];
}

const MIN_KEY_CHARS = 32;
const SIG_BYTES = 32;

/** Reads and checks the key file; throws MJ_CLUSTER_KEY naming the file and what is wrong. */
export function loadClusterKeys(file: string | undefined): ClusterKeys {
  const fail = (why: string): never => {
    throw new MailjailError('MJ_CLUSTER_KEY', `redis.signingKeyFile ${file ?? '(not set)'}: ${why}`);
  };
  if (file === undefined) return fail('cluster mode needs a signing key file (see docs/cluster.md)');
  let text: string;
  try {
    const st = statSync(file);
    if (!st.isFile()) return fail('not a regular file');
    // Anyone who can read the key can forge bans and unbans for the whole cluster.
    if ((st.mode & 0o007) !== 0) return fail(`mode ${(st.mode & 0o777).toString(8)} gives access to others; chmod 0600 (or 0640 with a mailjail group)`);
    text = readFileSync(file, 'utf8');
  } catch (e) {
    if (e instanceof MailjailError) throw e;
    return fail(`cannot read it: ${(e as Error).message}`);
  }
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('#'));
  if (lines.length === 0) return fail('holds no key');
  const short = lines.findIndex((l) => l.length < MIN_KEY_CHARS);
  if (short >= 0) return fail(`key ${short + 1} is shorter than ${MIN_KEY_CHARS} characters`);
  const verify = lines.map((l) => Buffer.from(l, 'utf8'));
  return { sign: verify[0]!, verify };
}

const mac = (key: Buffer, text: string): Buffer => createHmac('sha256', key).update(text, 'utf8').digest();

function matches(keys: ClusterKeys, text: string, sig: string): boolean {
  if (!/^[A-Za-z0-9_-]{43}$/.test(sig)) return false;
  const given = Buffer.from(sig, 'base64url');
  if (given.length !== SIG_BYTES) return false;
  let ok = false;
  for (const k of keys.verify) if (timingSafeEqual(mac(k, text), given)) ok = true;
  return ok;
}

/**
 * The signed text of a stream entry: domain, key prefix (an entry cannot be moved to another
 * cluster's stream) and the field pairs sorted by name, as JSON (unambiguous whatever the values).
 */
function entryText(prefix: string, fields: readonly string[]): string {
  const pairs: [string, string][] = [];
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] !== 's') pairs.push([fields[i]!, fields[i + 1]!]);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] < b[1] ? -1 : a[1] > b[1] ? 1 : 0));
  return JSON.stringify(['mailjail-decision-v1', prefix, pairs]);
}

/** Appends the signature field `s` to an entry's flat field list. */
export function signEntry(keys: ClusterKeys, prefix: string, fields: readonly string[]): string[] {
  return [...fields, 's', mac(keys.sign, entryText(prefix, fields)).toString('base64url')];
}

/** Checks an entry's `s` field; an entry without one is refused as unsigned. */
export function verifyEntry(keys: ClusterKeys, prefix: string, fields: readonly string[]): { ok: true } | { error: string } {
  if (fields.length % 2 !== 0) return { error: 'malformed entry' };
  const sigs: string[] = [];
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === 's') sigs.push(fields[i + 1]!);
  if (sigs.length === 0) return { error: 'unsigned entry' };
  if (sigs.length > 1 || !matches(keys, entryText(prefix, fields), sigs[0]!)) return { error: 'bad signature' };
  return { ok: true };
}

const banText = (prefix: string, target: string, until: number): string => JSON.stringify(['mailjail-ban-v1', prefix, target, until]);

/** The active-bans hash value for a target: `<until>.<signature>`. */
export function banToken(keys: ClusterKeys, prefix: string, target: string, until: number): string {
  return `${until}.${mac(keys.sign, banText(prefix, target, until)).toString('base64url')}`;
}

/** A token from the active-bans hash → its signed expiry, or an error text. */
export function verifyBanToken(keys: ClusterKeys, prefix: string, target: string, token: string | undefined): { ok: number } | { error: string } {
  if (token === undefined || token === '') return { error: 'unsigned ban' };
  const m = /^(\d{1,16})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!m) return { error: 'malformed ban token' };
  const until = Number(m[1]);
  if (!Number.isSafeInteger(until) || !matches(keys, banText(prefix, target, until), m[2]!)) return { error: 'bad signature' };
  return { ok: until };
}
