// Operator-given ban targets go through the same parser as log lines: an address, or a network
// in CIDR form. A /32 or /128 is the same as the bare address, so both name one ledger entry.
import { isIpv6, parseAddressOrNetwork } from '../parse/ip.js';
import type { Cidr, Ip } from '../types.js';
import { MailjailError } from '../types.js';

export function parseTarget(input: unknown): Ip | Cidr {
  const t = typeof input === 'string' && input.length > 0 && input.length <= 64 ? parseAddressOrNetwork(input) : undefined;
  if (!t) throw new MailjailError('MJ_CTL_BAD_ADDRESS', `not an IP address or CIDR network: ${JSON.stringify(input)}`);
  const slash = t.indexOf('/');
  if (slash >= 0 && Number(t.slice(slash + 1)) < (isIpv6(t) ? 16 : 8)) {
    throw new MailjailError('MJ_CTL_BAD_ADDRESS', `refusing to ban ${t}: prefixes shorter than /8 (IPv4) or /16 (IPv6) are almost certainly a mistake`);
  }
  return t;
}
