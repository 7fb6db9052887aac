// nftables backend: one `inet` table holding everything, so removing mailjail is one command.
//
// Layout (prefix "mailjail"):
//   table inet mailjail
//     set v4     { type ipv4_addr; flags timeout; }             single addresses
//     set v6     { type ipv6_addr; flags timeout; }
//     set v4n24  { type ipv4_addr; flags interval, timeout; }   prefixes, one set per length in use
//     set v6n64  { type ipv6_addr; flags interval, timeout; }   (created on first use)
//     chain input { type filter hook input priority filter - 10; policy accept;
//       tcp dport { <ports> } ip saddr @v4 drop    one rule per set }
// An interval set refuses an element overlapping one it holds ("conflicting intervals"). Aligned
// prefixes of ONE length are either equal or disjoint, so with a set per length (and hosts apart)
// no ban can ever conflict with another: a host inside a banned /64, a /48 over a banned /64.
// Every batch is ONE `nft -f -` transaction: atomic, so an updated timeout has no gap.
import type { ApplyReport, BanDecision } from '../types.js';
import type { ResolvedFirewallConfig } from './config.js';
import { codeOf, FirewallError, FW_CODES, makeRunner, type Runner } from './exec.js';
import { report, runAttributed, type FirewallStatus, type KernelFirewall } from './backend.js';
import type { BackendOptions } from './ipset.js';
import { keyOf, prepare, splitKey, timeoutFor, type Item } from './targets.js';

/** Set holding an item: `v4`/`v6` for hosts, `v4n<len>`/`v6n<len>` for prefixes. */
export function setOf(item: Item): string {
  return `v${item.target.family}` + (item.target.net ? `n${splitKey(item.target.key).len}` : '');
}

const OUR_SET = /^v[46](n\d{1,3})?$/;

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

function elemsOf(elems: Json | undefined): NftElem[] {
  const out: NftElem[] = [];
  if (!Array.isArray(elems)) return out;
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
  return out;
}

function collectRefs(j: Json | undefined, into: Set<string>): void {
  if (typeof j === 'string') { if (j.startsWith('@')) into.add(j.slice(1)); return; }
  if (Array.isArray(j)) { for (const x of j) collectRefs(x, into); return; }
  if (j && typeof j === 'object') for (const v of Object.values(j)) collectRefs(v, into);
}

export interface NftTable {
  /** Our sets (v4, v6, v4n24, ...) with their elements. */
  readonly sets: Map<string, NftElem[]>;
  /** Whether `chain input` exists with an input hook. */
  readonly hooked: boolean;
  /** Sets referenced by the rules of `chain input`. */
  readonly referenced: Set<string>;
}

/** Parses `nft -j list table inet <t>` (or `nft -j list set ...`) output. */
export function parseNftJson(text: string): NftTable {
  const doc = JSON.parse(text) as { nftables?: Json[] };
  const sets = new Map<string, NftElem[]>();
  const referenced = new Set<string>();
  let hooked = false;
  for (const o of doc.nftables ?? []) {
    if (!o || typeof o !== 'object' || Array.isArray(o)) continue;
    const set = o['set'];
    if (set && typeof set === 'object' && !Array.isArray(set) && typeof set['name'] === 'string' && OUR_SET.test(set['name'])) {
      sets.set(set['name'], elemsOf(set['elem']));
    }
    const chain = o['chain'];
    if (chain && typeof chain === 'object' && !Array.isArray(chain) && chain['name'] === 'input' && chain['hook'] === 'input') hooked = true;
    const rule = o['rule'];
    if (rule && typeof rule === 'object' && !Array.isArray(rule) && rule['chain'] === 'input') collectRefs(rule['expr'], referenced);
  }
  return { sets, hooked, referenced };
}

export class NftBackend implements KernelFirewall {
  readonly name = 'nftables';
  private readonly run: Runner;
  private readonly now: () => number;
  /** Prefix sets known to exist with their rule (filled by ensure and by apply). */
  private readonly nets = new Set<string>();

  constructor(private readonly cfg: ResolvedFirewallConfig, opts: BackendOptions = {}) {
    this.run = opts.run ?? makeRunner({ netns: cfg.netns, timeoutMs: cfg.commandTimeoutMs });
    this.now = opts.now ?? Date.now;
  }

  private get t(): string {
    return `inet ${this.cfg.table}`;
  }

  private setDecl(name: string): string {
    const type = name.startsWith('v4') ? 'ipv4_addr' : 'ipv6_addr';
    const flags = name.includes('n') ? 'interval, timeout' : 'timeout';
    return `add set ${this.t} ${name} { type ${type}; flags ${flags}; size ${this.cfg.maxelem}; }`;
  }

  private ruleFor(name: string): string {
    const ports = this.cfg.ports === 'all' ? '' : `tcp dport { ${this.cfg.ports.join(', ')} } `;
    const verdict = this.cfg.target === 'drop' ? 'drop' : 'reject';
    return `add rule ${this.t} input ${ports}${name.startsWith('v4') ? 'ip' : 'ip6'} saddr @${name} ${verdict}`;
  }

