// The only place where a string becomes an `Ip` or a `Cidr`. Everything downstream (state keys,
// ipset/nft input) relies on these being canonical: IPv4 as a plain dotted quad, IPv6 in RFC 5952
// form (lower case, longest zero run compressed), IPv4-mapped IPv6 unmapped to IPv4.
import type { Cidr, Ip } from '../types.js';

const V4 = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;
const HEXGROUP = /^[0-9a-fA-F]{1,4}$/;

/** Parses an IPv4 dotted quad into its 4 octets (no leading zeros: "010.1.1.1" is ambiguous, so refused). */
function v4Octets(s: string): number[] | undefined {
  const m = V4.exec(s);
  if (!m) return undefined;
  return [Number(m[1]), Number(m[2]), Number(m[3]), Number(m[4])];
}

/** Parses an IPv6 text form into 8 16-bit groups, or undefined. Zone ids (`%eth0`) are refused. */
function parseV6Groups(s: string): number[] | undefined {
  if (s.length < 2 || s.length > 45) return undefined;
  let tail: number[] = [];
  let text = s;
  // An embedded IPv4 in the last 32 bits (::ffff:1.2.3.4, 64:ff9b::1.2.3.4).
  const lastColon = text.lastIndexOf(':');
  if (lastColon >= 0 && text.indexOf('.', lastColon) > lastColon) {
    const o = v4Octets(text.slice(lastColon + 1));
    if (!o) return undefined;
    tail = [(o[0]! << 8) | o[1]!, (o[2]! << 8) | o[3]!];
    text = text.slice(0, lastColon + 1); // keep a trailing "::", drop a single trailing ":"
    if (!text.endsWith('::')) text = text.slice(0, -1);
  }
  const want = 8 - tail.length;
  const dbl = text.indexOf('::');
  if (dbl !== text.lastIndexOf('::') && dbl >= 0) return undefined;
  const parseList = (part: string): number[] | undefined => {
    if (part === '') return [];
    const out: number[] = [];
    for (const g of part.split(':')) {
      if (!HEXGROUP.test(g)) return undefined;
      out.push(parseInt(g, 16));
    }
    return out;
  };
  let groups: number[];
  if (dbl >= 0) {
    const head = parseList(text.slice(0, dbl));
    const rest = parseList(text.slice(dbl + 2));
    if (!head || !rest || head.length + rest.length >= want) return undefined;
    groups = [...head, ...new Array<number>(want - head.length - rest.length).fill(0), ...rest];
  } else {
    const all = parseList(text);
    if (!all || all.length !== want) return undefined;
    groups = all;
  }
  return [...groups, ...tail];
}

/** RFC 5952 text for 8 groups: lower case, no leading zeros, the longest run (≥2) of zero groups as "::". */
function formatV6(g: readonly number[]): string {
  let bestAt = -1, bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (g[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && g[j] === 0) j++;
    if (j - i > bestLen) { bestAt = i; bestLen = j - i; }
    i = j;
  }
  const hex = g.map((x) => x.toString(16));
  if (bestAt < 0) return hex.join(':');
  return `${hex.slice(0, bestAt).join(':')}::${hex.slice(bestAt + bestLen).join(':')}`;
}

function isV4Mapped(g: readonly number[]): boolean {
  return g[0] === 0 && g[1] === 0 && g[2] === 0 && g[3] === 0 && g[4] === 0 && g[5] === 0xffff;
}

/**
 * Validates and canonicalises an address. Accepts an optional surrounding `[...]` (as Postfix and
 * Exim print them) and the `IPv6:` prefix of SMTP address literals. Returns undefined for anything else.
 */
export function parseIp(input: string): Ip | undefined {
  let s = input;
  if (s.length > 2 && s.charCodeAt(0) === 0x5b /* [ */ && s.charCodeAt(s.length - 1) === 0x5d) s = s.slice(1, -1);
  if (s.length > 5 && (s.startsWith('IPv6:') || s.startsWith('ipv6:'))) s = s.slice(5);
  if (s.indexOf(':') < 0) {
    // A new string, not `s`: a capture is a slice of the line, which in turn is a slice of the whole
    // 64 KiB chunk it was read in, and an address kept as a state key would keep that chunk alive.
    const o = v4Octets(s);
    return o ? (`${o[0]!}.${o[1]!}.${o[2]!}.${o[3]!}` as Ip) : undefined;
  }
  const g = parseV6Groups(s);
  if (!g) return undefined;
  if (isV4Mapped(g)) return `${g[6]! >> 8}.${g[6]! & 255}.${g[7]! >> 8}.${g[7]! & 255}` as Ip;
  return formatV6(g) as Ip;
}

export function isIpv6(ip: Ip | Cidr): boolean {
  return ip.includes(':');
}

/** Address bytes: 4 for IPv4, 16 for IPv6. */
export function ipBytes(ip: Ip): Uint8Array {
  if (!isIpv6(ip)) return Uint8Array.from(v4Octets(ip)!);
  const g = parseV6Groups(ip)!;
  const b = new Uint8Array(16);
  g.forEach((x, i) => { b[2 * i] = x >> 8; b[2 * i + 1] = x & 255; });
  return b;
}

function bytesToIp(b: Uint8Array): Ip {
  if (b.length === 4) return b.join('.') as Ip;
  const g: number[] = [];
  for (let i = 0; i < 16; i += 2) g.push((b[i]! << 8) | b[i + 1]!);
  return formatV6(g) as Ip;
}

