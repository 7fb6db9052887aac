// A small declarative schema for mailjail.yaml, checked against the YAML node tree (not the
// plain JS value) so that every error can name file, line and key. Kept in one table so the
// docs (docs/daemon.md) and the validator describe the same thing.
import { FIREWALL_BACKENDS, FIREWALL_TARGETS, MAXELEM, checkFirewallName, checkPorts } from '../firewall/config.js';
import { parseCidr } from '../parse/ip.js';
import type { Policy } from '../state/policy.js';
import { POLICY_CLASSES, SERVICES } from '../types.js';
import type { RuleClass } from '../types.js';
import { parseDuration } from '../lib/duration.js';

export type Field =
  | { readonly kind: 'str'; readonly enum?: readonly string[]; readonly check?: (s: string) => string | undefined }
  | { readonly kind: 'int'; readonly min?: number; readonly max?: number }
  | { readonly kind: 'num'; readonly min?: number; readonly max?: number }
  | { readonly kind: 'bool' }
  | { readonly kind: 'duration'; readonly min?: number }
  | { readonly kind: 'list'; readonly of: Field; readonly nonEmpty?: boolean }
  | { readonly kind: 'obj'; readonly fields: Readonly<Record<string, Field>> }
  /** A map of user-chosen names to entries (sources, policies): drop-ins merge per name. */
  | { readonly kind: 'named'; readonly of: Field }
  /** An object whose allowed keys depend on its `tag` field (a source's `type`). */
  | { readonly kind: 'union'; readonly tag: string; readonly variants: Readonly<Record<string, Readonly<Record<string, Field>>>> }
  /** Anything else: `convert` gets the plain value and returns the checked value or an error text. */
  | { readonly kind: 'custom'; readonly expect: string; readonly convert: (v: unknown) => { ok: unknown } | { error: string } };

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

const str = (check?: (s: string) => string | undefined): Field => (check ? { kind: 'str', check } : { kind: 'str' });
const path = str((s) => (s.startsWith('/') || s.startsWith('.') ? undefined : 'must be a path (absolute, or relative starting with ".")'));
const cidr = str((s) => (parseCidr(s) ? undefined : 'not an IP address or CIDR network'));
const listen = str((s) => (parseListen(s) ? undefined : 'must be "host:port", "[ipv6]:port" or ":port"'));
// Kernel object names follow the firewall stage's own rule.
const fwName = str(checkFirewallName);
const allowEntry = str((s) =>
  parseCidr(s) || HOSTNAME.test(s) ? undefined : 'not an IP address, CIDR network or host name');

const syslogCommon: Record<string, Field> = {
  type: { kind: 'str' },
  enabled: { kind: 'bool' },
  listen,
  allow: { kind: 'list', of: cidr },
  maxMessageSize: { kind: 'int', min: 480, max: 16 * 1024 * 1024 },
  maxConnections: { kind: 'int', min: 1, max: 1_000_000 },
  maxConnectionsPerPeer: { kind: 'int', min: 1, max: 1_000_000 },
  idleTimeout: { kind: 'duration', min: 1000 },
  frameTimeout: { kind: 'duration', min: 100 },
  handshakeTimeout: { kind: 'duration', min: 100 },
  maxHeldBytes: { kind: 'int', min: 65536, max: 4 * 1024 * 1024 * 1024 },
};

const ports: Field = {
  kind: 'custom',
  expect: 'a list of ports (1-65535) or "all"',
  convert: (v) => {
    const bad = checkPorts(v);
    if (bad !== undefined) return { error: bad };
    return { ok: v === 'all' ? 'all' : [...new Set(v as number[])] };
  },
};

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

