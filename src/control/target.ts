// Operator-given ban targets go through the same parser as log lines: an address, or a network
// in CIDR form. A /32 or /128 is the same as the bare address, so both name one ledger entry.
import { isIpv6, parseCidr, parseIp } from '../parse/ip.js';
import type { Cidr, Ip } from '../types.js';
import { MailjailError } from '../types.js';

export function parseTarget(input: unknown): Ip | Cidr {
  if (typeof input !== 'string' || input.length === 0 || input.length > 64) {
    throw new MailjailError('MJ_CTL_BAD_ADDRESS', `not an IP address or CIDR network: ${JSON.stringify(input)}`);
  }
  const ip = parseIp(input);
  if (ip) return ip;
  const net = parseCidr(input);
  if (!net) throw new MailjailError('MJ_CTL_BAD_ADDRESS', `not an IP address or CIDR network: ${JSON.stringify(input)}`);
  const [addr, len] = net.split('/');
  if (len === (isIpv6(net) ? '128' : '32')) return addr as Ip;
  if (Number(len) < (isIpv6(net) ? 16 : 8)) {
    throw new MailjailError('MJ_CTL_BAD_ADDRESS', `refusing to ban ${net}: prefixes shorter than /8 (IPv4) or /16 (IPv6) are almost certainly a mistake`);
  }
  return net;
}