function maskBytes(b: Uint8Array, len: number): Uint8Array {
  const out = Uint8Array.from(b);
  for (let i = 0; i < out.length; i++) {
    const keep = Math.max(0, Math.min(8, len - i * 8));
    out[i] = out[i]! & ((0xff << (8 - keep)) & 0xff);
  }
  return out;
}

/** The network of the given prefix length that holds `ip`, e.g. (2001:db8::1, 64) → "2001:db8::/64". */
export function prefixOf(ip: Ip, len: number): Cidr {
  const max = isIpv6(ip) ? 128 : 32;
  if (!Number.isInteger(len) || len < 0 || len > max) throw new RangeError(`prefix length ${len} out of range for ${ip}`);
  return `${bytesToIp(maskBytes(ipBytes(ip), len))}/${len}` as Cidr;
}

/**
 * Parses "addr/len" or a bare address (→ /32 or /128) into a canonical Cidr with host bits cleared.
 * Returns undefined for anything that is not a valid network.
 */
export function parseCidr(input: string): Cidr | undefined {
  const slash = input.indexOf('/');
  const ip = parseIp(slash < 0 ? input : input.slice(0, slash));
  if (!ip) return undefined;
  const max = isIpv6(ip) ? 128 : 32;
  let len = max;
  if (slash >= 0) {
    const t = input.slice(slash + 1);
    if (!/^\d{1,3}$/.test(t)) return undefined;
    len = Number(t);
    if (len > max) return undefined;
  }
  return prefixOf(ip, len);
}

/** Splits a Cidr into its network address and prefix length. */
export function splitCidr(c: Cidr): { addr: Ip; len: number } {
  const i = c.lastIndexOf('/');
  return { addr: c.slice(0, i) as Ip, len: Number(c.slice(i + 1)) };
}

/** Whether `ip` lies inside `net`. */
export function cidrContains(net: Cidr, ip: Ip): boolean {
  const { addr, len } = splitCidr(net);
  return isIpv6(addr) === isIpv6(ip) && prefixOf(ip, len) === net;
}

/**
 * An address or network the way one ban target is named: a full-length network (/32, /128) is the
 * bare address, anything else its canonical Cidr, so that one target has one spelling (one ledger
 * key, one set entry). Undefined when `input` is neither.
 */
export function parseAddressOrNetwork(input: string): Ip | Cidr | undefined {
  const c = parseCidr(input);
  if (!c) return undefined;
  const { addr, len } = splitCidr(c);
  return len === (isIpv6(addr) ? 128 : 32) ? addr : c;
}

// ── Allocation-free reading of canonical addresses (the state stage's counting keys) ─────────

/**
 * Writes the 128-bit key of `ip` masked to its family's prefix into `key` (4 words): IPv4 as
 * ::ffff:a.b.c.d masked to `ipv4Prefix`, IPv6 as its 16 bytes masked to `ipv6Prefix`, so an IPv6
 * key never equals an IPv4 one (mapped addresses were unmapped when the Ip was minted). `ip` is
 * canonical (minted here), so the text is read without checks and without allocating.
 */
export function loadMaskedKey(key: Uint32Array, ip: Ip, ipv4Prefix: number, ipv6Prefix: number): void {
  if (isIpv6(ip)) {
    v6Groups(ip, GROUPS);
    for (let w = 0; w < 4; w++) {
      const bits = Math.max(0, Math.min(32, ipv6Prefix - w * 32));
      const word = ((GROUPS[w * 2]! << 16) | GROUPS[w * 2 + 1]!) >>> 0;
      key[w] = bits === 0 ? 0 : bits === 32 ? word : (word & (-1 << (32 - bits))) >>> 0;
    }
    return;
  }
  let n = 0, octet = 0;
  for (let i = 0; i < ip.length; i++) {
    const c = ip.charCodeAt(i);
    if (c === 0x2e) { n = (n << 8) | octet; octet = 0; } else octet = octet * 10 + (c - 0x30);
  }
  n = (n << 8) | octet;
  key[0] = 0; key[1] = 0; key[2] = 0xffff;
  key[3] = ipv4Prefix === 32 ? n >>> 0 : (n & (-1 << (32 - ipv4Prefix))) >>> 0;
}

const GROUPS = new Uint16Array(8);

/**
 * Reads the 8 groups of a canonical IPv6 text (as parseIp mints it: RFC 5952, lower-case hex, at
 * most one "::", no embedded dotted quad since mapped addresses are unmapped) without allocating.
 * Equivalence with ipBytes (the validating reader) is property-tested.
 */
export function v6Groups(ip: string, out: Uint16Array): void {
  out.fill(0);
  const dbl = ip.indexOf('::');
  const end = ip.length;
  // Groups before "::" (or all of them) fill from the left.
  let g = 0, v = 0, digits = 0;
  const headEnd = dbl < 0 ? end : dbl;
  for (let i = 0; i < headEnd; i++) {
    const c = ip.charCodeAt(i);
    if (c === 0x3a) { out[g++] = v; v = 0; digits = 0; } else { v = (v << 4) | hex(c); digits++; }
  }
  if (digits > 0 || (dbl < 0 && g < 8)) out[g++] = v;
  if (dbl < 0) return;
  // Groups after "::" fill from the right.
  g = 7; v = 0; digits = 0;
  let shift = 0;
  for (let i = end - 1; i >= dbl + 2; i--) {
    const c = ip.charCodeAt(i);
    if (c === 0x3a) { out[g--] = v; v = 0; shift = 0; digits = 0; } else { v |= hex(c) << shift; shift += 4; digits++; }
  }
  if (digits > 0) out[g] = v;
}

function hex(c: number): number {
  return c <= 0x39 ? c - 0x30 : c - 0x57; // '0'-'9', 'a'-'f'
}
