// Loads mailjail.yaml plus conf.d/*.yaml drop-ins (merged in name order, the jail.local habit),
// validates them strictly against SCHEMA, and resolves defaults into one typed MailjailConfig.
// Every problem names file:line:col and the key path, so an admin can fix it without guessing.
import type { ClusterRole, RedisConfig } from '../cluster/config.js';
import { REDIS_DEFAULTS } from '../cluster/config.js';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { complete, locator, readYaml, type Loc, type Problem, type ProblemKind } from '../lib/schema.js';
import { resolveFirewallConfig, type ResolvedFirewallConfig } from '../firewall/config.js';
import { parseCidr } from '../parse/ip.js';
import { MANUAL_POLICY } from '../state/decider.js';
import type { Policy } from '../state/policy.js';
import type { Cidr } from '../types.js';
import { MailjailError } from '../types.js';
import { BUILTIN_RULES_DIR, SCHEMA, parseListen } from './config-schema.js';
import { DEFAULT_CONFIG_YAML } from './default-config.js';

export const DEFAULT_CONFIG_PATH = '/etc/mailjail/mailjail.yaml';
const EMBEDDED_DEFAULT = '<embedded default>';
export { BUILTIN_RULES_DIR };

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

export type { Loc };

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
// Reading files (lib/schema.ts does the checking) and merging drop-ins: mappings merge key by
// key, lists and scalars replace.

type Plain = Record<string, unknown>;

const CODES = {
  yaml: 'MJ_CONFIG_YAML', 'unknown-key': 'MJ_CONFIG_UNKNOWN_KEY', type: 'MJ_CONFIG_TYPE', value: 'MJ_CONFIG_VALUE', missing: 'MJ_CONFIG_MISSING',
} as const satisfies Record<ProblemKind, ConfigProblem['code']>;

function asConfigProblem(p: Problem): ConfigProblem {
  return { code: CODES[p.kind], file: p.file, line: p.line, col: p.col, key: p.key, message: p.message };
}

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
// Resolving the merged tree: the schema fills defaults and finds missing keys; what is left here
// spans several fields.

function resolveMerged(m: Plain, locs: Map<string, Loc>, files: readonly string[]): MailjailConfig {
  const locOf = locator(locs, { file: files[files.length - 1] ?? '<config>', line: 1, col: 1 });
  const done = complete(SCHEMA, m, locOf);
  const c = done.value;
  // The redis section's own problems come after the policies', as they always have.
  const problems = done.problems.filter((p) => !p.key.startsWith('redis')).map(asConfigProblem);
  const problem = (code: ConfigProblem['code'], key: string, message: string): void => {
    problems.push({ code, ...locOf(key), key, message });
  };

  const sources: SourceConfig[] = [];
  for (const [name, s] of Object.entries(c.sources)) {
    const key = `sources.${name}`;
    if (s.type === 'journald') {
      const { enabled: _, ...rest } = s;
      sources.push({ ...rest, name });
      continue;
    }
    const { enabled: _, listen, allow, ...rest } = s;
    const tls = 'tls' in rest ? rest.tls : undefined;
    if (tls?.requireClientCert && tls.ca === undefined) problem('MJ_CONFIG_MISSING', `${key}.tls.requireClientCert`, 'requireClientCert needs tls.ca to verify clients against');
    sources.push({ ...rest, name, listen: parseListen(listen)!, allow: allow.map((a) => parseCidr(a)!), ...(tls ? { tls } : {}) });
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
  const sourceFaults = problems.some((p) => p.key.startsWith('sources'));
  if (sources.length === 0 && !sourceFaults && !(c.role === 'enforcer' && c.redis !== undefined)) problem('MJ_CONFIG_MISSING', 'sources', 'no enabled source: add one under "sources"');

  const policies: Policy[] = [];
  for (const [name, p] of Object.entries(c.policies)) {
    const key = `policies.${name}`;
    const { enabled: _, services, ...rest } = p;
    const pol: Policy = { name, ...rest, ...(services ? { services: [...new Set(services)] } : {}) };
    if (name === MANUAL_POLICY_NAME) problem('MJ_CONFIG_VALUE', key, `"${MANUAL_POLICY_NAME}" is reserved for operator bans that name no policy`);
    if (pol.distinctUsers !== undefined && pol.distinctUsers > pol.maxretry) problem('MJ_CONFIG_VALUE', `${key}.distinctUsers`, 'must not exceed maxretry');
    if (pol.escalation && pol.escalation.maxBantime < pol.bantime) problem('MJ_CONFIG_VALUE', `${key}.escalation.maxBantime`, 'must not be shorter than the policy\'s bantime');
    if (pol.recidive && pol.recidive.bantime < pol.bantime) problem('MJ_CONFIG_VALUE', `${key}.recidive.bantime`, 'must not be shorter than the policy\'s bantime');
    policies.push(pol);
  }
  if (policies.length === 0) problem('MJ_CONFIG_MISSING', 'policies', 'no enabled policy: add one under "policies"');

  // The schema checked each field with the firewall stage's own rules; its defaults fill the rest.
  let firewall: ResolvedFirewallConfig | undefined;
  try {
    firewall = resolveFirewallConfig(c.firewall);
  } catch (e) {
    problem('MJ_CONFIG_VALUE', 'firewall', (e as Error).message);
  }

  const role = c.role ?? 'both';
  let redis: RedisConfig | undefined;
  problems.push(...done.problems.filter((p) => p.key.startsWith('redis')).map(asConfigProblem));
  if (c.redis !== undefined) {
    redis = {
      ...REDIS_DEFAULTS,
      ...c.redis,
      node: c.redis.node ?? (hostname().replace(/[^A-Za-z0-9_.-]/g, '-').slice(0, 63) || 'mailjail'),
    };
  } else if (role !== 'both') {
    problem('MJ_CONFIG_MISSING', 'role', `role "${role}" needs a redis section (redis: {url: ...})`);
  }

  if (problems.length > 0) throw new ConfigError(problems);
  const { listen: metricsListen, ...metrics } = c.metrics;
  return {
    files,
    logLevel: c.logLevel,
    rules: c.rules,
    state: c.state,
    sources,
    policies,
    allowlist: c.allowlist,
    firewall: firewall!,
    metrics: { ...metrics, ...parseListen(metricsListen)! },
    control: c.control,
    ...(c.role !== undefined ? { role } : {}),
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
    const c = readYaml(t.text, t.file, SCHEMA);
    problems.push(...c.problems.map(asConfigProblem));
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
