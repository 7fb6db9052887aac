// The schema of mailjail.yaml, written with the shared schema layer (lib/schema.ts): types, ranges
// and defaults in one table, so that the docs (docs/daemon.md), the validator and the typed config
// describe the same thing. What spans several fields is checked in config.ts.
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FIREWALL_BACKENDS, FIREWALL_TARGETS, MAXELEM, checkFirewallName, checkPorts } from '../firewall/config.js';
import { parseCidr } from '../parse/ip.js';
import type { Policy } from '../state/policy.js';
import { POLICY_CLASSES, SERVICES } from '../types.js';
import type { RuleClass } from '../types.js';
import { REDIS_DEFAULTS } from '../cluster/config.js';
import { s, required, withDefault, type Field } from '../lib/schema.js';

const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$/;
const HOSTNAME = /^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.?$/;

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;

/** "host:port", "[v6]:port" or ":port" (all addresses). */
export function parseListen(s: string): { host: string; port: number } | undefined {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]\s]*)):(\d{1,5})$/.exec(s);
  if (!m) return undefined;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return undefined;
  const host = m[1] ?? m[2] ?? '';
  if (m[1] !== undefined && !parseCidr(m[1])) return undefined;
  if (host !== '' && m[1] === undefined && !HOSTNAME.test(host)) return undefined;
  return { host: host === '' ? (m[1] !== undefined ? '::' : '0.0.0.0') : host, port };
}

const path = s.path((v) => (v.startsWith('/') || v.startsWith('.') ? undefined : 'must be a path (absolute, or relative starting with ".")'));
const cidr = s.str((v) => (parseCidr(v) ? undefined : 'not an IP address or CIDR network'));
const listen = s.str((v) => (parseListen(v) ? undefined : 'must be "host:port", "[ipv6]:port" or ":port"'));
// Kernel object names follow the firewall stage's own rule.
const fwName = s.str(checkFirewallName);
const allowEntry = s.str((v) =>
  parseCidr(v) || HOSTNAME.test(v) ? undefined : 'not an IP address, CIDR network or host name');

/** Built-in rule pack: <app>/rules, found relative to this module (dist/src/daemon → app root). */
export const BUILTIN_RULES_DIR = resolve(dirname(fileURLToPath(import.meta.url)), '../../../rules');

const syslogCommon = {
  type: s.str(),
  enabled: s.bool(),
  listen: required(listen, 'missing "listen" (e.g. "0.0.0.0:514")'),
  allow: required(s.list(cidr), 'missing "allow": the sender networks allowed to log here (e.g. ["192.0.2.0/24"])'),
  maxMessageSize: withDefault(s.int(480, 16 * 1024 * 1024), 65536),
  maxConnections: s.int(1, 1_000_000),
  maxConnectionsPerPeer: s.int(1, 1_000_000),
  idleTimeout: s.duration(1000),
  frameTimeout: s.duration(100),
  handshakeTimeout: s.duration(100),
  maxHeldBytes: s.int(65536, 4 * 1024 * 1024 * 1024),
};

const ports = s.custom<readonly number[] | 'all'>('a list of ports (1-65535) or "all"', (v) => {
  const bad = checkPorts(v);
  if (bad !== undefined) return { error: bad };
  return { ok: v === 'all' ? 'all' : [...new Set(v as number[])] };
});

const MINUTE = 60_000, HOUR = 60 * MINUTE, DAY = 24 * HOUR;

/**
 * What a policy's unwritten fields are (durations in ms): the one place these defaults are written.
 * `escalation` and `recidive` apply only when the policy has that section; their defaults fill the
 * fields it leaves out.
 */
export const POLICY_DEFAULTS = {
  classes: ['auth'] as readonly RuleClass[],
  maxretry: 5,
  findtime: 10 * MINUTE,
  bantime: HOUR,
  ipv4Prefix: 32,
  ipv6Prefix: 64,
  escalation: { factor: 2, maxBantime: 7 * DAY, window: 30 * DAY },
  recidive: { bans: 3, window: DAY, bantime: 7 * DAY },
} as const satisfies Omit<Required<Policy>, 'name' | 'services' | 'distinctUsers'>;
const D = POLICY_DEFAULTS;

const tlsNeeds = 'a syslog-tls source needs tls.cert and tls.key';

