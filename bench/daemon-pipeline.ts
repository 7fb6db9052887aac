// Benchmark: the whole daemon as a process — syslog TCP in on loopback → parse → rules → state →
// dry-run firewall — fed a generated mail log over one TCP connection. Prints lines/s end to end
// (until `mailjail status` counts every line), bans decided, and the daemon's RSS.
// Usage: node dist/bench/daemon-pipeline.js [--lines N]
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer, type AddressInfo } from 'node:net';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { controlRequest } from '../src/control/client.js';
import type { StatusResult } from '../src/control/protocol.js';

const arg = (name: string, def: string): string => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
};
const LINES = Number(arg('lines', '500000'));
const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const GEN = join(ROOT, '../shared/bench/gen-maillog.mjs');
const CLI = join(ROOT, 'dist/src/cli/main.js');
const bundled = join(ROOT, 'rules');
const RULES = readdirSync(bundled).some((f) => f.endsWith('.yaml')) ? bundled : join(ROOT, 'test/fixtures/rules-good');

if (!existsSync(GEN)) {
  console.error(`generator not found at ${GEN}`);
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'mj-bench-daemon-'));
try {
  const log = join(dir, 'mail.log');
  execFileSync('sh', ['-c', `node "$0" --lines ${LINES} --attack-ratio 0.05 --attackers 20000 --seed 42 > "$1"`, GEN, log]);
  const data = readFileSync(log);
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  const sock = join(dir, 'control.sock');
  writeFileSync(join(dir, 'mailjail.yaml'), `logLevel: warn
rules: { dir: ${RULES} }
state: { dir: ${join(dir, 'state')} }
sources:
  bench: { type: syslog-tcp, listen: "127.0.0.1:${port}", allow: [127.0.0.0/8] }
policies:
  auth: { maxretry: 5, findtime: 10m, bantime: 1h }
firewall: { backend: dry-run, maxelem: 1048576 }
metrics: { enabled: false }
control: { socket: ${sock} }
`);
  const d = spawn(process.execPath, ['--enable-experimental-regexp-engine-on-excessive-backtracks', CLI, 'run', '-c', join(dir, 'mailjail.yaml')], { stdio: ['ignore', 'ignore', 'inherit'] });
  const status = async (): Promise<StatusResult | undefined> => {
    try { return (await controlRequest(sock, 'status')) as StatusResult; } catch { return undefined; }
  };
  while (!(await status())) await new Promise((r) => setTimeout(r, 50));
  const t0 = process.hrtime.bigint();
  await new Promise<void>((resolve, reject) => {
    const c = connect(port, '127.0.0.1', () => c.end(data, resolve));
    c.on('error', reject);
  });
  let st: StatusResult | undefined;
  for (;;) {
    st = await status();
    if (st && st.counters['lines']! >= LINES) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const rss = Number(/VmHWM:\s+(\d+)/.exec(readFileSync(`/proc/${d.pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  d.kill('SIGTERM');
  await new Promise((r) => d.once('exit', r));
  console.log(`machine: ${cpus().length} × ${cpus()[0]?.model ?? '?'}; node ${process.version}; rules: ${RULES === bundled ? 'bundled pack' : 'test fixture (bundled pack empty)'}`);
  console.log(`daemon pipeline (syslog TCP → parse → rules → state → dry-run firewall), ${LINES} lines, ${(data.length / 2 ** 20).toFixed(1)} MiB:`);
  console.log(`  ${(LINES / secs).toFixed(0)} lines/s end to end (${secs.toFixed(2)} s); matches ${st!.counters['matches']}, bans ${st!.counters['bans']}, parse errors ${st!.counters['parseErrors']}; peak RSS ${rss.toFixed(0)} MiB`);
} finally {
  rmSync(dir, { recursive: true, force: true });
}
