// End to end on a real kernel: an "attacker" namespace and a "protected" one joined by a veth
// pair (IPv4 192.0.2.0/24 and IPv6 2001:db8::/64, documentation ranges). A TCP connect to the
// protected listener works, is dropped once banned, and works again after unban and after the
// kernel's own timeout expiry. Run for each kernel backend.
import assert from 'node:assert/strict';
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import { test, type TestContext } from 'node:test';
import { execFileSync } from 'node:child_process';
import { resolveFirewallConfig } from '../../src/firewall/config.js';
import { IpsetBackend } from '../../src/firewall/ipset.js';
import { NftBackend } from '../../src/firewall/nft.js';
import type { KernelFirewall } from '../../src/firewall/backend.js';
import type { Cidr, Ip } from '../../src/types.js';
import { ban, unban } from './conformance.js';
import { waitFor } from '../helpers/wait.js';
import { addNetnsAll, delNetns, kernelSkipReason } from './netns.js';

const A4 = '192.0.2.1' as Ip, P4 = '192.0.2.2';
const A6 = '2001:db8::1' as Ip, P6 = '2001:db8::2';

// Listens on a mail port (25) and a port outside the banned list (8080), on :: (dual stack).
// A client that gave up may reset its connection: ignore socket errors so the listener never dies.
const LISTENER = `const net=require('net');let n=0;for(const port of [25,8080]){net.createServer(c=>{c.on('error',()=>{});c.end('hi\\n')}).listen({port,host:'::'},()=>{if(++n===2)console.log('ready')})}`;
// Reads "id host port" lines, answers "id ok|timeout|error CODE" for each (probes run concurrently).
// The 1 s connect timeout is far above a local connect, even on a loaded CI machine.
const PROBER = `const net=require('net');require('readline').createInterface({input:process.stdin}).on('line',l=>{const[id,h,p]=l.split(' ');const s=net.connect({host:h,port:+p});let d=false;const fin=r=>{if(d)return;d=true;s.destroy();console.log(id+' '+r)};s.setTimeout(1000,()=>fin('timeout'));s.on('data',()=>fin('ok'));s.on('error',e=>fin('error '+e.code))})`;

interface Lab {
  readonly attacker: string;
  readonly protectedNs: string;
  probe(host: string, port: number): Promise<string>;
  close(): void;
}

async function makeLab(): Promise<Lab> {
  const [attacker, protectedNs] = addNetnsAll(['a-', 'p-']);
  const kids: ChildProcessWithoutNullStreams[] = [];
  const close = (): void => {
    for (const k of kids) k.kill('SIGKILL');
    delNetns(attacker);
    delNetns(protectedNs);
  };
  try {
    const ip = (...a: string[]): void => { execFileSync('ip', a, { stdio: ['ignore', 'ignore', 'pipe'] }); };
    ip('-n', attacker, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'vp', 'netns', protectedNs);
    ip('-n', attacker, 'addr', 'add', `${A4}/24`, 'dev', 'va');
    ip('-n', attacker, 'addr', 'add', `${A6}/64`, 'dev', 'va', 'nodad');
    ip('-n', protectedNs, 'addr', 'add', `${P4}/24`, 'dev', 'vp');
    ip('-n', protectedNs, 'addr', 'add', `${P6}/64`, 'dev', 'vp', 'nodad');
    ip('-n', attacker, 'link', 'set', 'va', 'up');
    ip('-n', protectedNs, 'link', 'set', 'vp', 'up');
    const listener = spawn('ip', ['netns', 'exec', protectedNs, process.execPath, '-e', LISTENER]);
    kids.push(listener);
    const ready = createInterface({ input: listener.stdout });
    const [line] = (await Promise.race([once(ready, 'line'), new Promise((_, rej) => setTimeout(() => rej(new Error('listener did not start')), 20_000))])) as string[];
    assert.equal(line, 'ready');
    const prober = spawn('ip', ['netns', 'exec', attacker, process.execPath, '-e', PROBER]);
    kids.push(prober);
    const answers = createInterface({ input: prober.stdout });
    const waiting = new Map<string, (s: string) => void>();
    let seq = 0;
    answers.on('line', (l) => {
      const sp = l.indexOf(' ');
      const id = l.slice(0, sp);
      waiting.get(id)?.(l.slice(sp + 1));
      waiting.delete(id);
    });
    const probe = (host: string, port: number): Promise<string> => new Promise((resolve) => {
      const id = String(++seq);
      waiting.set(id, resolve);
      prober.stdin.write(`${id} ${host} ${port}\n`);
    });
    // Wait for the link to carry both families (IPv6 neighbour discovery needs a moment after "up").
    const deadline = Date.now() + 20_000;
    while ((await probe(P4, 25)) !== 'ok' || (await probe(P6, 25)) !== 'ok') {
      if (Date.now() > deadline) throw new Error('veth link never carried v4+v6 traffic');
    }
    return { attacker, protectedNs, probe, close };
  } catch (e) {
    close();
    throw e;
  }
}