export const SCHEMA = s.obj({
  logLevel: withDefault(s.oneOf(LOG_LEVELS), 'info'),
  rules: withDefault(s.obj({ dir: withDefault(path, BUILTIN_RULES_DIR) }), {}),
  state: withDefault(s.obj({ dir: withDefault(path, '/var/lib/mailjail'), maxTracked: withDefault(s.int(1000, 100_000_000), 1_000_000) }), {}),
  sources: withDefault(s.named(s.union('type', 'source', {
    journald: {
      type: s.str(),
      enabled: s.bool(),
      directory: path,
      files: s.list(path, true),
      /** On first start (no saved cursor), how far back to read; 0 = the longest findtime. */
      lookback: withDefault(s.duration(), 0),
      units: s.list(s.str(), true),
      reader: withDefault(s.oneOf(['auto', 'native', 'journalctl'] as const), 'auto'),
    },
    'syslog-udp': syslogCommon,
    'syslog-tcp': syslogCommon,
    'syslog-tls': {
      ...syslogCommon,
      tls: required(s.obj({
        cert: required(path, tlsNeeds), key: required(path, tlsNeeds), ca: path, requireClientCert: withDefault(s.bool(), false),
      }), tlsNeeds),
    },
  }), checkName), {}),
  policies: withDefault(s.named(s.obj({
    enabled: s.bool(),
    classes: withDefault(s.list(s.oneOf(POLICY_CLASSES), true), D.classes),
    services: s.list(s.oneOf(SERVICES), true),
    maxretry: withDefault(s.int(1, 1000), D.maxretry),
    findtime: withDefault(s.duration(1000), D.findtime),
    bantime: withDefault(s.duration(1000), D.bantime),
    escalation: s.obj({
      factor: withDefault(s.num(1, 1000), D.escalation.factor),
      maxBantime: withDefault(s.duration(1000), D.escalation.maxBantime),
      window: withDefault(s.duration(1000), D.escalation.window),
    }),
    recidive: s.obj({
      bans: withDefault(s.int(2, 1000), D.recidive.bans),
      window: withDefault(s.duration(1000), D.recidive.window),
      bantime: withDefault(s.duration(1000), D.recidive.bantime),
    }),
    ipv4Prefix: withDefault(s.int(8, 32), D.ipv4Prefix),
    ipv6Prefix: withDefault(s.int(16, 128), D.ipv6Prefix),
    distinctUsers: s.int(1, 1000),
  }), checkName), {}),
  allowlist: withDefault(s.list(allowEntry), []),
  // The firewall stage fills its own defaults and derived names (firewall/config.ts).
  firewall: withDefault(s.obj({
    backend: s.oneOf(FIREWALL_BACKENDS),
    ports,
    prefix: fwName,
    chain: fwName,
    table: fwName,
    maxelem: s.int(MAXELEM.min, MAXELEM.max),
    target: s.oneOf(FIREWALL_TARGETS),
    ipv6: s.bool(),
  }), {}),
  metrics: withDefault(s.obj({ enabled: withDefault(s.bool(), true), listen: withDefault(listen, '127.0.0.1:9761') }), {}),
  control: withDefault(s.obj({ socket: withDefault(path, '/run/mailjail/control.sock') }), {}),
  // Many mail hosts (docs/cluster.md): optional; absent = one host, nothing changes.
  role: s.oneOf(['collector', 'enforcer', 'both'] as const),
  redis: s.obj({
    url: required(s.str((v) => (/^rediss?:\/\/[^\s]+$/.test(v) ? undefined : 'must be a redis:// or rediss:// URL')),
      'the redis section needs a url (redis://host:6379 or rediss://host:6380)', 'self'),
    username: s.str(),
    password: s.str(),
    passwordFile: path,
    tls: s.obj({ ca: path, cert: path, key: path, servername: s.str() }),
    prefix: withDefault(s.str((v) => (/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(v) ? undefined : 'must be 1-64 letters, digits, "_", ".", ":" or "-"')), REDIS_DEFAULTS.prefix),
    node: s.str((v) => (NAME.test(v) ? undefined : 'names are 1-63 letters, digits, ".", "_" or "-"')),
    streamMaxLen: withDefault(s.int(1000, 100_000_000), REDIS_DEFAULTS.streamMaxLen),
    maxQueue: withDefault(s.int(1, 10_000_000), REDIS_DEFAULTS.maxQueue),
    sharedCounting: s.bool(),
    // Without a key anyone who can write to Redis could ban or unban on every host (docs/cluster.md).
    signingKeyFile: required(path, 'cluster mode needs a signing key file shared by every mailjail host (e.g. `openssl rand -base64 48 > /etc/mailjail/cluster.key; chmod 0600`): entries without a valid signature are refused', 'self'),
    widestNetwork: withDefault(s.obj({
      v4: withDefault(s.int(8, 32), REDIS_DEFAULTS.widestNetwork.v4),
      v6: withDefault(s.int(16, 128), REDIS_DEFAULTS.widestNetwork.v6),
    }), {}),
  }),
});

export type ConfigTree = typeof SCHEMA extends Field<infer T> ? T : never;

/** Names used as map keys (sources, policies) — they appear in logs, metrics labels and the CLI. */
export function checkName(s: string): string | undefined {
  return NAME.test(s) ? undefined : 'names are 1-63 letters, digits, ".", "_" or "-"';
}
