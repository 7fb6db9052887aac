import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlRequest } from '../../src/control/client.js';
import type { BanArgs, BanEntry, ControlHandlers, StatusResult } from '../../src/control/protocol.js';
import { ControlServer, bindHandlers } from '../../src/control/server.js';
import { MailjailError } from '../../src/types.js';

const HARNESS = fileURLToPath(new URL('./cli-harness.js', import.meta.url));

/** A fake daemon: keeps bans in a map, knows one policy "auth". */
function fakeDaemon() {
  const bans = new Map<string, BanEntry>();
  const calls: string[] = [];
  const handlers: ControlHandlers = {
    async status(): Promise<StatusResult> {
      calls.push('status');
      return {
        version: '0.1.0', pid: process.pid, startedAt: Date.now() - 65_000, configFiles: ['/etc/mailjail/mailjail.yaml'], firewall: 'dry-run',
        sources: [{ name: 'journal', type: 'journald', state: 'running', lines: 42 }],
        policies: [{ name: 'auth', maxretry: 5, findtime: 600_000, bantime: 3_600_000, bansActive: bans.size }],
        counters: { lines: 42, matches: 7, bansApplied: bans.size },
      };
    },
    async bans() { calls.push('bans'); return [...bans.values()]; },
    async ban(a: BanArgs) {
      calls.push(`ban ${a.target} ${a.policy ?? '-'} ${a.durationMs ?? '-'}`);
      const policy = a.policy ?? 'auth';
      if (policy !== 'auth') throw new MailjailError('MJ_CTL_UNKNOWN_POLICY', `unknown policy "${policy}"; known: auth`);
      const until = Date.now() + (a.durationMs ?? 3_600_000);
      bans.set(a.target, { target: a.target, policy, until, level: 0, ruleId: 'operator', evidence: { count: 0 } });
      return { target: a.target, policy, until, level: 0 };
    },
    async unban(a) { calls.push(`unban ${a.target}`); return { target: a.target, removed: bans.delete(a.target) }; },
    async reload() { calls.push('reload'); return { files: ['/etc/mailjail/mailjail.yaml'] }; },
  };
  return { handlers, bans, calls };
}

async function withServer(fn: (path: string, d: ReturnType<typeof fakeDaemon>, dir: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'mj-ctl-'));
  const path = join(dir, 'run', 'control.sock');
  const d = fakeDaemon();
  const server = bindHandlers(new ControlServer({ path }), d.handlers);
  await server.listen();
  try {
    await fn(path, d, dir);
  } finally {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function raw(path: string, line: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    const c = createConnection(path, () => c.write(line));
    let buf = '';
    c.setEncoding('utf8');
    c.on('data', (d: string) => {
      buf += d;
      const nl = buf.indexOf('\n');
      if (nl >= 0) { c.destroy(); resolve(JSON.parse(buf.slice(0, nl)) as Record<string, unknown>); }
    });
    c.on('error', reject);
  });
}

function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [HARNESS, ...args], { env: { ...process.env, ...env } }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr });
    });
  });
}

test('the socket is created with mode 0600 and answers the typed commands', async () => {
  await withServer(async (path, d) => {
    assert.equal(statSync(path).mode & 0o777, 0o600);
    const s = (await controlRequest(path, 'status')) as StatusResult;
    assert.equal(s.sources[0]!.lines, 42);
    const b = await controlRequest(path, 'ban', { target: '2001:DB8::1', durationMs: 60_000 });
    assert.equal((b as { target: string }).target, '2001:db8::1', 'the target is canonicalised before the handler');
    assert.deepEqual(d.calls.at(-1), 'ban 2001:db8::1 - 60000');
    const list = (await controlRequest(path, 'bans')) as { bans: BanEntry[] };
    assert.deepEqual(list.bans.map((x) => x.target), ['2001:db8::1']);
    assert.deepEqual(await controlRequest(path, 'unban', { target: '2001:db8::1/128' }), { target: '2001:db8::1', removed: true });
    assert.deepEqual(await controlRequest(path, 'reload'), { files: ['/etc/mailjail/mailjail.yaml'] });
  });
});

test('bad addresses, bad durations and unknown policies get clear coded errors', async () => {
  await withServer(async (path, d) => {
    await assert.rejects(controlRequest(path, 'ban', { target: '1.2.3.999' }), (e: unknown) =>
      e instanceof MailjailError && e.code === 'MJ_CTL_BAD_ADDRESS' && /1\.2\.3\.999/.test(e.message));
    await assert.rejects(controlRequest(path, 'ban', { target: '10.0.0.0/4' }), /MJ_CTL_BAD_ADDRESS: refusing to ban 0\.0\.0\.0\/4/);
    await assert.rejects(controlRequest(path, 'ban', { target: '192.0.2.1', durationMs: -5 }), /MJ_CTL_BAD_DURATION/);
    await assert.rejects(controlRequest(path, 'ban', { target: '192.0.2.1', policy: 'nope' }), /MJ_CTL_UNKNOWN_POLICY: unknown policy "nope"; known: auth/);
    await assert.rejects(controlRequest(path, 'unban', { target: 42 }), /MJ_CTL_BAD_ADDRESS/);
    await assert.rejects(controlRequest(path, 'frobnicate'), /MJ_CTL_UNKNOWN_COMMAND: unknown command "frobnicate"/);
    assert.ok(!d.calls.some((c) => c.startsWith('unban')), 'invalid requests never reach the handlers');
  });
});

