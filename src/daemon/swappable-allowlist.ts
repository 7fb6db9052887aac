// The decider takes its allowlist once, at construction; a reload must change the allowlist
// without a new decider (that would drop every counter). This stand-in forwards to the current
// list and lets the daemon swap it.
import { Allowlist } from '../state/allowlist.js';
import type { Cidr, Ip } from '../types.js';

export class SwappableAllowlist extends Allowlist {
  constructor(private current: Allowlist) {
    super([]);
  }

  swap(next: Allowlist): void {
    this.current = next;
  }

  get size(): number {
    return this.current.entries.length;
  }

  override contains(ip: Ip): boolean {
    return this.current.contains(ip);
  }

  override overlaps(net: Cidr): boolean {
    return this.current.overlaps(net);
  }
}
