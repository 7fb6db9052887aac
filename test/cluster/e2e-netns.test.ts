// The issue's end-to-end, with real processes: a redis-server, two collectors (`mailjail run`,
// role collector, shared counting) and two mail hosts (`mailjail run`, role enforcer, ipset), each
// in its own network namespace on one bridge, plus an attacker namespace. The mail hosts send auth
// failures with a real `logger` — mx1 to collector 1, mx2 to collector 2 — so the attack is split:
// 2 + 1 attempts at maxretry 3 → banned at the 3rd, and both mail hosts drop the attacker. Then mx2
// is SIGKILLed, an operator ban is issued on collector 1, and mx2 applies it when it comes back.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { RULES, tempDir } from '../daemon/helpers.js';
import { addNetns, delNetns, kernelSkipReason, nsExec } from '../firewall/netns.js';
import { waitFor, waitForEvent } from '../helpers/wait.js';
import { haveRedis } from './redis-server.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const skip = kernelSkipReason(['ipset', 'iptables', 'ip6tables', 'logger', 'redis-cli']) ?? (haveRedis() ? undefined : 'redis-server is not installed');
if (skip) console.warn(`SKIPPED cluster e2e in namespaces: ${skip}`);
const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

function probe(ns: string, host: string, port: number): Promise<string> {
  const js = `const s=require('net').connect({host:${JSON.stringify(host)},port:${port}});let d=false;const fin=r=>{if(d)return;d=true;s.destroy();console.log(r)};s.setTimeout(2000,()=>fin('timeout'));s.on('data',()=>fin('ok'));s.on('error',e=>fin('error '+e.code))`;
  return new Promise((resolve) => execFile('ip', ['netns', 'exec', ns, process.execPath, '-e', js], (_e, out) => resolve(out.trim())));
}

