// `mailjail run` as a real process: syslog TCP in (a real `logger`), dry-run firewall, the control
// socket with the real CLI, SIGHUP, SIGTERM and SIGKILL + restart.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { RULES, tempDir, waitFor } from './helpers.js';

const MAIN = fileURLToPath(new URL('../../src/cli/main.js', import.meta.url));
const hasLogger = spawnSync('logger', ['--version']).status === 0;

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function cli(args: string[], sock: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [MAIN, ...args, '--socket', sock], (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }));
  });
}

function start(cfg: string): { child: ChildProcess; out: () => string; exited: Promise<number | null> } {
  const child = spawn(process.execPath, [MAIN, 'run', '-c', cfg, '--dry-run'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => { out += d.toString(); });
  child.stderr!.on('data', (d: Buffer) => { out += d.toString(); });
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  return { child, out: () => out, exited };
}

function send(port: number, ip: string, n: number): void {
  for (let i = 0; i < n; i++) {
    const r = spawnSync('logger', ['--server', '127.0.0.1', '--port', String(port), '--tcp', '--octet-count', '--rfc5424',
      '-t', 'postfix/smtpd', `warning: unknown[${ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`]);
    assert.equal(r.status, 0, String(r.stderr));
  }
}

test('mailjail run: logger → ban; CLI status/bans/ban/unban/reload; SIGHUP; SIGTERM exit 0; SIGKILL + restart keeps bans', { skip: !hasLogger && 'util-linux logger not installed' }, async () => {
  const dir = tempDir('mj-run-');
  const port = await freePort();
  const mport = await freePort();
  const sock = join(dir, 'control.sock');
  const cfg = join(dir, 'mailjail.yaml');
  const yaml = (maxretry: number): string => `rules: { dir: ${RULES} }
state: { dir: ${join(dir, 'state')} }
sources:
  collector: { type: syslog-tcp, listen: "127.0.0.1:${port}", allow: [127.0.0.0/8] }
policies:
  auth: { maxretry: ${maxretry}, findtime: 10m, bantime: 1h }
firewall: { backend: ipset }
metrics: { listen: "127.0.0.1:${mport}" }
control: { socket: ${sock} }
`;
  writeFileSync(cfg, yaml(3));
  let p = start(cfg);
  try {
    await waitFor(() => /"msg":"ready"/.test(p.out()), 10_000);
    send(port, '192.0.2.10', 3);
    await waitFor(async () => (await cli(['bans', '--json'], sock)).stdout.includes('192.0.2.10'), 10_000);
    assert.match(p.out(), /"event":"ban","target":"192\.0\.2\.10".*"count":3/);

    const st = await cli(['status', '--json'], sock);
    const status = JSON.parse(st.stdout) as { firewall: string; counters: Record<string, number>; sources: { name: string; state: string }[] };
    assert.equal(status.firewall, 'dry-run');
    assert.equal(status.counters['matches'], 3);
    assert.deepEqual(status.sources.map((s) => [s.name, s.state]), [['collector', 'running']]);

    const metrics = await (await fetch(`http://127.0.0.1:${mport}/metrics`)).text();
    assert.match(metrics, /mailjail_lines_received_total\{source="collector"\} 3/);

    assert.equal((await cli(['ban', '198.51.100.20', '--for', '2h'], sock)).code, 0);
    const bad = await cli(['ban', '198.51.100.300'], sock);
    assert.equal(bad.code, 4);
    const badPolicy = await cli(['ban', '198.51.100.21', '--policy', 'nope'], sock);
    assert.equal(badPolicy.code, 4);
    assert.match(badPolicy.stderr, /unknown policy "nope"/);
    assert.equal((await cli(['unban', '192.0.2.10'], sock)).stdout, 'unbanned 192.0.2.10\n');

    // Reload through SIGHUP with a broken file: refused, the daemon runs on.
    writeFileSync(cfg, `${yaml(3)}bogus: 1\n`);
    p.child.kill('SIGHUP');
    await waitFor(() => /reload refused/.test(p.out()), 5000);
    assert.match(p.out(), /bogus: unknown key/);
    writeFileSync(cfg, yaml(2));
    const rl = await cli(['reload'], sock);
    assert.equal(rl.code, 0, rl.stderr);
    send(port, '192.0.2.11', 2);
    await waitFor(async () => (await cli(['bans', '--json'], sock)).stdout.includes('192.0.2.11'), 10_000);

    // SIGKILL: nothing orderly happens, yet every ban is back after a restart.
    p.child.kill('SIGKILL');
    await p.exited;
    p = start(cfg);
    await waitFor(() => /"msg":"ready"/.test(p.out()), 10_000);
    const after = JSON.parse((await cli(['bans', '--json'], sock)).stdout) as { target: string }[];
    assert.deepEqual(after.map((b) => b.target).sort(), ['192.0.2.11', '198.51.100.20']);

    p.child.kill('SIGTERM');
    assert.equal(await p.exited, 0);
    assert.match(p.out(), /"msg":"stopped"/);
    assert.ok(!existsSync(sock), 'the control socket is removed on exit');
    assert.match(readFileSync(join(dir, 'state', 'bans.jsonl'), 'utf8').trim().split('\n').at(-1)!, /^\{"t":"mark"/);
  } finally {
    p.child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mailjail run with a broken config exits 2 and names file:line', async () => {
  const dir = tempDir('mj-run-');
  const cfg = join(dir, 'mailjail.yaml');
  writeFileSync(cfg, 'sources:\n  j: { type: journald }\npolicies:\n  auth: { maxretry: lots }\n');
  const p = start(cfg);
  assert.equal(await p.exited, 2);
  assert.match(p.out(), /mailjail\.yaml:4:21: policies\.auth\.maxretry: expected an integer/);
  rmSync(dir, { recursive: true, force: true });
});
