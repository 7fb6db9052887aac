// The end-to-end: `mailjail run` as a real process inside a "collector" namespace with the
// syslog TCP source and the ipset backend. A "mail host" namespace sends auth failures with a real
// `logger`, naming the address of an "attacker" namespace. The ban reaches the set within a second,
// the attacker's TCP connection to the collector is then dropped, `mailjail unban` lifts it,
// SIGKILL + restart keeps every ban, and `mailjail status` reports the counters.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { addNetnsAll, delNetns, kernelSkipReason, nsExec } from '../firewall/netns.js';
import { RULES, tempDir, waitFor } from './helpers.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const skip = kernelSkipReason(['ipset', 'iptables', 'ip6tables', 'logger']);

const ip = (...args: string[]): string => execFileSync('ip', args, { encoding: 'utf8' });

/** Connects from `ns` to host:port; "ok" when the server's greeting arrives, else "timeout"/"error ...". */
function probe(ns: string, host: string, port: number): Promise<string> {
  const js = `const s=require('net').connect({host:${JSON.stringify(host)},port:${port}});let d=false;const fin=r=>{if(d)return;d=true;s.destroy();console.log(r)};s.setTimeout(2000,()=>fin('timeout'));s.on('data',()=>fin('ok'));s.on('error',e=>fin('error '+e.code))`;
  return new Promise((resolve) => {
    execFile('ip', ['netns', 'exec', ns, process.execPath, '-e', js], (_e, out) => resolve(out.trim()));
  });
}

function cli(args: string[], sock: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args, '--socket', sock], (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

test('collector / mail host / attacker namespaces: logger → ipset ban → dropped; unban; SIGKILL restart keeps bans', { skip: skip ?? false }, async () => {
  const dir = tempDir('mj-e2e-');
  const [col, mail, att] = addNetnsAll(['col-', 'mail-', 'att-']);
  const children: ChildProcess[] = [];
  try {
    // mail 192.0.2.2 ↔ collector 192.0.2.1; attacker 198.51.100.2 ↔ collector 198.51.100.1
    ip('-n', mail, 'link', 'add', 'vm', 'type', 'veth', 'peer', 'name', 'cm', 'netns', col);
    ip('-n', att, 'link', 'add', 'va', 'type', 'veth', 'peer', 'name', 'ca', 'netns', col);
    ip('-n', mail, 'addr', 'add', '192.0.2.2/24', 'dev', 'vm');
    ip('-n', col, 'addr', 'add', '192.0.2.1/24', 'dev', 'cm');
    ip('-n', att, 'addr', 'add', '198.51.100.2/24', 'dev', 'va');
    ip('-n', col, 'addr', 'add', '198.51.100.1/24', 'dev', 'ca');
    for (const [ns, dev] of [[mail, 'vm'], [col, 'cm'], [att, 'va'], [col, 'ca']] as const) ip('-n', ns, 'link', 'set', dev, 'up');

    // A "mail service" on the collector that greets every client (port 2525, protected by the ban).
    const greeter = spawn('ip', ['netns', 'exec', col, process.execPath, '-e',
      "require('net').createServer(s=>{s.end('220 hi\\r\\n')}).listen(2525,'0.0.0.0',()=>console.log('up'))"], { stdio: ['ignore', 'pipe', 'inherit'] });
    children.push(greeter);
    await new Promise<void>((r) => greeter.stdout!.once('data', () => r()));
    await waitFor(async () => (await probe(att, '198.51.100.1', 2525)) === 'ok', 20_000, 'the greeter to answer the attacker');

    const sock = join(dir, 'control.sock');
    const cfg = join(dir, 'mailjail.yaml');
    writeFileSync(cfg, `rules: { dir: ${RULES} }
state: { dir: ${join(dir, 'state')} }
sources:
  collector: { type: syslog-tcp, listen: "192.0.2.1:5514", allow: [192.0.2.0/24] }
policies:
  auth: { maxretry: 3, findtime: 10m, bantime: 1h }
firewall: { backend: ipset, prefix: mje2e, ports: [2525] }
metrics: { enabled: false }
control: { socket: ${sock} }
`);
    let out = '';
    const startDaemon = (): ChildProcess => {
      const c = spawn('ip', ['netns', 'exec', col, process.execPath, MAIN, 'run', '-c', cfg], { stdio: ['ignore', 'pipe', 'pipe'] });
      c.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
      c.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
      children.push(c);
      return c;
    };
    let daemon = startDaemon();
    await waitFor(() => /"msg":"ready"/.test(out), 30_000, 'mailjail run ready');

    for (let i = 0; i < 3; i++) {
      nsExec(mail, 'logger', ['--server', '192.0.2.1', '--port', '5514', '--tcp', '--octet-count', '--rfc5424', '-t', 'postfix/smtpd',
        'warning: unknown[198.51.100.2]: SASL LOGIN authentication failed: UGFzc3dvcmQ6']);
    }
    const sent = Date.now();
    await waitFor(() => nsExec(col, 'ipset', ['list', 'mje2e-v4']).includes('198.51.100.2'), 15_000, '198.51.100.2 in the set');
    const latency = Date.now() - sent;
    // Well under a second on an idle machine; the bound leaves room for a loaded CI machine.
    console.log(`# daemon e2e: 3rd logger line → ipset entry in ${latency} ms`);
    assert.ok(latency < 5000, `ban reached the set after ${latency} ms`);
    assert.equal(await probe(att, '198.51.100.1', 2525), 'timeout', 'the attacker is dropped');

    const st = JSON.parse((await cli(['status', '--json'], sock)).stdout) as { firewall: string; counters: Record<string, number> };
    assert.equal(st.firewall, 'ipset');
    assert.equal(st.counters['matches'], 3);
    assert.equal(st.counters['bansActive'], 1);

    assert.equal((await cli(['unban', '198.51.100.2'], sock)).stdout, 'unbanned 198.51.100.2\n');
    assert.ok(!nsExec(col, 'ipset', ['list', 'mje2e-v4']).includes('198.51.100.2'));
    assert.equal(await probe(att, '198.51.100.1', 2525), 'ok', 'unban lifts the drop');

    assert.equal((await cli(['ban', '198.51.100.2', '--for', '2h'], sock)).code, 0);
    assert.equal((await cli(['ban', '203.0.113.0/24', '--policy', 'auth'], sock)).code, 0);
    daemon.kill('SIGKILL');
    await new Promise((r) => daemon.once('exit', r));
    // Someone flushes the set while the daemon is down: the restart must put every ban back.
    nsExec(col, 'ipset', ['flush', 'mje2e-v4']);
    out = '';
    daemon = startDaemon();
    await waitFor(() => /"msg":"ready"/.test(out), 30_000, 'mailjail run ready after the restart');
    const list = nsExec(col, 'ipset', ['list', 'mje2e-v4']);
    assert.match(list, /^198\.51\.100\.2 timeout \d+/m);
    assert.match(list, /^203\.0\.113\.0\/24 timeout \d+/m);
    assert.equal(await probe(att, '198.51.100.1', 2525), 'timeout');
    const bans = JSON.parse((await cli(['bans', '--json'], sock)).stdout) as { target: string }[];
    assert.deepEqual(bans.map((b) => b.target).sort(), ['198.51.100.2', '203.0.113.0/24']);

    daemon.kill('SIGTERM');
    assert.equal(await new Promise((r) => daemon.once('exit', (code) => r(code))), 0);
  } finally {
    for (const c of children) c.kill('SIGKILL');
    for (const ns of [col, mail, att]) delNetns(ns);
    rmSync(dir, { recursive: true, force: true });
  }
});