test('two collectors + two enforcers in namespaces: split attack banned at the right attempt, dropped on both; enforcer down during a ban applies it on restart', { skip: skip ?? false }, async () => {
  const dir = tempDir('mj-cl-e2e-');
  const names = { col1: 11, col2: 12, mx1: 21, mx2: 22, att: 99 } as const;
  const ns: Record<string, string> = {};
  const children: ChildProcess[] = [];
  let hub = '';
  try {
    hub = addNetns('hub-');
    ip('-n', hub, 'link', 'add', 'br0', 'type', 'bridge');
    ip('-n', hub, 'addr', 'add', '10.9.0.1/24', 'dev', 'br0');
    ip('-n', hub, 'link', 'set', 'br0', 'up');
    for (const [name, n] of Object.entries(names)) {
      const x = addNetns(`${name}-`);
      ns[name] = x;
      ip('-n', x, 'link', 'add', 'v0', 'type', 'veth', 'peer', 'name', `p${n}`, 'netns', hub);
      ip('-n', hub, 'link', 'set', `p${n}`, 'master', 'br0');
      ip('-n', hub, 'link', 'set', `p${n}`, 'up');
      ip('-n', x, 'addr', 'add', `10.9.0.${n}/24`, 'dev', 'v0');
      ip('-n', x, 'link', 'set', 'v0', 'up');
    }
    const redis = spawn('ip', ['netns', 'exec', hub, 'redis-server', '--port', '6379', '--bind', '10.9.0.1', '--protected-mode', 'no',
      '--dir', dir, '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(redis);
    let rout = '';
    redis.stdout!.on('data', (b: Buffer) => { rout += b.toString(); });
    await waitFor(() => rout.includes('Ready to accept connections'), { timeoutMs: 20_000, what: 'redis-server ready', observe: () => rout });

    // A greeter on port 2525 on each mail host: the "mail service" the ban protects.
    for (const mx of ['mx1', 'mx2']) {
      const g = spawn('ip', ['netns', 'exec', ns[mx]!, process.execPath, '-e', "require('net').createServer(s=>{s.end('220 hi\\r\\n')}).listen(2525,'0.0.0.0')"], { stdio: 'ignore' });
      children.push(g);
    }
    await waitFor(async () => (await probe(ns['att']!, '10.9.0.21', 2525)) === 'ok' && (await probe(ns['att']!, '10.9.0.22', 2525)) === 'ok',
      { timeoutMs: 20_000, what: 'the greeters on mx1 and mx2 to answer' });

    const redisYaml = (node: string, extra = '') => `redis: { url: "redis://10.9.0.1:6379", node: ${node}, prefix: e2e${extra} }`;
    const common = (name: string) => `rules: { dir: ${RULES} }
state: { dir: ${join(dir, name, 'state')} }
policies:
  auth: { maxretry: 3, findtime: 10m, bantime: 1h }
metrics: { enabled: false }
control: { socket: ${join(dir, `${name}.sock`)} }
`;
    const out: Record<string, string> = {};
    const procs: Record<string, ChildProcess> = {};
    const start = (name: string, yaml: string): ChildProcess => {
      const cfg = join(dir, `${name}.yaml`);
      writeFileSync(cfg, common(name) + yaml);
      out[name] = '';
      const c = spawn('ip', ['netns', 'exec', ns[name]!, process.execPath, MAIN, 'run', '-c', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
      c.stdout!.on('data', (d: Buffer) => { out[name] += d.toString(); });
      c.stderr!.on('data', (d: Buffer) => { out[name] += d.toString(); });
      children.push(c);
      procs[name] = c;
      return c;
    };
    for (const col of ['col1', 'col2'] as const) {
      start(col, `role: collector
${redisYaml(col, ', sharedCounting: true')}
sources:
  mailhosts: { type: syslog-tcp, listen: "10.9.0.${names[col]}:5514", allow: [10.9.0.0/24] }
firewall: { backend: ipset, prefix: mjcl }
`);
    }
    const mxYaml = (mx: string) => `role: enforcer\n${redisYaml(mx)}\nfirewall: { backend: ipset, prefix: mjcl, ports: [2525] }\n`;
    start('mx1', mxYaml('mx1'));
    start('mx2', mxYaml('mx2'));
    const ready = (name: string) => /"msg":"ready"/.test(out[name]!) && /redis connected/.test(out[name]!);
    await waitFor(() => ['col1', 'col2', 'mx1', 'mx2'].every(ready), {
      timeoutMs: 40_000, what: 'all four daemons ready and connected to redis',
      observe: () => ['col1', 'col2', 'mx1', 'mx2'].filter((n) => !ready(n)).map((n) => `${n}: ${out[n]!.slice(-400)}`).join('\n'),
    });

    const fail = (from: string, col: string) => nsExec(ns[from]!, 'logger', ['--server', `10.9.0.${names[col as 'col1']}`, '--port', '5514', '--tcp', '--octet-count', '--rfc5424',
      '-t', 'postfix/smtpd', 'warning: unknown[10.9.0.99]: SASL LOGIN authentication failed: UGFzc3dvcmQ6']);
    const matched = (col: string, n: number) => (out[col]!.match(/"msg":"ban /g)?.length ?? 0) >= n;
    // Both attempts are in the shared count (Redis's sorted set) before the third is sent: else
    // the third could reach Redis before the second, and collector 2 would be the one to cross.
    const shared = (): number => Number(nsExec(hub, 'redis-cli', ['-h', '10.9.0.1', '-p', '6379', 'ZCARD', 'e2e:cnt:auth:10.9.0.99']).trim() || 0);
    fail('mx1', 'col1');
    fail('mx2', 'col2');
    await waitFor(() => shared() === 2, { timeoutMs: 15_000, what: 'both attempts in the shared count', observe: shared });
    const inSet = (host: string, t: string): boolean => {
      try {
        return nsExec(ns[host]!, 'ipset', ['list', 'mjcl-v4']).includes(t);
      } catch {
        return false; // no set at all (a collector)
      }
    };
    assert.equal(inSet('mx1', '10.9.0.99') || inSet('mx2', '10.9.0.99'), false, 'two attempts: no ban yet');
    const sent = Date.now();
    fail('mx1', 'col1');
    await waitFor(() => inSet('mx1', '10.9.0.99') && inSet('mx2', '10.9.0.99'), { timeoutMs: 15_000, what: '10.9.0.99 in the set of both mail hosts' });
    const latency = Date.now() - sent;
    // The ban reaches the mail hosts through Redis; the collector's own log line comes down a
    // pipe and may arrive later: wait for it rather than read the log at this instant.
    await waitFor(() => matched('col1', 1), { timeoutMs: 15_000, what: "the ban line in collector 1's log", observe: () => out['col1']!.slice(-1500) });
    assert.ok(!matched('col2', 1), `collector 1 (whose attempt was the 3rd) banned, once; collector 2 logged: ${out['col2']!.slice(-1500)}`);
    assert.equal(await probe(ns['att']!, '10.9.0.21', 2525), 'timeout', 'mx1 drops the attacker');
    assert.equal(await probe(ns['att']!, '10.9.0.22', 2525), 'timeout', 'mx2 drops the attacker');
    assert.equal(await probe(ns['col1']!, '10.9.0.22', 2525), 'ok', 'others still get in');
    assert.equal(inSet('col1', '10.9.0.99'), false, 'a collector does not touch its own kernel');
    console.log(`# cluster e2e: 3rd logger line → ipset entry on both mail hosts in ${latency} ms`);

    // mx2 goes down hard; a ban made meanwhile reaches it when it returns.
    procs['mx2']!.kill('SIGKILL');
    await waitForEvent(procs['mx2']!, 'exit', { what: 'mx2 to die after SIGKILL' });
    const ban = spawnSync(process.execPath, [MAIN, 'ban', '10.9.0.12', '--for', '2h', '--socket', join(dir, 'col1.sock')], { encoding: 'utf8' });
    assert.equal(ban.status, 0, ban.stderr);
    await waitFor(() => inSet('mx1', '10.9.0.12'), { timeoutMs: 15_000, what: 'the operator ban on mx1' });
    assert.equal(inSet('mx2', '10.9.0.12'), false);
    start('mx2', mxYaml('mx2'));
    await waitFor(() => inSet('mx2', '10.9.0.12'), { timeoutMs: 30_000, what: 'the operator ban on mx2 after its restart', observe: () => out['mx2']!.slice(-1500) });
    assert.equal(await probe(ns['col2']!, '10.9.0.22', 2525), 'timeout');
    assert.ok(inSet('mx2', '10.9.0.99'), 'and it kept the earlier ban');
    for (const name of ['col1', 'col2', 'mx1', 'mx2']) {
      const exited = waitForEvent(procs[name]!, 'exit', { timeoutMs: 30_000, what: `${name} to exit after SIGTERM` });
      procs[name]!.kill('SIGTERM');
      assert.equal((await exited)[0], 0, `${name} exits 0`);
    }
  } finally {
    for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
    for (const x of [...Object.values(ns), hub]) if (x) delNetns(x);
    rmSync(dir, { recursive: true, force: true });
  }
});
