// Sender allowlist and per-peer counters. The allowlist is checked on the socket's address before
// a single byte is framed; counters are kept per peer address in a map bounded by `maxPeers`
// (oldest peer forgotten first), so a spoofing UDP flood cannot grow memory without bound.
import { cidrContains, parseCidr, parseIp } from '../parse/ip.js';
import { MailjailError, type Cidr, type Ip } from '../types.js';

export function compileAllowlist(allow: readonly string[]): readonly Cidr[] {
  return allow.map((a) => {
    const c = parseCidr(a.includes('/') ? a : `${a}/${a.includes(':') ? 128 : 32}`);
    if (!c) throw new MailjailError('MJ_SRC_CONFIG', `allow: "${a}" is not an address or CIDR`);
    return c;
  });
}

/** The peer's canonical address if it is allowed, else undefined. */
export function allowedPeer(nets: readonly Cidr[], address: string | undefined): Ip | undefined {
  const ip = address === undefined ? undefined : parseIp(address);
  if (!ip) return undefined;
  for (const n of nets) if (cidrContains(n, ip)) return ip;
  return undefined;
}

export interface PeerCounters {
  received: number;
  bytes: number;
  denied: number;
  oversize: number;
  badFrames: number;
  dropped: number;
  connections: number;
}

export const newPeerCounters = (): PeerCounters => ({
  received: 0, bytes: 0, denied: 0, oversize: 0, badFrames: 0, dropped: 0, connections: 0,
});

export class PeerTable {
  private readonly map = new Map<string, PeerCounters>();
  constructor(private readonly maxPeers: number) {}

  get(addr: string): PeerCounters {
    let c = this.map.get(addr);
    if (!c) {
      if (this.map.size >= this.maxPeers) {
        const oldest = this.map.keys().next().value;
        if (oldest !== undefined) this.map.delete(oldest);
      }
      c = newPeerCounters();
      this.map.set(addr, c);
    }
    return c;
  }

  snapshot(): Record<string, PeerCounters> {
    const out: Record<string, PeerCounters> = {};
    for (const [k, v] of this.map) out[k] = { ...v };
    return out;
  }
}