  private hostSets(): string[] {
    return this.cfg.ipv6 ? ['v4', 'v6'] : ['v4'];
  }

  /**
   * The nft script that creates (idempotently) the table, sets and chain, and rewrites the
   * chain's rules in the same transaction (so there is no moment without them).
   */
  ensureScript(nets: Iterable<string> = []): string {
    const names = [...this.hostSets(), ...[...nets].filter((n) => this.cfg.ipv6 || n.startsWith('v4')).sort()];
    const lines = [
      `add table ${this.t}`,
      ...names.map((n) => this.setDecl(n)),
      `add chain ${this.t} input { type filter hook input priority filter - 10; policy accept; }`,
      `flush chain ${this.t} input`,
      ...names.map((n) => this.ruleFor(n)),
    ];
    return lines.join('\n') + '\n';
  }

  async healthcheck(): Promise<void> {
    await this.run('nft', ['--version']);
    await this.run('nft', ['list', 'tables']); // MJ_FW_PERM / MJ_FW_KERNEL without privilege or nf_tables
  }

  /** Our table as the kernel holds it, or undefined when it does not exist. */
  private async table(): Promise<NftTable | undefined> {
    try {
      return parseNftJson((await this.run('nft', ['-j', 'list', 'table', 'inet', this.cfg.table])).stdout);
    } catch (e) {
      if (codeOf(e) === FW_CODES.SET_MISSING) return undefined;
      throw e;
    }
  }

  async ensure(): Promise<void> {
    const have = await this.table();
    const nets = [...(have?.sets.keys() ?? [])].filter((n) => n.includes('n'));
    await this.run('nft', ['-f', '-'], this.ensureScript(nets));
    this.nets.clear();
    for (const n of nets) this.nets.add(n);
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
    const bySet = new Map<string, Item[]>();
    for (const i of items) {
      const name = setOf(i);
      const list = bySet.get(name);
      if (list) list.push(i);
      else bySet.set(name, [i]);
    }
    const lines: string[] = [];
    for (const [name, mine] of bySet) {
      const keys = mine.map((i) => i.target.key).join(', ');
      lines.push(`add element ${this.t} ${name} { ${keys} }`, `delete element ${this.t} ${name} { ${keys} }`);
      const adds = mine.map(el).filter((x): x is string => x !== undefined);
      if (adds.length > 0) lines.push(`add element ${this.t} ${name} { ${adds.join(', ')} }`);
    }
    return lines.join('\n') + '\n';
  }

  async apply(batch: readonly BanDecision[]): Promise<ApplyReport> {
    const { items: todo, refused } = prepare(batch, { ipv6: this.cfg.ipv6 });
    if (todo.length === 0) return report([], [], refused);
    try {
      // A prefix length seen for the first time gets its set and rule first.
      const fresh = [...new Set(todo.filter((i) => i.target.net).map(setOf))].filter((n) => !this.nets.has(n));
      if (fresh.length > 0) {
        await this.run('nft', ['-f', '-'], fresh.flatMap((n) => [this.setDecl(n), this.ruleFor(n)]).join('\n') + '\n');
        for (const n of fresh) this.nets.add(n);
      }
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

  async list(): Promise<ReadonlyMap<string, number>> {
    const now = this.now();
    const tab = await this.table();
    if (!tab) throw new FirewallError(FW_CODES.SET_MISSING, `table ${this.t} does not exist`, `nft -j list table ${this.t}`, '');
    const out = new Map<string, number>();
    for (const [name, elems] of tab.sets) {
      if (!this.cfg.ipv6 && name.startsWith('v6')) continue;
      for (const e of elems) out.set(e.key, e.expiresS === undefined ? 0 : now + e.expiresS * 1000);
    }
    return out;
  }

  async status(): Promise<FirewallStatus> {
    const tab = await this.table();
    const entries = { v4: 0, v6: 0 };
    const held = { v4: 0, v6: 0 };
    if (!tab) return { present: false, hooked: false, entries, held, maxelem: this.cfg.maxelem };
    // Each set has its own capacity: report the fullest set of each family.
    for (const [name, elems] of tab.sets) {
      const f = name.startsWith('v4') ? 'v4' : 'v6';
      entries[f] = Math.max(entries[f], elems.length);
      held[f] += elems.length;
    }
    const present = this.hostSets().every((n) => tab.sets.has(n)) && [...this.nets].every((n) => tab.sets.has(n));
    const wanted = [...tab.sets.keys()].filter((n) => this.cfg.ipv6 || n.startsWith('v4'));
    const hooked = tab.hooked && wanted.every((n) => tab.referenced.has(n));
    return { present, hooked, entries, held, maxelem: this.cfg.maxelem };
  }

  async stop(opts: { purge?: boolean } = {}): Promise<void> {
    const tab = await this.table();
    if (!tab) return;
    if (opts.purge) {
      await this.run('nft', ['delete', 'table', 'inet', this.cfg.table]);
      this.nets.clear();
      return;
    }
    if (tab.hooked) await this.run('nft', ['delete', 'chain', 'inet', this.cfg.table, 'input']);
  }
}
