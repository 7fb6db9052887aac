// ipset + iptables/ip6tables backend (the default).
//
// Layout (prefix "mailjail"):
//   ipset  mailjail-v4 / mailjail-v6   hash:net, family inet/inet6, timeout 0 (per-entry timeouts), maxelem N
//   iptables/ip6tables  chain MAILJAIL:  -m set --match-set mailjail-v4 src -j DROP
//                       INPUT (position 1): -p tcp -m multiport --dports <ports> -m comment --comment mailjail -j MAILJAIL
// Every batch is ONE `ipset restore -exist` fed on stdin; iptables is only touched by ensure/stop.
import type { ApplyReport, BanDecision } from '../types.js';
import type { ResolvedFirewallConfig } from './config.js';
import { codeOf, FirewallError, FW_CODES, makeRunner, type Runner } from './exec.js';
import { report, runAttributed, type FirewallStatus, type KernelFirewall } from './backend.js';
import { keyOf, prepare, timeoutFor, type Item } from './targets.js';

type Fam = 4 | 6;

export interface BackendOptions {
  readonly run?: Runner;
  readonly now?: () => number;
}

interface SetHeader {
  readonly type: string;
  readonly maxelem: number;
  readonly timeout: boolean;
  readonly entries: number;
}

/** Parses `ipset list -t` output. */
export function parseIpsetHeader(text: string): SetHeader {
  const type = /^Type:\s*(\S+)/m.exec(text)?.[1] ?? '';
  const header = /^Header:\s*(.*)$/m.exec(text)?.[1] ?? '';
  const maxelem = Number(/\bmaxelem (\d+)/.exec(header)?.[1] ?? NaN);
  const entries = Number(/^Number of entries:\s*(\d+)/m.exec(text)?.[1] ?? 0);
  return { type, maxelem, timeout: /\btimeout \d+/.test(header), entries };
}

/** Parses `ipset save <set>` output into key → expiry (ms since epoch, 0 = no timeout). */
export function parseIpsetSave(text: string, now: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('add ')) continue;
    const parts = line.split(' ');
    const key = parts[2] === undefined ? undefined : keyOf(parts[2]);
    if (key === undefined) continue;
    const ti = parts.indexOf('timeout');
    const secs = ti > 0 ? Number(parts[ti + 1]) : 0;
    out.set(key, secs > 0 ? now + secs * 1000 : 0);
  }
  return out;
}

/** The `ipset restore` line for one item, or undefined when there is nothing to do (ban already over). */
export function restoreLine(set: string, item: Item, now: number): string | undefined {
  const d = item.decision;
  if (d.action === 'unban') return `del ${set} ${item.target.key}`;
  const t = timeoutFor(d.until, now);
  if (t === undefined) return undefined;
  return `add ${set} ${item.target.key} timeout ${t}`;
}

export class IpsetBackend implements KernelFirewall {
  readonly name = 'ipset';
  private readonly run: Runner;
  private readonly now: () => number;

  constructor(private readonly cfg: ResolvedFirewallConfig, opts: BackendOptions = {}) {
    this.run = opts.run ?? makeRunner({ netns: cfg.netns, timeoutMs: cfg.commandTimeoutMs });
    this.now = opts.now ?? Date.now;
  }

  private fams(): Fam[] {
    return this.cfg.ipv6 ? [4, 6] : [4];
  }

  private set(f: Fam): string {
    return f === 4 ? this.cfg.set4 : this.cfg.set6;
  }

  private tool(f: Fam): string {
    return f === 4 ? 'iptables' : 'ip6tables';
  }

  /** The jump from INPUT, written exactly as `iptables -S` prints it. */
  private hookSpec(): string[] {
    const ports = this.cfg.ports === 'all' ? [] : ['-p', 'tcp', '-m', 'multiport', '--dports', this.cfg.ports.join(',')];
    return [...ports, '-m', 'comment', '--comment', this.cfg.prefix, '-j', this.cfg.chain];
  }

