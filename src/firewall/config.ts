// Firewall configuration: what the daemon reads from its config file, with defaults, and the
// kernel object names derived from it. Names are configurable so that tests (in namespaces) and
// a production instance never touch each other's sets.
import { MailjailError } from '../types.js';

export type FirewallBackendName = 'ipset' | 'nftables' | 'dry-run';

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
  readonly target?: 'drop' | 'reject';
  /** Whether to install IPv6 rules too (default true). */
  readonly ipv6?: boolean;
  /** Run every command inside this network namespace (`ip netns exec <netns> ...`); tests and containers. */
  readonly netns?: string;
  /** Per-command timeout in ms (default 30000). */
  readonly commandTimeoutMs?: number;
}

/** The default ports: SMTP, SMTPS, submission, POP3, POP3S, IMAP, IMAPS, ManageSieve. */
export const MAIL_PORTS: readonly number[] = [25, 465, 587, 110, 995, 143, 993, 4190];

export interface ResolvedFirewallConfig {
  readonly backend: FirewallBackendName;
  readonly prefix: string;
  readonly set4: string;
  readonly set6: string;
  readonly chain: string;
  readonly table: string;
  readonly ports: readonly number[] | 'all';
  readonly maxelem: number;
  readonly target: 'drop' | 'reject';
  readonly ipv6: boolean;
  readonly netns: string | undefined;
  readonly commandTimeoutMs: number;
}

// ipset names are at most 31 chars, iptables chains 28; keep to a safe alphabet so a name can
// never be read as an option or a keyword by the tools.
const NAME = /^[A-Za-z][A-Za-z0-9_-]{0,23}$/;

function bad(msg: string): never {
  throw new MailjailError('MJ_FW_CONFIG', msg);
}

/** Fills defaults and validates; throws MJ_FW_CONFIG naming the bad field. */
export function resolveFirewallConfig(c: FirewallConfig = {}): ResolvedFirewallConfig {
  const backend = c.backend ?? 'ipset';
  if (!['ipset', 'nftables', 'dry-run'].includes(backend)) bad(`firewall.backend: unknown backend ${JSON.stringify(backend)}`);
  const prefix = c.prefix ?? 'mailjail';
  if (!NAME.test(prefix)) bad(`firewall.prefix: ${JSON.stringify(prefix)} must match ${NAME.source}`);
  const chain = c.chain ?? prefix.toUpperCase();
  if (!NAME.test(chain)) bad(`firewall.chain: ${JSON.stringify(chain)} must match ${NAME.source}`);
  const table = c.table ?? prefix;
  if (!NAME.test(table)) bad(`firewall.table: ${JSON.stringify(table)} must match ${NAME.source}`);
  const ports = c.ports ?? MAIL_PORTS;
  if (ports !== 'all') {
    if (!Array.isArray(ports) || ports.length === 0) bad('firewall.ports: give a non-empty list of ports or "all"');
    // iptables' multiport match takes at most 15 ports.
    if (ports.length > 15) bad('firewall.ports: at most 15 ports (iptables multiport limit); use "all" instead');
    for (const p of ports) if (!Number.isInteger(p) || p < 1 || p > 65535) bad(`firewall.ports: ${String(p)} is not a port`);
  }
  const maxelem = c.maxelem ?? 65536;
  if (!Number.isInteger(maxelem) || maxelem < 16 || maxelem > 16_777_216) bad(`firewall.maxelem: ${String(maxelem)} must be an integer in 16..16777216`);
  const target = c.target ?? 'drop';
  if (target !== 'drop' && target !== 'reject') bad(`firewall.target: must be "drop" or "reject"`);
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