async function scenario(t: TestContext, make: (ns: string, maxelem?: number) => KernelFirewall): Promise<void> {
  const lab = await makeLab();
  try {
    const fw = make(lab.protectedNs);
    await fw.healthcheck();
    await fw.ensure();
    const both = (): Promise<string[]> => Promise.all([lab.probe(P4, 25), lab.probe(P6, 25)]);

    await t.test('reachable before any ban (v4 and v6)', async () => {
      assert.deepEqual(await both(), ['ok', 'ok']);
    });
    await t.test('banned: mail port dropped (v4 and v6), other port still open', async () => {
      const rep = await fw.apply([ban(A4, Date.now() + 60_000), ban(A6, Date.now() + 60_000)]);
      assert.deepEqual(rep.failed, []);
      assert.deepEqual(await Promise.all([lab.probe(P4, 25), lab.probe(P6, 25), lab.probe(P4, 8080), lab.probe(P6, 8080)]), ['timeout', 'timeout', 'ok', 'ok']);
    });
    await t.test('raising maxelem while banned (set rebuilt and swapped in) keeps dropping', async () => {
      const bigger = make(lab.protectedNs, 131_072);
      await bigger.ensure();
      assert.equal((await bigger.status()).maxelem, 131_072);
      assert.deepEqual(await both(), ['timeout', 'timeout']);
    });
    await t.test('unbanned: reachable again', async () => {
      await fw.apply([unban(A4), unban(A6)]);
      assert.deepEqual(await both(), ['ok', 'ok']);
    });
    await t.test('prefix bans (/24, /64) drop the addresses inside', async () => {
      await fw.apply([ban('192.0.2.0/24' as Cidr, Date.now() + 60_000), ban('2001:db8::/64' as Cidr, Date.now() + 60_000)]);
      assert.deepEqual(await both(), ['timeout', 'timeout']);
      await fw.apply([unban('192.0.2.0/24' as Cidr), unban('2001:db8::/64' as Cidr)]);
      assert.deepEqual(await both(), ['ok', 'ok']);
    });
    await t.test('kernel timeout expiry lifts the ban by itself', async () => {
      const until = Date.now() + 1500;
      await fw.apply([ban(A4, until), ban(A6, until)]);
      assert.deepEqual(await both(), ['timeout', 'timeout']); // takes ~1 s of the 1.5
      // The kernel holds whole seconds (here 2 s): poll until both get through again.
      let seen: string[] = [];
      await waitFor(async () => (seen = await both()).join() === 'ok,ok',
        { timeoutMs: Math.max(0, until - Date.now()) + 15_000, intervalMs: 100, what: 'the kernel to expire the ban (probes v4, v6 ok)', observe: () => seen });
    });
    await t.test('stop removes the hook: traffic flows though the set still holds the ban', async () => {
      await fw.apply([ban(A4, Date.now() + 60_000)]);
      assert.equal(await lab.probe(P4, 25), 'timeout');
      await fw.stop();
      assert.equal(await lab.probe(P4, 25), 'ok');
      assert.ok((await fw.list()).has(A4));
      await fw.stop({ purge: true });
    });
  } finally {
    lab.close();
  }
}

test('e2e: ipset + iptables drop a banned peer across a veth pair', async (t) => {
  const skip = kernelSkipReason(['ipset', 'iptables', 'ip6tables']);
  if (skip) { console.warn(`SKIPPED ipset e2e: ${skip}`); t.skip(skip); return; }
  await scenario(t, (ns, maxelem) => new IpsetBackend(resolveFirewallConfig({ backend: 'ipset', prefix: 'mje2e', netns: ns, ...(maxelem ? { maxelem } : {}) })));
});

test('e2e: nftables drops a banned peer across a veth pair', async (t) => {
  const skip = kernelSkipReason(['nft']);
  if (skip) { console.warn(`SKIPPED nftables e2e: ${skip}`); t.skip(skip); return; }
  await scenario(t, (ns, maxelem) => new NftBackend(resolveFirewallConfig({ backend: 'nftables', prefix: 'mje2e', netns: ns, ...(maxelem ? { maxelem } : {}) })));
});