  private ruleSpec(f: Fam): string[] {
    const verdict = this.cfg.target === 'drop' ? ['-j', 'DROP']
      : ['-j', 'REJECT', '--reject-with', f === 4 ? 'icmp-port-unreachable' : 'icmp6-port-unreachable'];
    return ['-m', 'set', '--match-set', this.set(f), 'src', ...verdict];
  }

  async healthcheck(): Promise<void> {
    await this.run('ipset', ['version']);
    await this.run('ipset', ['list', '-n']); // fails with MJ_FW_KERNEL / MJ_FW_PERM without module or privilege
    for (const f of this.fams()) await this.run(this.tool(f), ['-w', '-S', 'INPUT']);
  }

  private async header(set: string): Promise<SetHeader | undefined> {
    try {
      return parseIpsetHeader((await this.run('ipset', ['list', '-t', set])).stdout);
    } catch (e) {
      if (codeOf(e) === FW_CODES.SET_MISSING) return undefined;
      throw e;
    }
  }

  private createArgs(name: string, f: Fam): string[] {
    return ['create', name, 'hash:net', 'family', f === 4 ? 'inet' : 'inet6', 'timeout', '0', 'maxelem', String(this.cfg.maxelem)];
  }

  /** Creates the set, or rebuilds it beside the old one and swaps it in when its parameters changed. */
  private async ensureSet(f: Fam): Promise<void> {
    const set = this.set(f);
    const h = await this.header(set);
    if (!h) {
      await this.run('ipset', this.createArgs(set, f));
      return;
    }
    if (h.type === 'hash:net' && h.timeout && h.maxelem === this.cfg.maxelem) return;
    // Parameters differ (e.g. maxelem raised): fill a new set, then swap: never an empty moment.
    const tmp = `${set}-n`;
    const now = this.now();
    const old = parseIpsetSave((await this.run('ipset', ['save', set])).stdout, now);
    await this.run('ipset', ['destroy', tmp]).catch(() => undefined);
    const lines = [this.createArgs(tmp, f).join(' ')];
    for (const [key, exp] of old) lines.push(`add ${tmp} ${key} timeout ${exp === 0 ? 0 : Math.max(1, Math.ceil((exp - now) / 1000))}`);
    await this.run('ipset', ['restore', '-exist'], lines.join('\n') + '\n');
    await this.run('ipset', ['swap', tmp, set]);
    await this.run('ipset', ['destroy', tmp]);
  }

  private async ensureChain(f: Fam): Promise<void> {
    const ipt = this.tool(f);
    const chain = this.cfg.chain;
    try {
      await this.run(ipt, ['-w', '-S', chain]);
    } catch {
      await this.run(ipt, ['-w', '-N', chain]);
    }
    const rule = this.ruleSpec(f);
    if (!(await this.exists(ipt, chain, rule))) await this.run(ipt, ['-w', '-A', chain, ...rule]);
    // Remove anything else in our chain (an old target, a set renamed), after the new rule is in.
    await this.deleteRules(ipt, chain, () => true, rule.join(' '));
    const hook = this.hookSpec();
    if (!(await this.exists(ipt, 'INPUT', hook))) await this.run(ipt, ['-w', '-I', 'INPUT', '1', ...hook]);
    // Stale jumps to our chain (ports changed): delete after the new one is in place.
    const want = hook.join(' ');
    await this.deleteRules(ipt, 'INPUT', (spec) => spec.endsWith(` -j ${chain}`), want);
  }

  private async exists(ipt: string, chain: string, spec: string[]): Promise<boolean> {
    try {
      await this.run(ipt, ['-w', '-C', chain, ...spec]);
      return true;
    } catch (e) {
      if (codeOf(e) === FW_CODES.MISSING || codeOf(e) === FW_CODES.PERM) throw e;
      return false;
    }
  }

