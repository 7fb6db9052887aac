// The journald path through the daemon's own factory (the source the embedded default uses):
// a journal file built by systemd-journal-remote, read by JournaldSource, counted at journald time.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configFromTexts } from '../../src/daemon/config.js';
import { makeFirewall, makeSource } from '../../src/daemon/factories.js';
import { createLogger } from '../../src/daemon/logger.js';
import { Metrics } from '../../src/daemon/metrics.js';
import { Daemon } from '../../src/daemon/daemon.js';
import { RULES, logSink, tempDir, waitFor } from './helpers.js';

const JREMOTE = ['/lib/systemd/systemd-journal-remote', '/usr/lib/systemd/systemd-journal-remote']
  .find((p) => spawnSync(p, ['--version']).status === 0);

for (const reader of ['auto', 'journalctl'] as const) test(`journald source (reader ${reader}) from the config: a journal file → ban, then the source finishes`, { skip: JREMOTE ? false : 'systemd-journal-remote not installed' }, async () => {
  const dir = tempDir('mj-jd-');
  try {
    const now = Date.now();
    const boot = 'a'.repeat(32);
    const entry = (i: number, ip: string): string => [
      `__REALTIME_TIMESTAMP=${(now - 60_000 + i * 1000) * 1000}`,
      `__MONOTONIC_TIMESTAMP=${1_000_000 + i * 1_000_000}`,
      `_BOOT_ID=${boot}`,
      `_HOSTNAME=mx1`,
      `_PID=4242`,
      `SYSLOG_IDENTIFIER=postfix/smtpd`,
      `MESSAGE=warning: unknown[${ip}]: SASL LOGIN authentication failed: UGFzc3dvcmQ6`,
    ].join('\n');
    const entries = [0, 1, 2].map((i) => entry(i, '198.51.100.77'));
    entries.push(entry(3, '198.51.100.78'));
    entries.push([`__REALTIME_TIMESTAMP=${(now - 50_000) * 1000}`, '__MONOTONIC_TIMESTAMP=9000000', `_BOOT_ID=${boot}`, 'SYSLOG_IDENTIFIER=cron', 'MESSAGE=not mail'].join('\n'));
    writeFileSync(join(dir, 'in.export'), `${entries.join('\n\n')}\n\n`);
    const journal = join(dir, 'in.journal');
    execFileSync(JREMOTE!, [`--output=${journal}`, join(dir, 'in.export')], { stdio: 'pipe' });

    const cfg = configFromTexts([{ file: join(dir, 'mailjail.yaml'), text: `rules: { dir: ${RULES} }
state: { dir: ${join(dir, 'state')} }
sources:
  journal: { type: journald, files: [${journal}], lookback: 1d, reader: ${reader} }
policies:
  auth: { maxretry: 3, findtime: 10m, bantime: 1h }
firewall: { backend: dry-run }
` }]);
    const log = logSink();
    let fw: ReturnType<typeof makeFirewall> | undefined;
    const d = await Daemon.start({
      loadConfig: () => cfg,
      log: createLogger({ level: 'debug', destination: log.stream, pretty: false }),
      metrics: new Metrics({ defaultMetrics: false }),
      makeSource,
      makeFirewall: (c, ctx) => (fw = makeFirewall(c, ctx)),
      allowSelf: false,
      version: 'test',
      firewallCheckMs: 0,
    });
    try {
      await waitFor(async () => (await d.status()).sources[0]!.state === 'finished', 10_000);
      const st = await d.status();
      assert.equal(st.counters['matches'], 4);
      assert.deepEqual((await d.bans()).map((b) => b.target), ['198.51.100.77']);
      assert.ok((await fw!.list()).has('198.51.100.77'));
      const ban = log.lines().find((l) => l['event'] === 'ban')!;
      assert.equal(ban['source'], 'journal');
      assert.equal(ban['host'], 'mx1');
    } finally {
      await d.stop();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
