// nftables backend: one `inet` table holding everything, so removing mailjail is one command.
//
// Layout (prefix "mailjail"):
//   table inet mailjail
//     set v4    { type ipv4_addr; flags timeout; }            single addresses
//     set v6    { type ipv6_addr; flags timeout; }
//     set v4net { type ipv4_addr; flags interval, timeout; }  prefixes (e.g. 203.0.113.0/24)
//     set v6net { type ipv6_addr; flags interval, timeout; }  prefixes (e.g. 2001:db8::/64)
//     chain input { type filter hook input priority filter - 10; policy accept;
//       tcp dport { <ports> } ip saddr @v4 drop   (and @v4net, ip6 saddr @v6 / @v6net) }
// Addresses and prefixes live in separate sets because an interval set refuses an address that
// overlaps a banned prefix ("conflicting intervals"): a host inside a banned /64 must still be storable.
// Every batch is ONE `nft -f -` transaction: atomic, so an updated timeout has no gap.
import type { ApplyReport, BanDecision } from '../types.js';
import type { ResolvedFirewallConfig } from './config.js';
import { codeOf, FirewallError, FW_CODES, makeRunner, type Runner } from './exec.js';
import { report, runAttributed, type FirewallStatus, type KernelFirewall } from './backend.js';
import type { BackendOptions } from './ipset.js';
import { keyOf, prepare, timeoutFor, type Item } from './targets.js';

type SetName = 'v4' | 'v6' | 'v4net' | 'v6net';
const SETS: readonly SetName[] = ['v4', 'v6', 'v4net', 'v6net'];

function setOf(item: Item): SetName {
  return `v${item.target.family}${item.target.net ? 'net' : ''}` as SetName;
}

interface NftElem {
  readonly key: string;
  readonly expiresS: number | undefined;
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };

function valText(v: Json | undefined): string | undefined {
  if (typeof v === 'string') return v;
  if (v && typeof v === 'object' && !Array.isArray(v)) {
    const p = v['prefix'];
    if (p && typeof p === 'object' && !Array.isArray(p) && typeof p['addr'] === 'string' && typeof p['len'] === 'number') return `${p['addr']}/${p['len']}`;
  }
  return undefined;
}

/** Parses `nft -j list set ...` output into elements. */
export function parseNftSetJson(text: string): NftElem[] {
  const doc = JSON.parse(text) as { nftables?: Json[] };
  const out: NftElem[] = [];
  for (const o of doc.nftables ?? []) {
    if (!o || typeof o !== 'object' || Array.isArray(o)) continue;
    const set = o['set'];
    if (!set || typeof set !== 'object' || Array.isArray(set)) continue;
    const elems = set['elem'];
    if (!Array.isArray(elems)) continue;
    for (const e of elems) {
      let val: Json | undefined = e;
      let expiresS: number | undefined;
      if (e && typeof e === 'object' && !Array.isArray(e) && 'elem' in e) {
        const inner = e['elem'];
        if (inner && typeof inner === 'object' && !Array.isArray(inner)) {
          val = inner['val'];
          if (typeof inner['expires'] === 'number') expiresS = inner['expires'];
          else if (typeof inner['timeout'] === 'number') expiresS = inner['timeout'];
        }
      }
      const t = valText(val);
      const key = t === undefined ? undefined : keyOf(t);
      if (key !== undefined) out.push({ key, expiresS });
    }
  }
  return out;
}

export class NftBackend implements KernelFirewall {
  readonly name = 'nftables';
  private readonly run: Runner;
  private readonly now: () => number;

  constructor(private readonly cfg: ResolvedFirewallConfig, opts: BackendOptions = {}) {
    this.run = opts.run ?? makeRunner({ netns: cfg.netns, timeoutMs: cfg.commandTimeoutMs });
    this.now = opts.now ?? Date.now;
  }

  private get t(): string {
    return `inet ${this.cfg.table}`;
  }

  /** The nft script that creates (idempotently) the table, sets and chain, and rewrites the chain's rules atomically. */
  ensureScript(): string {
    const { maxelem } = this.cfg;
    const ports = this.cfg.ports === 'all' ? '' : `tcp dport { ${this.cfg.ports.join(', ')} } `;
    const verdict = this.cfg.target === 'drop' ? 'drop' : 'reject';
    const lines = [
      `add table ${this.t}`,
      `add set ${this.t} v4 { type ipv4_addr; flags timeout; size ${maxelem}; }`,
      `add set ${this.t} v6 { type ipv6_addr; flags timeout; size ${maxelem}; }`,
      `add set ${this.t} v4net { type ipv4_addr; flags interval, timeout; size ${maxelem}; }`,
      `add set ${this.t} v6net { type ipv6_addr; flags interval, timeout; size ${maxelem}; }`,
      `add chain ${this.t} input { type filter hook input priority filter - 10; policy accept; }`,
      `flush chain ${this.t} input`,
      `add rule ${this.t} input ${ports}ip saddr @v4 ${verdict}`,
      `add rule ${this.t} input ${ports}ip saddr @v4net ${verdict}`,
    ];
    if (this.cfg.ipv6) {
      lines.push(`add rule ${this.t} input ${ports}ip6 saddr @v6 ${verdict}`, `add rule ${this.t} input ${ports}ip6 saddr @v6net ${verdict}`);
    }
    return lines.join('\n') + '\n';
  }

  async healthcheck(): Promise<void> {
    await this.run('nft', ['--version']);
    await this.run('nft', ['list', 'tables']); // MJ_FW_PERM / MJ_FW_KERNEL without privilege or nf_tables
  }