test('the protocol is versioned; garbage and oversize requests are answered, not crashed on', async () => {
  await withServer(async (path) => {
    const v2 = await raw(path, '{"v":2,"id":7,"cmd":"status"}\n');
    assert.equal(v2['ok'], false);
    assert.equal(v2['id'], 7);
    assert.equal((v2['error'] as { code: string }).code, 'MJ_CTL_VERSION');
    const bad = await raw(path, 'not json\n');
    assert.equal((bad['error'] as { code: string }).code, 'MJ_CTL_BAD_REQUEST');
    const big = await raw(path, 'x'.repeat(100_000));
    assert.equal((big['error'] as { code: string }).code, 'MJ_CTL_TOO_LARGE');
    // The server still answers after all that.
    assert.equal(((await controlRequest(path, 'status')) as StatusResult).version, '0.1.0');
  });
});

test('a stale socket is replaced; a live daemon on the same path is not taken over', async () => {
  await withServer(async (path) => {
    await assert.rejects(new ControlServer({ path }).listen(), /MJ_CTL_IN_USE/);
  });
  const dir = mkdtempSync(join(tmpdir(), 'mj-ctl-'));
  try {
    const path = join(dir, 'c.sock');
    // Leave a dead socket file behind, like a SIGKILLed daemon.
    const child = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`]);
    await new Promise<void>((r) => child.stdout.once('data', () => r()));
    child.kill('SIGKILL');
    await new Promise<void>((r) => child.once('exit', () => r()));
    assert.ok(statSync(path).isSocket(), 'the dead daemon left its socket file');
    const s = new ControlServer({ path });
    await s.listen();
    assert.equal(statSync(path).mode & 0o777, 0o600);
    await s.close();
    writeFileSync(path, 'not a socket');
    await assert.rejects(new ControlServer({ path }).listen(), /MJ_CTL_PATH/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('no daemon → MJ_CTL_UNREACHABLE with a hint', async () => {
  await assert.rejects(controlRequest('/nonexistent/mailjail.sock', 'status'), /MJ_CTL_UNREACHABLE: .*is it running\?/);
});

test('CLI: status, ban, bans --json, unban, reload, errors and exit codes', async () => {
  await withServer(async (path) => {
    const env = { MAILJAIL_SOCKET: path };
    const st = await cli(['status'], env);
    assert.equal(st.code, 0, st.stderr);
    assert.match(st.stdout, /journal\s+journald\s+running\s+42/);
    assert.match(st.stdout, /auth\s+5\s+10m\s+1h\s+0/);

    const ban = await cli(['ban', '192.0.2.7', '--for', '2h'], env);
    assert.equal(ban.code, 0, ban.stderr);
    assert.match(ban.stdout, /^banned 192\.0\.2\.7 \(policy auth, level 0\) until \S+ \((1h59m\d+s|2h)\)$/m);

    const json = await cli(['bans', '--json'], env);
    const list = JSON.parse(json.stdout) as BanEntry[];
    assert.deepEqual(list.map((b) => [b.target, b.policy]), [['192.0.2.7', 'auth']]);
    const human = await cli(['bans', '--socket', path]);
    assert.match(human.stdout, /^ADDRESS\s+POLICY\s+UNTIL/);
    assert.match(human.stdout, /192\.0\.2\.7\s+auth/);

    const badAddr = await cli(['ban', 'mail.example.com'], env);
    assert.equal(badAddr.code, 4);
    assert.match(badAddr.stderr, /MJ_CTL_BAD_ADDRESS: not an IP address or CIDR network: "mail\.example\.com"/);
    const badPol = await cli(['ban', '192.0.2.8', '--policy', 'smtp'], env);
    assert.equal(badPol.code, 4);
    assert.match(badPol.stderr, /unknown policy "smtp"/);
    const badFor = await cli(['ban', '192.0.2.8', '--for', 'soon'], env);
    assert.equal(badFor.code, 4);
    assert.match(badFor.stderr, /--for "soon" is not a duration/);

    const un = await cli(['unban', '192.0.2.7'], env);
    assert.equal(un.stdout, 'unbanned 192.0.2.7\n');
    const re = await cli(['reload'], env);
    assert.equal(re.stdout, 'reloaded: /etc/mailjail/mailjail.yaml\n');
  });
  const down = await cli(['status'], { MAILJAIL_SOCKET: '/nonexistent/x.sock' });
  assert.equal(down.code, 3);
  assert.match(down.stderr, /cannot reach the mailjail daemon/);
});

test('CLI: config check exits 0 on a valid config and 2 with file:line errors on a broken one', async () => {
  const fix = fileURLToPath(new URL('../../../test/fixtures/config/', import.meta.url));
  const ok = await cli(['config', 'check', '-c', `${fix}dropin-ok/mailjail.yaml`]);
  assert.equal(ok.code, 0, ok.stderr);
  assert.match(ok.stdout, /^config OK: .*mailjail\.yaml, .*10-collector\.yaml, .*20-later\.yaml/);
  assert.match(ok.stdout, /policies: auth \(auth: 4 in 10m → 1h\)/);
  const bad = await cli(['config', 'check', '-c', `${fix}unknown-key.yaml`]);
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /unknown-key\.yaml:5:5: policies\.auth\.maxretries: unknown key \(did you mean "maxretry"\?\)/);
  const def = await cli(['config', 'default']);
  assert.match(def.stdout, /type: journald/);
});
