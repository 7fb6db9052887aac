// Firewall configuration: what the daemon reads from its config file, with defaults, and the
// kernel object names derived from it. Names are configurable so that tests (in namespaces) and
// a production instance never touch each other's sets.
import { MailjailError } from '../types.js';

/** The backends, the targets and the default ports: the one list of each (the config schema checks against them). */
export const FIREWALL_BACKENDS = ['ipset', 'nftables', 'dry-run'] as const;
export type FirewallBackendName = (typeof FIREWALL_BACKENDS)[number];
export const FIREWALL_TARGETS = ['drop', 'reject'] as const;
export type FirewallTarget = (typeof FIREWALL_TARGETS)[number];

export interface FirewallConfig {
  /** Which backend to use. Default 'ipset' (ipset + iptables/ip6tables). */
  readonly backend?: FirewallBackendName;
  /**
   * Name prefix for every kernel object. ipset: sets `<prefix>-v4` / `<prefix>-v6`, chain
   * `<PREFIX>` (upper case). nftables: table `inet <prefix>`. Default 'mailjail'.
   */
  readonly prefix?: string;
  /** Override the iptables chain name (default: the prefix upper-cased). */
  readonly chain?: string;
  /** Override the nftables table name (default: the prefix). */
  readonly table?: string;
  /** TCP destination ports whose traffic is checked, or 'all' to drop everything from a banned source. */
  readonly ports?: readonly number[] | 'all';
  /** Capacity of each set (per address family). Default 65536. A warning is raised at 80 % full. */
  readonly maxelem?: number;
  /** What a match does: silently drop (default) or reject with a TCP reset / ICMP unreachable. */
  readonly target?: FirewallTarget;
  /** Whether to install IPv6 rules too (default true). */
  readonly ipv6?: boolean;
  /** Run every command inside this network namespace (`ip netns exec <netns> ...`); tests and containers. */
  readonly netns?: string;
  /** Per-command timeout in ms (default 30000). */
  readonly commandTimeoutMs?: number;
}

/** The default ports: SMTP, SMTPS, submission, POP3, POP3S, IMAP, IMAPS, ManageSieve. */
export const MAIL_PORTS: readonly number[] = [25, 465, 587, 110, 995, 143, 993, 4190];

/** Bounds of `maxelem` (entries per set and family). */
export const MAXELEM = { min: 16, max: 16_777_216 } as const;

export interface ResolvedFirewallConfig {
  readonly backend: FirewallBackendName;
  readonly prefix: string;
  readonly set4: string;
  readonly set6: string;
  readonly chain: string;
  readonly table: string;
  readonly ports: readonly number[] | 'all';
  readonly maxelem: number;
  readonly target: FirewallTarget;
  readonly ipv6: boolean;
  readonly netns: string | undefined;
  readonly commandTimeoutMs: number;
}

// ipset names are at most 31 chars, iptables chains 28; keep to a safe alphabet so a name can
// never be read as an option or a keyword by the tools.
const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,23}$/;

/** The rule for kernel object names (prefix, chain, table): an error text, or undefined when fine. */
export function checkFirewallName(s: string): string | undefined {
  return NAME.test(s) ? undefined : 'must be 1-24 letters, digits, "_" or "-", starting with a letter';
}

/** The rule for `ports`: an error text, or undefined when `v` is "all" or a usable list of ports. */
export function checkPorts(v: unknown): string | undefined {
  if (v === 'all') return undefined;
  if (!Array.isArray(v) || v.length === 0) return 'must be a non-empty list of ports or "all"';
  // iptables' multiport match takes at most 15 ports.
  if (v.length > 15) return 'at most 15 ports (the iptables multiport limit); use "all" instead';
  for (const p of v as unknown[]) {
    if (!Number.isInteger(p) || (p as number) < 1 || (p as number) > 65535) return `${JSON.stringify(p)} is not a port (1-65535)`;
  }
  return undefined;
}

function bad(msg: string): never {
  throw new MailjailError('MJ_FW_CONFIG', msg);
}

/** Fills defaults and validates; throws MJ_FW_CONFIG naming the bad field. */
export function resolveFirewallConfig(c: FirewallConfig = {}): ResolvedFirewallConfig {
  const backend = c.backend ?? 'ipset';
  if (!FIREWALL_BACKENDS.includes(backend)) bad(`firewall.backend: unknown backend ${JSON.stringify(backend)}`);
  const name = (key: string, v: string): string => {
    const why = checkFirewallName(v);
    return why === undefined ? v : bad(`firewall.${key}: ${JSON.stringify(v)} ${why}`);
  };
  const prefix = name('prefix', c.prefix ?? 'mailjail');
  const chain = name('chain', c.chain ?? prefix.toUpperCase());
  const table = name('table', c.table ?? prefix);
  const ports = c.ports ?? MAIL_PORTS;
  const badPorts = checkPorts(ports);
  if (badPorts !== undefined) bad(`firewall.ports: ${badPorts}`);
  const maxelem = c.maxelem ?? 65536;
  if (!Number.isInteger(maxelem) || maxelem < MAXELEM.min || maxelem > MAXELEM.max) bad(`firewall.maxelem: ${String(maxelem)} must be an integer in ${MAXELEM.min}..${MAXELEM.max}`);
  const target = c.target ?? 'drop';
  if (!FIREWALL_TARGETS.includes(target)) bad(`firewall.target: must be ${FIREWALL_TARGETS.map((t) => `"${t}"`).join(' or ')}`);
  if (c.netns !== undefined && !/^[A-Za-z0-9_.-]{1,64}$/.test(c.netns)) bad(`firewall.netns: ${JSON.stringify(c.netns)} is not a namespace name`);
  const commandTimeoutMs = c.commandTimeoutMs ?? 30_000;
  if (!(commandTimeoutMs > 0)) bad('firewall.commandTimeoutMs must be > 0');
  return {
    backend, prefix, chain, table, maxelem, target, commandTimeoutMs,
    set4: `${prefix}-v4`,
    set6: `${prefix}-v6`,
    ports: ports === 'all' ? 'all' : [...new Set(ports)].sort((a, b) => a - b),
    ipv6: c.ipv6 ?? true,
    netns: c.netns,
  };
}
