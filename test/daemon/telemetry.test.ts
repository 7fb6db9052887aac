import { test } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Writable } from 'node:stream';
import { createLogger } from '../../src/daemon/logger.js';
import { Metrics, serveMetrics } from '../../src/daemon/metrics.js';
import { RateLimitedLog } from '../../src/daemon/rate-limit.js';

function sink(): { stream: Writable; lines: () => Record<string, unknown>[] } {
  const chunks: string[] = [];
  const stream = new Writable({ write(c, _e, cb) { chunks.push(String(c)); cb(); } });
  return { stream, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) };
}

function get(port: number, path: string, method = 'GET'): Promise<{ status: number; body: string; type: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => { body += d; });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, type: String(res.headers['content-type']) }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('logger writes one JSON object per line with level labels; hostile text stays inside its string', () => {
  const s = sink();
  const log = createLogger({ level: 'info', destination: s.stream, pretty: false });
  log.debug('hidden');
  log.info({ user: 'evil\n{"level":"info","msg":"ban lifted"}' }, 'auth failure');
  const lines = s.lines();
  assert.equal(lines.length, 1);
  assert.equal(lines[0]!['level'], 'info');
  assert.equal(lines[0]!['msg'], 'auth failure');
  assert.equal(lines[0]!['user'], 'evil\n{"level":"info","msg":"ban lifted"}');
});

test('rate-limited warnings: first line per key per interval, then a count of what was suppressed', () => {
  const s = sink();
  const log = createLogger({ level: 'info', destination: s.stream, pretty: false });
  let now = 1_000_000;
  const rl = new RateLimitedLog(log, { intervalMs: 60_000, maxKeys: 2, now: () => now });
  assert.equal(rl.warn('peer 192.0.2.1', { peer: '192.0.2.1' }, 'denied sender'), true);
  for (let i = 0; i < 500; i++) rl.warn('peer 192.0.2.1', { peer: '192.0.2.1' }, 'denied sender');
  rl.warn('peer 192.0.2.2', {}, 'denied sender');
  now += 60_000;
  rl.warn('peer 192.0.2.1', { peer: '192.0.2.1' }, 'denied sender');
  const lines = s.lines();
  assert.equal(lines.length, 3);
  assert.equal(lines[2]!['suppressed'], 500);
  assert.equal(lines[2]!['msg'], 'denied sender (500 similar suppressed)');
  assert.equal(rl.suppressedTotal, 500);
  // Keys are bounded: a spray of distinct keys does not grow memory.
  for (let i = 0; i < 10_000; i++) rl.warn(`k${i}`, {}, 'x');
  assert.ok((rl as unknown as { slots: Map<string, unknown> }).slots.size <= 2);
});

test('metrics: named series, stage-registered counters, snapshot totals, served on localhost', async () => {
  const m = new Metrics({ defaultMetrics: false });
  m.linesReceived.inc({ source: 'journal' }, 3);
  m.linesReceived.inc({ source: 'collector' }, 2);
  m.matches.inc({ rule: 'postfix-sasl', class: 'auth' });
  m.bansApplied.inc({ backend: 'dry-run' });
  m.firewallLatency.observe({ backend: 'dry-run' }, 0.004);
  const mine = m.counter('mailjail_syslog_oversize_total', 'Oversize messages', ['source']);
  assert.equal(m.counter('mailjail_syslog_oversize_total', 'Oversize messages', ['source']), mine, 'get-or-create');
  mine.inc({ source: 'collector' });
  let tracked = 0;
  m.gauge('mailjail_ledger_entries', 'Ledger entries', [], (g) => g.set(tracked));
  tracked = 17;
  assert.throws(() => m.gauge('mailjail_syslog_oversize_total', 'x'), /MJ_METRICS_NAME/);
  const snap = await m.snapshot();
  assert.equal(snap['lines_received'], 5);
  assert.equal(snap['rule_matches'], 1);
  assert.equal(snap['syslog_oversize'], 1);
  assert.equal(snap['ledger_entries'], 17);
  assert.equal(snap['bans_applied'], 1);

  const srv = await serveMetrics(m, { host: '127.0.0.1', port: 0 });
  try {
    const r = await get(srv.port, '/metrics');
    assert.equal(r.status, 200);
    assert.match(r.type, /^text\/plain/);
    assert.match(r.body, /^mailjail_lines_received_total\{source="journal"\} 3$/m);
    assert.match(r.body, /^mailjail_rule_matches_total\{rule="postfix-sasl",class="auth"\} 1$/m);
    assert.match(r.body, /^mailjail_firewall_apply_seconds_bucket\{le="0.005",backend="dry-run"\} 1$/m);
    assert.equal((await get(srv.port, '/nope')).status, 404);
    assert.equal((await get(srv.port, '/metrics', 'POST')).status, 405);
  } finally {
    await srv.close();
  }
  await assert.rejects(async () => {
    const a = await serveMetrics(m, { host: '127.0.0.1', port: 0 });
    try { await serveMetrics(m, { host: '127.0.0.1', port: a.port }); } finally { await a.close(); }
  }, /MJ_METRICS_LISTEN: cannot listen on 127\.0\.0\.1:\d+ for metrics: EADDRINUSE/);
});

test('default process metrics are included unless turned off', async () => {
  const m = new Metrics();
  assert.match(await m.registry.metrics(), /mailjail_process_resident_memory_bytes/);
});