  /**
   * Deletes, by number and last first, the rules of `chain` that are ours (`ours(spec)`, spec as
   * `-S` prints it without "-A CHAIN ") except the first copy of `wanted`. Foreign rules are never touched.
   */
  private async deleteRules(ipt: string, chain: string, ours: (spec: string) => boolean, wanted: string | undefined): Promise<number> {
    const lines = (await this.run(ipt, ['-w', '-S', chain])).stdout.split('\n').filter((l) => l.startsWith(`-A ${chain} `));
    let keptWanted = false;
    const doomed: number[] = [];
    lines.forEach((l, i) => {
      const spec = l.slice(`-A ${chain} `.length);
      if (!ours(spec)) return;
      if (spec === wanted && !keptWanted) { keptWanted = true; return; }
      doomed.push(i + 1);
    });
    for (const n of doomed.reverse()) await this.run(ipt, ['-w', '-D', chain, String(n)]);
    return doomed.length;
  }

  async ensure(): Promise<void> {
    for (const f of this.fams()) await this.ensureSet(f);
    for (const f of this.fams()) await this.ensureChain(f);
  }

  async apply(batch: readonly BanDecision[]): Promise<ApplyReport> {
    const { items, refused } = prepare(batch, { ipv6: this.cfg.ipv6 });
    const now = this.now();
    const lines = new Map<Item, string>();
    const noop: Item[] = [];
    for (const item of items) {
      const line = restoreLine(this.set(item.target.family), item, now);
      if (line === undefined) noop.push(item);
      else lines.set(item, line);
    }
    const todo = [...lines.keys()];
    const { ok, failed } = await runAttributed(
      todo,
      async (rest) => { await this.run('ipset', ['restore', '-exist'], rest.map((i) => lines.get(i)).join('\n') + '\n'); },
      (e, rest) => {
        const m = /Error in line (\d+)/.exec(e instanceof FirewallError ? e.stderr : '');
        const n = m ? Number(m[1]) - 1 : -1;
        return n >= 0 && n < rest.length ? n : undefined;
      },
      // A full set refuses every further add to it; a vanished set every line for it.
      (e, at, rest) => {
        const c = codeOf(e);
        const fam = rest[at]?.target.family;
        if (c !== FW_CODES.SET_FULL && c !== FW_CODES.SET_MISSING) return [];
        return rest.slice(at + 1).filter((i) => i.target.family === fam && (c === FW_CODES.SET_MISSING || i.decision.action === 'ban'));
      },
    );
    return report([...noop, ...ok], failed, refused);
  }

  async list(): Promise<ReadonlyMap<string, number>> {
    const now = this.now();
    const out = new Map<string, number>();
    for (const f of this.fams()) {
      for (const [k, v] of parseIpsetSave((await this.run('ipset', ['save', this.set(f)])).stdout, now)) out.set(k, v);
    }
    return out;
  }

  async status(): Promise<FirewallStatus> {
    let present = true;
    let hooked = true;
    const entries = { v4: 0, v6: 0 };
    for (const f of this.fams()) {
      const h = await this.header(this.set(f));
      if (!h) present = false;
      else if (f === 4) entries.v4 = h.entries;
      else entries.v6 = h.entries;
      if (!(await this.exists(this.tool(f), 'INPUT', this.hookSpec()))) hooked = false;
      else if (!(await this.exists(this.tool(f), this.cfg.chain, this.ruleSpec(f)))) hooked = false;
    }
    return { present, hooked, entries, maxelem: this.cfg.maxelem };
  }

  async stop(opts: { purge?: boolean } = {}): Promise<void> {
    for (const f of this.fams()) {
      const ipt = this.tool(f);
      const chain = this.cfg.chain;
      let haveChain = true;
      try { await this.run(ipt, ['-w', '-S', chain]); } catch { haveChain = false; }
      await this.deleteRules(ipt, 'INPUT', (spec) => spec.endsWith(` -j ${chain}`), undefined);
      if (haveChain) {
        await this.run(ipt, ['-w', '-F', chain]);
        await this.run(ipt, ['-w', '-X', chain]);
      }
    }
    if (opts.purge) {
      for (const f of this.fams()) {
        if (await this.header(this.set(f))) await this.run('ipset', ['destroy', this.set(f)]);
      }
    }
  }
}
