// Addresses that are never banned: configured CIDRs and host names, the machine's own addresses and
// loopback. Lookup is by prefix sets (one Set per family and prefix length in use), so a check costs
// one `prefixOf` per distinct length, not one per entry.
import { lookup } from 'node:dns/promises';
import { networkInterfaces } from 'node:os';
import { cidrContains, isIpv6, parseCidr, parseIp, prefixOf, splitCidr } from '../parse/ip.js';
import { MailjailError } from '../types.js';
import type { Cidr, Ip } from '../types.js';

const LOOPBACK = ['127.0.0.0/8', '::1/128'];

export class Allowlist {
  readonly entries: readonly Cidr[];
  /** "4/len" or "6/len" → networks of that length. */
  private readonly byLen = new Map<string, Set<string>>();
  private readonly lens4: number[] = [];
  private readonly lens6: number[] = [];

  constructor(entries: readonly Cidr[]) {
    this.entries = [...new Set(entries)];
    for (const c of this.entries) {
      const { addr, len } = splitCidr(c);
      const v6 = isIpv6(addr);
      const k = `${v6 ? 6 : 4}/${len}`;
      let set = this.byLen.get(k);
      if (!set) {
        set = new Set();
        this.byLen.set(k, set);
        (v6 ? this.lens6 : this.lens4).push(len);
      }
      set.add(c);
    }
  }

  contains(ip: Ip): boolean {
    const v6 = isIpv6(ip);
    for (const len of v6 ? this.lens6 : this.lens4) {
      if (this.byLen.get(`${v6 ? 6 : 4}/${len}`)!.has(prefixOf(ip, len))) return true;
    }
    return false;
  }

  /** Whether any allowlisted address lies inside `net` (or `net` inside an allowlisted network). */
  overlaps(net: Cidr): boolean {
    const { addr, len } = splitCidr(net);
    if (this.contains(addr)) return true;
    for (const e of this.entries) {
      const inner = splitCidr(e);
      if (inner.len >= len && cidrContains(net, inner.addr)) return true;
    }
    return false;
  }
}

export interface AllowlistSpec {
  /** CIDRs, bare addresses or host names. */
  readonly entries: readonly string[];
  /** Add the machine's own addresses and loopback (default true). */
  readonly self?: boolean;
}

/** The machine's own addresses (every interface) and loopback, as CIDRs. */
export function selfAddresses(): Cidr[] {
  const out: Cidr[] = LOOPBACK.map((c) => parseCidr(c)!);
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) {
      const c = parseCidr(a.address.split('%')[0]!);
      if (c) out.push(c);
    }
  }
  return out;
}

/**
 * Builds the allowlist at load or reload: host names are resolved now (all their addresses, v4 and
 * v6); a name that does not resolve is an error (MJ_STATE_ALLOW_DNS) so a typo cannot silently
 * leave an admin unprotected. Entries are validated only through parse/ip.
 */
export async function loadAllowlist(spec: AllowlistSpec, resolve: (host: string) => Promise<string[]> = defaultResolve): Promise<Allowlist> {
  const out: Cidr[] = spec.self === false ? [] : selfAddresses();
  for (const raw of spec.entries) {
    const e = raw.trim();
    const c = parseCidr(e);
    if (c) {
      out.push(c);
      continue;
    }
    if (e.includes('/') || !/^[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]*[A-Za-z0-9])?)*\.?$/.test(e)) {
      throw new MailjailError('MJ_STATE_ALLOW_ENTRY', `allowlist entry "${e}" is neither an address, a CIDR nor a host name`);
    }
    let addrs: string[];
    try {
      addrs = await resolve(e);
    } catch (err) {
      throw new MailjailError('MJ_STATE_ALLOW_DNS', `allowlist host "${e}" does not resolve`, { cause: err });
    }
    for (const a of addrs) {
      const ip = parseIp(a);
      if (ip) out.push(prefixOf(ip, isIpv6(ip) ? 128 : 32));
    }
  }
  return new Allowlist(out);
}

async function defaultResolve(host: string): Promise<string[]> {
  return (await lookup(host, { all: true, verbatim: true })).map((r) => r.address);
}