export const SCHEMA: Field = {
  kind: 'obj',
  fields: {
    logLevel: { kind: 'str', enum: LOG_LEVELS },
    rules: { kind: 'obj', fields: { dir: path } },
    state: { kind: 'obj', fields: { dir: path, maxTracked: { kind: 'int', min: 1000, max: 100_000_000 } } },
    sources: {
      kind: 'named',
      of: {
        kind: 'union',
        tag: 'type',
        variants: {
          journald: {
            type: { kind: 'str' },
            enabled: { kind: 'bool' },
            directory: path,
            files: { kind: 'list', of: path, nonEmpty: true },
            lookback: { kind: 'duration' },
            units: { kind: 'list', of: { kind: 'str' }, nonEmpty: true },
            reader: { kind: 'str', enum: ['auto', 'native', 'journalctl'] },
          },
          'syslog-udp': syslogCommon,
          'syslog-tcp': syslogCommon,
          'syslog-tls': {
            ...syslogCommon,
            tls: {
              kind: 'obj',
              fields: { cert: path, key: path, ca: path, requireClientCert: { kind: 'bool' } },
            },
          },
        },
      },
    },
    policies: {
      kind: 'named',
      of: {
        kind: 'obj',
        fields: {
          enabled: { kind: 'bool' },
          classes: { kind: 'list', of: { kind: 'str', enum: POLICY_CLASSES }, nonEmpty: true },
          services: { kind: 'list', of: { kind: 'str', enum: SERVICES }, nonEmpty: true },
          maxretry: { kind: 'int', min: 1, max: 1000 },
          findtime: { kind: 'duration', min: 1000 },
          bantime: { kind: 'duration', min: 1000 },
          escalation: {
            kind: 'obj',
            fields: {
              factor: { kind: 'num', min: 1, max: 1000 },
              maxBantime: { kind: 'duration', min: 1000 },
              window: { kind: 'duration', min: 1000 },
            },
          },
          recidive: {
            kind: 'obj',
            fields: {
              bans: { kind: 'int', min: 2, max: 1000 },
              window: { kind: 'duration', min: 1000 },
              bantime: { kind: 'duration', min: 1000 },
            },
          },
          ipv4Prefix: { kind: 'int', min: 8, max: 32 },
          ipv6Prefix: { kind: 'int', min: 16, max: 128 },
          distinctUsers: { kind: 'int', min: 1, max: 1000 },
        },
      },
    },
    allowlist: { kind: 'list', of: allowEntry },
    firewall: {
      kind: 'obj',
      fields: {
        backend: { kind: 'str', enum: FIREWALL_BACKENDS },
        ports,
        prefix: fwName,
        chain: fwName,
        table: fwName,
        maxelem: { kind: 'int', ...MAXELEM },
        target: { kind: 'str', enum: FIREWALL_TARGETS },
        ipv6: { kind: 'bool' },
      },
    },
    metrics: { kind: 'obj', fields: { enabled: { kind: 'bool' }, listen } },
    control: { kind: 'obj', fields: { socket: path } },
    // Many mail hosts (docs/cluster.md): optional; absent = one host, nothing changes.
    role: { kind: 'str', enum: ['collector', 'enforcer', 'both'] },
    redis: {
      kind: 'obj',
      fields: {
        url: str((s) => (/^rediss?:\/\/[^\s]+$/.test(s) ? undefined : 'must be a redis:// or rediss:// URL')),
        username: { kind: 'str' },
        password: { kind: 'str' },
        passwordFile: path,
        tls: { kind: 'obj', fields: { ca: path, cert: path, key: path, servername: { kind: 'str' } } },
        prefix: str((s) => (/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/.test(s) ? undefined : 'must be 1-64 letters, digits, "_", ".", ":" or "-"')),
        node: str((s) => (NAME.test(s) ? undefined : 'names are 1-63 letters, digits, ".", "_" or "-"')),
        streamMaxLen: { kind: 'int', min: 1000, max: 100_000_000 },
        maxQueue: { kind: 'int', min: 1, max: 10_000_000 },
        sharedCounting: { kind: 'bool' },
        signingKeyFile: path,
        widestNetwork: { kind: 'obj', fields: { v4: { kind: 'int', min: 8, max: 32 }, v6: { kind: 'int', min: 16, max: 128 } } },
      },
    },
  },
};

/** Names used as map keys (sources, policies) — they appear in logs, metrics labels and the CLI. */
export function checkName(s: string): string | undefined {
  return NAME.test(s) ? undefined : 'names are 1-63 letters, digits, ".", "_" or "-"';
}

export function durationOf(v: unknown): number | undefined {
  return typeof v === 'string' || typeof v === 'number' ? parseDuration(v) : undefined;
}
