// Loads mailjail.yaml plus conf.d/*.yaml drop-ins (merged in name order, the jail.local habit),
// validates them strictly against SCHEMA, and resolves defaults into one typed MailjailConfig.
// Every problem names file:line:col and the key path, so an admin can fix it without guessing.
import type { ClusterRole, RedisConfig } from '../cluster/config.js';
import { REDIS_DEFAULTS } from '../cluster/config.js';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LineCounter, isAlias, isMap, isScalar, isSeq, parseDocument } from 'yaml';
import type { Document, Node as YNode } from 'yaml';
import { resolveFirewallConfig, type FirewallConfig, type ResolvedFirewallConfig } from '../firewall/config.js';
import { parseCidr } from '../parse/ip.js';
import { MANUAL_POLICY } from '../state/decider.js';
import type { Policy } from '../state/policy.js';
import type { Cidr, RuleClass, Service } from '../types.js';
import { MailjailError } from '../types.js';
import { POLICY_DEFAULTS, SCHEMA, checkName, durationOf, parseListen, type Field } from './config-schema.js';
import { DEFAULT_CONFIG_YAML } from './default-config.js';

export const DEFAULT_CONFIG_PATH = '/etc/mailjail/mailjail.yaml';
const EMBEDDED_DEFAULT = '<embedded default>';
/** Built-in rule pack: <app>/rules, found relative to this module (dist/src/daemon → app root). */
export const BUILTIN_RULES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../rules');

// ---------------------------------------------------------------------------------------------
// Resolved config types (durations in ms).

export interface JournaldSourceConfig {
  readonly type: 'journald';
  readonly name: string;
  /** Journal directory (containers, tests); default: the local system journal. */
  readonly directory?: string;
  readonly files?: readonly string[];
  /** On first start (no saved cursor), how far back to read; 0 = the longest findtime. */
  readonly lookback: number;
  /** Also read entries of these systemd units. */
  readonly units?: readonly string[];
  readonly reader: 'auto' | 'native' | 'journalctl';
}

export interface SyslogSourceConfig {
  readonly type: 'syslog-udp' | 'syslog-tcp' | 'syslog-tls';
  readonly name: string;
  readonly listen: { readonly host: string; readonly port: number };
  /** Sender networks allowed to log to this listener; others are dropped before parsing. */
  readonly allow: readonly Cidr[];
  readonly maxMessageSize: number;
  readonly maxConnections?: number;
  readonly maxConnectionsPerPeer?: number;
  readonly idleTimeout?: number;
  /** A sender that holds a frame open this long without finishing it is closed (ms). */
  readonly frameTimeout?: number;
  /** A TLS handshake not done after this long is closed (ms). */
  readonly handshakeTimeout?: number;
  /** Bytes of unfinished frames all connections of this listener may hold together. */
  readonly maxHeldBytes?: number;
  readonly tls?: { readonly cert: string; readonly key: string; readonly ca?: string; readonly requireClientCert: boolean };
}

export type SourceConfig = JournaldSourceConfig | SyslogSourceConfig;

/** Reserved by the state stage for operator bans that name no policy. */
export const MANUAL_POLICY_NAME = MANUAL_POLICY;

export interface MailjailConfig {
  /** Files that made this config, in merge order ("<embedded default>" for the built-in one). */
  readonly files: readonly string[];
  readonly logLevel: 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';
  readonly rules: { readonly dir: string };
  readonly state: { readonly dir: string; readonly maxTracked: number };
  readonly sources: readonly SourceConfig[];
  /** The state stage's policies, as the decider runs them (durations in ms, defaults filled). */
  readonly policies: readonly Policy[];
  /** CIDRs and host names (host names are resolved by the state stage). */
  readonly allowlist: readonly string[];
  /** As the firewall stage resolves it (its defaults, its derived names). */
  readonly firewall: ResolvedFirewallConfig;
  readonly metrics: { readonly enabled: boolean; readonly host: string; readonly port: number };
  readonly control: { readonly socket: string };
  /** Cluster role (docs/cluster.md); absent = both (one host). */
  readonly role?: ClusterRole;
  /** Redis for ban propagation; absent = no cluster. */
  readonly redis?: RedisConfig;
}