  async ensure(): Promise<void> {
    await this.run('nft', ['-f', '-'], this.ensureScript());
  }

  /**
   * The transaction for a batch. Grouped (fast path): per set, `add` every element (so the
   * `delete` that follows cannot fail on a missing one), `delete` them, then `add` the bans with
   * their timeouts; an existing element's timeout is replaced without a gap since the whole
   * script commits at once. Per-line (fallback): the same three steps on one line per item, so
   * an error's line number names the item.
   */
  batchScript(items: readonly Item[], perLine: boolean): string {
    const now = this.now();
    const el = (item: Item): string | undefined => {
      const d = item.decision;
      if (d.action !== 'ban') return undefined;
      const t = timeoutFor(d.until, now);
      return t === undefined ? undefined : t === 0 ? item.target.key : `${item.target.key} timeout ${t}s`;
    };
    if (perLine) {
      return items.map((i) => {
        const s = `${this.t} ${setOf(i)}`;
        const add = el(i);
        return `add element ${s} { ${i.target.key} }; delete element ${s} { ${i.target.key} }` + (add ? `; add element ${s} { ${add} }` : '');
      }).join('\n') + '\n';
    }
    const lines: string[] = [];
    for (const name of SETS) {
      const mine = items.filter((i) => setOf(i) === name);
      if (mine.length === 0) continue;
      const keys = mine.map((i) => i.target.key).join(', ');
      lines.push(`add element ${this.t} ${name} { ${keys} }`, `delete element ${this.t} ${name} { ${keys} }`);
      const adds = mine.map(el).filter((x): x is string => x !== undefined);
      if (adds.length > 0) lines.push(`add element ${this.t} ${name} { ${adds.join(', ')} }`);
    }
    return lines.join('\n') + '\n';
  }

  async apply(batch: readonly BanDecision[]): Promise<ApplyReport> {
    const { items, refused } = prepare(batch);
    const todo: Item[] = [];
    for (const item of items) {
      if (item.target.family === 6 && !this.cfg.ipv6) {
        refused.push(...item.all.map((decision) => ({ decision, error: new FirewallError(FW_CODES.TARGET, `IPv6 is disabled in the firewall config: ${item.target.key}`, '(none)', '') })));
      } else todo.push(item);
    }
    if (todo.length === 0) return report([], [], refused);
    try {
      await this.run('nft', ['-f', '-'], this.batchScript(todo, false));
      return report(todo, [], refused);
    } catch (e) {
      // The transaction was rolled back as a whole: retry item by item to find the culprit(s).
      if (codeOf(e) === FW_CODES.MISSING || codeOf(e) === FW_CODES.PERM || codeOf(e) === FW_CODES.SET_MISSING) {
        return report([], todo.map((item) => ({ item, error: e as Error })), refused);
      }
    }
    const { ok, failed } = await runAttributed(
      todo,
      async (rest) => { await this.run('nft', ['-f', '-'], this.batchScript(rest, true)); },
      (e, rest) => {
        const m = /^[^\n:]*:(\d+):\d+/m.exec(e instanceof FirewallError ? e.stderr : '');
        const n = m ? Number(m[1]) - 1 : -1;
        return n >= 0 && n < rest.length ? n : undefined;
      },
      (e, at, rest) => {
        const bad = rest[at];
        if (codeOf(e) !== FW_CODES.SET_FULL || !bad) return [];
        return rest.slice(at + 1).filter((i) => setOf(i) === setOf(bad) && i.decision.action === 'ban');
      },
    );
    return report(ok, failed, refused);
  }

  private async listSet(name: SetName): Promise<NftElem[]> {
    return parseNftSetJson((await this.run('nft', ['-j', 'list', 'set', 'inet', this.cfg.table, name])).stdout);
  }

  async list(): Promise<ReadonlyMap<string, number>> {
    const now = this.now();
    const out = new Map<string, number>();
    for (const name of SETS) {
      if (!this.cfg.ipv6 && name.startsWith('v6')) continue;
      for (const e of await this.listSet(name)) out.set(e.key, e.expiresS === undefined ? 0 : now + e.expiresS * 1000);
    }
    return out;
  }

  async status(): Promise<FirewallStatus> {
    const entries = { v4: 0, v6: 0 };
    let present = true;
    for (const name of SETS) {
      try {
        const n = (await this.listSet(name)).length;
        if (name.startsWith('v4')) entries.v4 += n;
        else entries.v6 += n;
      } catch (e) {
        if (codeOf(e) !== FW_CODES.SET_MISSING) throw e;
        present = false;
      }
    }
    let hooked = true;
    try {
      const chain = (await this.run('nft', ['list', 'chain', 'inet', this.cfg.table, 'input'])).stdout;
      hooked = chain.includes('hook input') && chain.includes('@v4');
    } catch (e) {
      if (codeOf(e) !== FW_CODES.SET_MISSING && codeOf(e) !== FW_CODES.EXEC) throw e;
      hooked = false;
    }
    return { present, hooked, entries, maxelem: this.cfg.maxelem };
  }

  async stop(opts: { purge?: boolean } = {}): Promise<void> {
    const tables = (await this.run('nft', ['list', 'tables'])).stdout;
    if (!tables.split('\n').some((l) => l.trim() === `table ${this.t}`)) return;
    if (opts.purge) {
      await this.run('nft', ['delete', 'table', 'inet', this.cfg.table]);
      return;
    }
    const chains = (await this.run('nft', ['list', 'table', 'inet', this.cfg.table])).stdout;
    if (/\bchain input\b/.test(chains)) await this.run('nft', ['delete', 'chain', 'inet', this.cfg.table, 'input']);
  }
}