// ---------------------------------------------------------------------------------------------
// Problems and errors.

export interface Loc {
  readonly file: string;
  readonly line: number;
  readonly col: number;
}

export interface ConfigProblem extends Loc {
  readonly code: 'MJ_CONFIG_YAML' | 'MJ_CONFIG_UNKNOWN_KEY' | 'MJ_CONFIG_TYPE' | 'MJ_CONFIG_VALUE' | 'MJ_CONFIG_MISSING' | 'MJ_CONFIG_READ';
  /** Dotted key path, e.g. "policies.auth.maxretry" ("" for the whole file). */
  readonly key: string;
  readonly message: string;
}

export function formatProblem(p: ConfigProblem): string {
  return `${p.code}: ${p.file}:${p.line}:${p.col}: ${p.key === '' ? '' : `${p.key}: `}${p.message}`;
}

/** A config that cannot be used; `problems` lists every fault found, in file order. */
export class ConfigError extends MailjailError {
  constructor(readonly problems: readonly ConfigProblem[]) {
    const first = problems[0]!;
    const lines = problems.map(formatProblem);
    super(first.code, `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  ${lines.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

// ---------------------------------------------------------------------------------------------
// Checking one file's YAML tree against the schema.

type Plain = Record<string, unknown>;
const INVALID = Symbol('invalid');

interface FileCheck {
  readonly value: Plain;
  /** key path → where it was written. */
  readonly locs: Map<string, Loc>;
  readonly problems: ConfigProblem[];
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let prev = d[0]!;
    d[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = d[j]!;
      d[j] = Math.min(d[j]! + 1, d[j - 1]! + 1, prev + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1));
      prev = tmp;
    }
  }
  return d[b.length]!;
}

function suggest(key: string, known: readonly string[]): string {
  let best: string | undefined;
  let bestD = Infinity;
  for (const k of known) {
    const dist = editDistance(key, k);
    if (dist < bestD) { bestD = dist; best = k; }
  }
  const hint = best !== undefined && bestD <= Math.max(2, Math.floor(key.length / 3)) ? ` (did you mean "${best}"?)` : '';
  return `unknown key${hint}; allowed here: ${known.join(', ')}`;
}

function describe(f: Field): string {
  switch (f.kind) {
    case 'str': return f.enum ? `one of ${f.enum.map((e) => `"${e}"`).join(', ')}` : 'a string';
    case 'int': return `an integer${f.min !== undefined ? ` from ${f.min}` : ''}${f.max !== undefined ? ` to ${f.max}` : ''}`;
    case 'num': return `a number${f.min !== undefined ? ` from ${f.min}` : ''}${f.max !== undefined ? ` to ${f.max}` : ''}`;
    case 'bool': return 'true or false';
    case 'duration': return 'a duration such as "90s", "10m", "1h", "7d" (a bare number is seconds)';
    case 'list': return 'a list';
    case 'obj': case 'named': case 'union': return 'a mapping (key: value)';
    case 'custom': return f.expect;
  }
}

function shown(v: unknown): string {
  if (v === null || v === undefined) return 'nothing';
  if (typeof v === 'string') {
    // A URL's user:password never goes into an error message (it ends up in logs).
    const safe = v.replace(/^([a-z][a-z0-9+.-]*:\/\/)[^/@\s]*@/i, '$1***@');
    return `the string ${JSON.stringify(safe.length > 40 ? `${safe.slice(0, 40)}…` : safe)}`;
  }
  if (typeof v === 'object') return Array.isArray(v) ? 'a list' : 'a mapping';
  return `${typeof v} ${String(v)}`;
}

function checkFile(text: string, file: string): FileCheck {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true, strict: true });
  const locs = new Map<string, Loc>();
  const problems: ConfigProblem[] = [];
  const at = (offset: number | undefined): Loc => {
    const p = lineCounter.linePos(offset ?? 0);
    return { file, line: p.line, col: p.col };
  };
  for (const e of doc.errors) {
    problems.push({ code: 'MJ_CONFIG_YAML', ...at(e.pos[0]), key: '', message: e.message.split('\n')[0]! });
  }
  if (problems.length > 0) return { value: {}, locs, problems };
  const root = doc.contents;
  if (root === null || (isScalar(root) && (root.value === null || root.value === undefined))) {
    return { value: {}, locs, problems }; // an empty drop-in is fine
  }
  const value = walk(doc, root, SCHEMA, '', at, locs, problems);
  return { value: value === INVALID ? {} : (value as Plain), locs, problems };
}

function walk(
  doc: Document,
  raw: unknown,
  field: Field,
  path: string,
  at: (offset: number | undefined) => Loc,
  locs: Map<string, Loc>,
  problems: ConfigProblem[],
): unknown {
  let node = raw as YNode | null;
  if (node && isAlias(node)) node = (node.resolve(doc) as YNode | undefined) ?? null;
  const here = at(node?.range?.[0]);
  const fail = (code: ConfigProblem['code'], message: string, loc: Loc = here): typeof INVALID => {
    problems.push({ code, ...loc, key: path, message });
    return INVALID;
  };
  if (node === null || (isScalar(node) && node.value === null)) return fail('MJ_CONFIG_TYPE', `has no value; expected ${describe(field)}`);

  const mapFields = (fields: Readonly<Record<string, Field>>): unknown => {
    if (!isMap(node)) return fail('MJ_CONFIG_TYPE', `expected ${describe(field)}, got ${shown(node!.toJSON())}`);
    const out: Plain = {};
    let ok = true;
    for (const pair of node.items) {
      const k = pair.key as YNode | null;
      const keyName = k && isScalar(k) ? k.value : undefined;
      const kLoc = at(k?.range?.[0]);
      if (typeof keyName !== 'string') {
        problems.push({ code: 'MJ_CONFIG_TYPE', ...kLoc, key: path, message: 'keys must be plain strings' });
        ok = false;
        continue;
      }
      const sub = path === '' ? keyName : `${path}.${keyName}`;
      const f = fields[keyName];
      if (!f) {
        const known = Object.keys(fields);
        problems.push({ code: 'MJ_CONFIG_UNKNOWN_KEY', ...kLoc, key: sub, message: suggest(keyName, known) });
        ok = false;
        continue;
      }
      locs.set(sub, kLoc);
      const v = walk(doc, pair.value, f, sub, at, locs, problems);
      if (v === INVALID) ok = false;
      else out[keyName] = v;
    }
    return ok ? out : INVALID;
  };

  switch (field.kind) {
    case 'obj':
      return mapFields(field.fields);
    case 'named': {
      if (!isMap(node)) return fail('MJ_CONFIG_TYPE', `expected a mapping of names to entries, got ${shown(node.toJSON())}`);
      const out: Plain = {};
      let ok = true;
      for (const pair of node.items) {
        const k = pair.key as YNode | null;
        const name = k && isScalar(k) ? k.value : undefined;
        const kLoc = at(k?.range?.[0]);
        const sub = `${path}.${String(name)}`;
        const bad = typeof name === 'string' ? checkName(name) : 'names must be plain strings';
        if (bad !== undefined) {
          problems.push({ code: 'MJ_CONFIG_VALUE', ...kLoc, key: sub, message: bad });
          ok = false;
          continue;
        }
        locs.set(sub, kLoc);
        const v = walk(doc, pair.value, field.of, sub, at, locs, problems);
        if (v === INVALID) ok = false;
        else out[name as string] = v;
      }
      return ok ? out : INVALID;
    }
    case 'union': {
      if (!isMap(node)) return fail('MJ_CONFIG_TYPE', `expected a mapping, got ${shown(node.toJSON())}`);
      const tagNode = node.get(field.tag, true) as YNode | undefined;
      const tag = tagNode && isScalar(tagNode) ? tagNode.value : undefined;
      if (tag === undefined) {
        // A drop-in may amend an entry without restating its type: check against every variant's
        // keys now; the merged result is checked against its own variant later.
        const all: Record<string, Field> = {};
        for (const v of Object.values(field.variants)) Object.assign(all, v);
        return mapFields(all);
      }
      const variant = typeof tag === 'string' ? field.variants[tag] : undefined;
      if (!variant) {
        problems.push({
          code: 'MJ_CONFIG_VALUE', ...at(tagNode?.range?.[0]), key: `${path}.${field.tag}`,
          message: `${shown(tag)} is not a known ${field.tag}; expected one of ${Object.keys(field.variants).map((x) => `"${x}"`).join(', ')}`,
        });
        return INVALID;
      }
      return mapFields(variant);
    }
    case 'list': {
      if (!isSeq(node)) return fail('MJ_CONFIG_TYPE', `expected a list, got ${shown(node.toJSON())}`);
      if (field.nonEmpty && node.items.length === 0) return fail('MJ_CONFIG_VALUE', 'must not be empty');
      const out: unknown[] = [];
      let ok = true;
      node.items.forEach((item, i) => {
        const v = walk(doc, item, field.of, `${path}[${i}]`, at, locs, problems);
        if (v === INVALID) ok = false;
        else out.push(v);
      });
      return ok ? out : INVALID;
    }
    case 'custom': {
      const r = field.convert(node.toJS(doc));
      return 'ok' in r ? r.ok : fail('MJ_CONFIG_VALUE', r.error);
    }
    default:
      break;
  }
  if (!isScalar(node)) return fail('MJ_CONFIG_TYPE', `expected ${describe(field)}, got ${shown(node.toJSON())}`);
  const v = node.value;
  switch (field.kind) {
    case 'str': {
      if (typeof v !== 'string') return fail('MJ_CONFIG_TYPE', `expected ${describe(field)}, got ${shown(v)}`);
      if (field.enum && !field.enum.includes(v)) return fail('MJ_CONFIG_VALUE', `${shown(v)} is not allowed; expected ${describe(field)}`);
      const bad = field.check?.(v);
      return bad === undefined ? v : fail('MJ_CONFIG_VALUE', `${shown(v)}: ${bad}`);
    }
    case 'int':
    case 'num': {
      if (typeof v !== 'number' || !Number.isFinite(v) || (field.kind === 'int' && !Number.isInteger(v))) {
        return fail('MJ_CONFIG_TYPE', `expected ${describe(field)}, got ${shown(v)}`);
      }
      if ((field.min !== undefined && v < field.min) || (field.max !== undefined && v > field.max)) {
        return fail('MJ_CONFIG_VALUE', `${v} is out of range; expected ${describe(field)}`);
      }
      return v;
    }
    case 'bool':
      return typeof v === 'boolean' ? v : fail('MJ_CONFIG_TYPE', `expected true or false, got ${shown(v)}`);
    case 'duration': {
      const ms = durationOf(v);
      if (ms === undefined) return fail(typeof v === 'string' || typeof v === 'number' ? 'MJ_CONFIG_VALUE' : 'MJ_CONFIG_TYPE', `expected ${describe(field)}, got ${shown(v)}`);
      if (field.min !== undefined && ms < field.min) return fail('MJ_CONFIG_VALUE', `${String(v)} is too short (minimum ${field.min / 1000}s)`);
      return ms;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Merging drop-ins: mappings merge key by key, lists and scalars replace.

function isPlainObject(v: unknown): v is Plain {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function mergeInto(base: Plain, over: Plain): Plain {
  const out: Plain = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? mergeInto(b, v) : v;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Resolving the merged tree: defaults, required keys, cross-field checks.

function resolveMerged(m: Plain, locs: Map<string, Loc>, files: readonly string[]): MailjailConfig {
  const problems: ConfigProblem[] = [];
  const locOf = (path: string): Loc => {
    for (let p = path; ; ) {
      const l = locs.get(p);
      if (l) return l;
      const cut = Math.max(p.lastIndexOf('.'), p.lastIndexOf('['));
      if (cut <= 0) return { file: files[files.length - 1] ?? '<config>', line: 1, col: 1 };
      p = p.slice(0, cut);
    }
  };
  const problem = (code: ConfigProblem['code'], key: string, message: string): void => {
    problems.push({ code, ...locOf(key), key, message });
  };
  const obj = (v: unknown): Plain => (isPlainObject(v) ? v : {});
  // Relative paths are relative to the file that wrote them (not to the daemon's working directory).
  const abs = (key: string, v: string): string => {
    if (v.startsWith('/')) return v;
    const f = locOf(key).file;
    return f.startsWith('<') ? resolve(v) : resolve(dirname(f), v);
  };

  const sources: SourceConfig[] = [];
  const problemsBeforeSources = problems.length;
  for (const [name, rawSrc] of Object.entries(obj(m['sources']))) {
    const s = obj(rawSrc);
    const key = `sources.${name}`;
    if (s['enabled'] === false) continue;
    const type = s['type'];
    const variants = (SCHEMA.kind === 'obj' && SCHEMA.fields['sources']?.kind === 'named' && SCHEMA.fields['sources'].of.kind === 'union')
      ? SCHEMA.fields['sources'].of.variants : {};
    if (typeof type !== 'string' || !variants[type]) {
      problem('MJ_CONFIG_MISSING', key, `missing "type" (one of ${Object.keys(variants).map((x) => `"${x}"`).join(', ')})`);
      continue;
    }
    for (const k of Object.keys(s)) {
      if (!(k in variants[type]!)) problem('MJ_CONFIG_UNKNOWN_KEY', `${key}.${k}`, `not allowed for a source of type "${type}"`);
    }
    if (type === 'journald') {
      sources.push({
        type, name,
        ...(typeof s['directory'] === 'string' ? { directory: abs(`${key}.directory`, s['directory']) } : {}),
        ...(Array.isArray(s['files']) ? { files: (s['files'] as string[]).map((f) => abs(`${key}.files`, f)) } : {}),
        lookback: typeof s['lookback'] === 'number' ? s['lookback'] : 0,
        ...(Array.isArray(s['units']) ? { units: s['units'] as string[] } : {}),
        reader: (s['reader'] as JournaldSourceConfig['reader'] | undefined) ?? 'auto',
      });
      continue;
    }
    const listen = typeof s['listen'] === 'string' ? parseListen(s['listen']) : undefined;
    if (!listen) problem('MJ_CONFIG_MISSING', key, 'missing "listen" (e.g. "0.0.0.0:514")');
    if (!Array.isArray(s['allow'])) problem('MJ_CONFIG_MISSING', key, 'missing "allow": the sender networks allowed to log here (e.g. ["192.0.2.0/24"])');
    let tls: SyslogSourceConfig['tls'];
    if (type === 'syslog-tls') {
      const t = obj(s['tls']);
      if (typeof t['cert'] !== 'string' || typeof t['key'] !== 'string') {
        problem('MJ_CONFIG_MISSING', s['tls'] === undefined ? key : `${key}.tls`, 'a syslog-tls source needs tls.cert and tls.key');
      } else {
        tls = {
          cert: abs(`${key}.tls.cert`, t['cert']), key: abs(`${key}.tls.key`, t['key']),
          ...(typeof t['ca'] === 'string' ? { ca: abs(`${key}.tls.ca`, t['ca']) } : {}),
          requireClientCert: t['requireClientCert'] === true,
        };
        if (tls.requireClientCert && tls.ca === undefined) problem('MJ_CONFIG_MISSING', `${key}.tls.requireClientCert`, 'requireClientCert needs tls.ca to verify clients against');
      }
    }
    if (listen && Array.isArray(s['allow'])) {
      sources.push({
        type: type as SyslogSourceConfig['type'], name, listen,
        allow: (s['allow'] as string[]).map((a) => parseCidr(a)!),
        maxMessageSize: typeof s['maxMessageSize'] === 'number' ? s['maxMessageSize'] : 65536,
        ...(typeof s['maxConnections'] === 'number' ? { maxConnections: s['maxConnections'] } : {}),
        ...(typeof s['maxConnectionsPerPeer'] === 'number' ? { maxConnectionsPerPeer: s['maxConnectionsPerPeer'] } : {}),
        ...(typeof s['idleTimeout'] === 'number' ? { idleTimeout: s['idleTimeout'] } : {}),
        ...(typeof s['frameTimeout'] === 'number' ? { frameTimeout: s['frameTimeout'] } : {}),
        ...(typeof s['handshakeTimeout'] === 'number' ? { handshakeTimeout: s['handshakeTimeout'] } : {}),
        ...(typeof s['maxHeldBytes'] === 'number' ? { maxHeldBytes: s['maxHeldBytes'] } : {}),
        ...(tls ? { tls } : {}),
      });
    }
  }
  const seen = new Map<string, string>();
  for (const s of sources) {
    if (s.type === 'journald') continue;
    const proto = s.type === 'syslog-udp' ? 'udp' : 'tcp';
    const id = `${proto} ${s.listen.host}:${s.listen.port}`;
    const other = seen.get(id);
    if (other !== undefined) problem('MJ_CONFIG_VALUE', `sources.${s.name}.listen`, `${id} is already used by source "${other}"`);
    seen.set(id, s.name);
  }
  // An enforcer-only mail host (docs/cluster.md) reads no logs.
  if (sources.length === 0 && problems.length === problemsBeforeSources && !(m['role'] === 'enforcer' && m['redis'] !== undefined)) problem('MJ_CONFIG_MISSING', 'sources', 'no enabled source: add one under "sources"');

  const policies: Policy[] = [];
  for (const [name, rawPol] of Object.entries(obj(m['policies']))) {
    const p = obj(rawPol);
    const key = `policies.${name}`;
    if (p['enabled'] === false) continue;
    // Durations were converted to ms by the schema; unwritten fields take POLICY_DEFAULTS.
    const D = POLICY_DEFAULTS;
    const num = (o: Plain, k: string, d: number): number => (typeof o[k] === 'number' ? o[k] : d);
    const esc = isPlainObject(p['escalation']) ? p['escalation'] : undefined;
    const rec = isPlainObject(p['recidive']) ? p['recidive'] : undefined;
    const bantime = num(p, 'bantime', D.bantime);
    const pol: Policy = {
      name,
      classes: (p['classes'] as RuleClass[] | undefined) ?? D.classes,
      ...(Array.isArray(p['services']) ? { services: [...new Set(p['services'] as Service[])] } : {}),
      maxretry: num(p, 'maxretry', D.maxretry),
      findtime: num(p, 'findtime', D.findtime),
      bantime,
      ...(esc ? {
        escalation: {
          factor: num(esc, 'factor', D.escalation.factor),
          maxBantime: num(esc, 'maxBantime', D.escalation.maxBantime),
          window: num(esc, 'window', D.escalation.window),
        },
      } : {}),
      ...(rec ? {
        recidive: {
          bans: num(rec, 'bans', D.recidive.bans),
          window: num(rec, 'window', D.recidive.window),
          bantime: num(rec, 'bantime', D.recidive.bantime),
        },
      } : {}),
      ipv4Prefix: num(p, 'ipv4Prefix', D.ipv4Prefix),
      ipv6Prefix: num(p, 'ipv6Prefix', D.ipv6Prefix),
      ...(typeof p['distinctUsers'] === 'number' ? { distinctUsers: p['distinctUsers'] } : {}),
    };
    if (name === MANUAL_POLICY_NAME) problem('MJ_CONFIG_VALUE', key, `"${MANUAL_POLICY_NAME}" is reserved for operator bans that name no policy`);
    if (pol.distinctUsers !== undefined && pol.distinctUsers > pol.maxretry) problem('MJ_CONFIG_VALUE', `${key}.distinctUsers`, 'must not exceed maxretry');
    if (pol.escalation && pol.escalation.maxBantime < bantime) problem('MJ_CONFIG_VALUE', `${key}.escalation.maxBantime`, 'must not be shorter than the policy\'s bantime');
    if (pol.recidive && pol.recidive.bantime < bantime) problem('MJ_CONFIG_VALUE', `${key}.recidive.bantime`, 'must not be shorter than the policy\'s bantime');
    policies.push(pol);
  }
  if (policies.length === 0) problem('MJ_CONFIG_MISSING', 'policies', 'no enabled policy: add one under "policies"');

  // The schema checked each field with the firewall stage's own rules; its defaults fill the rest.
  let firewall: ResolvedFirewallConfig | undefined;
  try {
    firewall = resolveFirewallConfig(obj(m['firewall']) as FirewallConfig);
  } catch (e) {
    problem('MJ_CONFIG_VALUE', 'firewall', (e as Error).message);
  }

  const met = obj(m['metrics']);
  const metricsListen = parseListen(typeof met['listen'] === 'string' ? met['listen'] : '127.0.0.1:9761')!;
  const st = obj(m['state']);
  const ru = obj(m['rules']);

  const role = (m['role'] as ClusterRole | undefined) ?? 'both';
  let redis: RedisConfig | undefined;
  if (m['redis'] !== undefined) {
    const r = obj(m['redis']);
    const tls = obj(r['tls']);
    if (typeof r['url'] !== 'string') problem('MJ_CONFIG_MISSING', 'redis.url', 'the redis section needs a url (redis://host:6379 or rediss://host:6380)');
    // Without a key anyone who can write to Redis could ban or unban on every host (docs/cluster.md).
    if (typeof r['signingKeyFile'] !== 'string') problem('MJ_CONFIG_MISSING', 'redis.signingKeyFile', 'cluster mode needs a signing key file shared by every mailjail host (e.g. `openssl rand -base64 48 > /etc/mailjail/cluster.key; chmod 0600`): entries without a valid signature are refused');
    const wn = obj(r['widestNetwork']);
    redis = {
      ...REDIS_DEFAULTS,
      url: (r['url'] as string | undefined) ?? '',
      node: (r['node'] as string | undefined) ?? (hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 63) || 'mailjail'),
      ...(typeof r['username'] === 'string' ? { username: r['username'] } : {}),
      ...(typeof r['password'] === 'string' ? { password: r['password'] } : {}),
      ...(typeof r['passwordFile'] === 'string' ? { passwordFile: abs('redis.passwordFile', r['passwordFile']) } : {}),
      ...(r['tls'] !== undefined ? {
        tls: {
          ...(typeof tls['ca'] === 'string' ? { ca: abs('redis.tls.ca', tls['ca']) } : {}),
          ...(typeof tls['cert'] === 'string' ? { cert: abs('redis.tls.cert', tls['cert']) } : {}),
          ...(typeof tls['key'] === 'string' ? { key: abs('redis.tls.key', tls['key']) } : {}),
          ...(typeof tls['servername'] === 'string' ? { servername: tls['servername'] } : {}),
        },
      } : {}),
      ...(typeof r['prefix'] === 'string' ? { prefix: r['prefix'] } : {}),
      ...(typeof r['streamMaxLen'] === 'number' ? { streamMaxLen: r['streamMaxLen'] } : {}),
      ...(typeof r['maxQueue'] === 'number' ? { maxQueue: r['maxQueue'] } : {}),
      ...(r['sharedCounting'] === true ? { sharedCounting: true } : {}),
      ...(typeof r['signingKeyFile'] === 'string' ? { signingKeyFile: abs('redis.signingKeyFile', r['signingKeyFile']) } : {}),
      widestNetwork: {
        v4: typeof wn['v4'] === 'number' ? wn['v4'] : REDIS_DEFAULTS.widestNetwork.v4,
        v6: typeof wn['v6'] === 'number' ? wn['v6'] : REDIS_DEFAULTS.widestNetwork.v6,
      },
    };
  } else if (role !== 'both') {
    problem('MJ_CONFIG_MISSING', 'role', `role "${role}" needs a redis section (redis: {url: ...})`);
  }

  if (problems.length > 0) throw new ConfigError(problems);
  return {
    files,
    logLevel: (m['logLevel'] as MailjailConfig['logLevel'] | undefined) ?? 'info',
    rules: { dir: typeof ru['dir'] === 'string' ? abs('rules.dir', ru['dir']) : BUILTIN_RULES_DIR },
    state: { dir: typeof st['dir'] === 'string' ? abs('state.dir', st['dir']) : '/var/lib/mailjail', maxTracked: (st['maxTracked'] as number | undefined) ?? 1_000_000 },
    sources,
    policies,
    allowlist: (m['allowlist'] as string[] | undefined) ?? [],
    firewall: firewall!,
    metrics: { enabled: met['enabled'] !== false, ...metricsListen },
    control: { socket: typeof obj(m['control'])['socket'] === 'string' ? abs('control.socket', obj(m['control'])['socket'] as string) : '/run/mailjail/control.sock' },
    ...(m['role'] !== undefined ? { role } : {}),
    ...(redis ? { redis } : {}),
  };
}

// ---------------------------------------------------------------------------------------------
// Public entry points.

export interface ConfigText {
  readonly file: string;
  readonly text: string;
}

/** Validates and merges already-read texts (the first is the main file, the rest drop-ins in order). */
export function configFromTexts(texts: readonly ConfigText[]): MailjailConfig {
  const problems: ConfigProblem[] = [];
  const locs = new Map<string, Loc>();
  let merged: Plain = {};
  for (const t of texts) {
    const c = checkFile(t.text, t.file);
    problems.push(...c.problems);
    for (const [k, l] of c.locs) locs.set(k, l);
    merged = mergeInto(merged, c.value);
  }
  if (problems.length > 0) throw new ConfigError(problems);
  return resolveMerged(merged, locs, texts.map((t) => t.file));
}

/** The policy the embedded default config runs (what `mailjail check` replays). */
export function defaultPolicy(): Policy {
  return configFromTexts([{ file: EMBEDDED_DEFAULT, text: DEFAULT_CONFIG_YAML }]).policies[0]!;
}

/** Drop-ins beside a main config: <dir>/conf.d/*.yaml in byte order of their names, dot-files skipped. */
export function dropInsFor(mainPath: string): string[] {
  const dir = join(dirname(mainPath), 'conf.d');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new ConfigError([{ code: 'MJ_CONFIG_READ', file: dir, line: 1, col: 1, key: '', message: (e as Error).message }]);
  }
  return names
    .filter((n) => n.endsWith('.yaml') && !n.startsWith('.'))
    .sort((a, b) => (Buffer.compare(Buffer.from(a), Buffer.from(b))))
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile());
}

export interface LoadOptions {
  /** Main config file; default /etc/mailjail/mailjail.yaml. */
  readonly path?: string;
}

/**
 * Loads the main file and its drop-ins. When no path was given and the default file does not
 * exist, the embedded default config is used (a single journald mail server works out of the box).
 */
export function loadConfig(opts: LoadOptions = {}): MailjailConfig {
  const mainPath = resolve(opts.path ?? DEFAULT_CONFIG_PATH);
  const read = (file: string): ConfigText => {
    try {
      return { file, text: readFileSync(file, 'utf8') };
    } catch (e) {
      throw new ConfigError([{ code: 'MJ_CONFIG_READ', file, line: 1, col: 1, key: '', message: `cannot read: ${(e as Error).message}` }]);
    }
  };
  let main: ConfigText;
  try {
    statSync(mainPath);
    main = read(mainPath);
  } catch (e) {
    if (e instanceof ConfigError) throw e;
    if (opts.path !== undefined) {
      throw new ConfigError([{ code: 'MJ_CONFIG_READ', file: mainPath, line: 1, col: 1, key: '', message: 'no such file' }]);
    }
    main = { file: EMBEDDED_DEFAULT, text: DEFAULT_CONFIG_YAML };
  }
  return configFromTexts([main, ...dropInsFor(mainPath).map(read)]);
}
