// Prometheus metrics. One registry per daemon (not prom-client's global one, so tests and a
// reload never collide); stages feed it through the named metrics below, or register their own
// with counter()/gauge(). Served on a localhost address by serveMetrics().
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { MailjailError } from '../types.js';

export class Metrics {
  readonly registry = new Registry();

  /** Records handed on by each source. */
  readonly linesReceived: Counter<'source'>;
  /** Records the parser could not read (bad frame, oversize, unknown format). */
  readonly parseErrors: Counter<'source'>;
  readonly sourceRestarts: Counter<'source'>;
  /** Rule matches by rule id and class. */
  readonly matches: Counter<'rule' | 'class'>;
  /** Addresses (or prefixes) in the state table now. */
  readonly trackedAddresses: Gauge;
  /** Entries pushed out of the bounded state table. */
  readonly evictions: Counter;
  readonly bansActive: Gauge<'policy'>;
  /** Decisions the firewall applied; failed apply attempts and refused decisions. */
  readonly bansApplied: Counter<'backend'>;
  readonly bansFailed: Counter<'backend'>;
  /** Wall time of one firewall apply() batch. */
  readonly firewallLatency: Histogram<'backend'>;
  readonly reloads: Counter<'result'>;
  /** Ledger appends that could not be written (full disk, I/O error): their bans were not applied. */
  readonly ledgerWriteFailures: Counter;
  /** Ledger compactions that could not be written (the old ledger was kept). */
  readonly ledgerCompactionFailures: Counter;
  /** Auth back-end outages started (server-error lines of a host, or weak lines of many addresses). */
  readonly authOutages: Counter<'cause'>;
  /** Hosts whose auth back end is failing now. */
  readonly authOutageHosts: Gauge;

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    const r = [this.registry];
    this.linesReceived = new Counter({ name: 'mailjail_lines_received_total', help: 'Records received, by source', labelNames: ['source'], registers: r });
    this.parseErrors = new Counter({ name: 'mailjail_parse_errors_total', help: 'Records that could not be parsed, by source', labelNames: ['source'], registers: r });
    this.sourceRestarts = new Counter({ name: 'mailjail_source_restarts_total', help: 'Source restarts after a failure, by source', labelNames: ['source'], registers: r });
    this.matches = new Counter({ name: 'mailjail_rule_matches_total', help: 'Rule matches, by rule and class', labelNames: ['rule', 'class'], registers: r });
    this.trackedAddresses = new Gauge({ name: 'mailjail_tracked_addresses', help: 'Addresses or prefixes in the state table', registers: r });
    this.evictions = new Counter({ name: 'mailjail_state_evictions_total', help: 'Entries evicted from the bounded state table', registers: r });
    this.bansActive = new Gauge({ name: 'mailjail_bans_active', help: 'Active bans, by policy', labelNames: ['policy'], registers: r });
    this.bansApplied = new Counter({ name: 'mailjail_bans_applied_total', help: 'Decisions applied by the firewall, by backend', labelNames: ['backend'], registers: r });
    this.bansFailed = new Counter({ name: 'mailjail_bans_failed_total', help: 'Failed firewall apply attempts and refused decisions, by backend', labelNames: ['backend'], registers: r });
    this.firewallLatency = new Histogram({
      name: 'mailjail_firewall_apply_seconds', help: 'Duration of one firewall apply batch', labelNames: ['backend'], registers: r,
      buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
    });
    this.reloads = new Counter({ name: 'mailjail_reloads_total', help: 'Config reloads, by result', labelNames: ['result'], registers: r });
    this.ledgerWriteFailures = new Counter({ name: 'mailjail_ledger_write_failures_total', help: 'Ledger appends that could not be written (full disk, I/O error); their bans were not applied and are decided again', registers: r });
    this.ledgerCompactionFailures = new Counter({ name: 'mailjail_ledger_compaction_failures_total', help: 'Ledger compactions that could not be written; the old ledger was kept', registers: r });
    this.authOutages = new Counter({ name: 'mailjail_auth_outages_total', help: 'Auth back-end outages started, by cause (server-error, weak)', labelNames: ['cause'], registers: r });
    this.authOutageHosts = new Gauge({ name: 'mailjail_auth_outage_hosts', help: 'Hosts whose auth back end is failing now (their failures are not counted)', registers: r });
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry, prefix: 'mailjail_' });
  }

  /** Get-or-create a counter for a stage's own figures (same name → same counter). */
  counter<L extends string = string>(name: string, help: string, labelNames: readonly L[] = []): Counter<L> {
    const have = this.registry.getSingleMetric(name);
    if (have) {
      if (!(have instanceof Counter)) throw new MailjailError('MJ_METRICS_NAME', `${name} is already registered as another metric type`);
      return have as Counter<L>;
    }
    return new Counter<L>({ name, help, labelNames, registers: [this.registry] });
  }

  /** Get-or-create a gauge; `collect` is called at scrape time to set its value. */
  gauge<L extends string = string>(name: string, help: string, labelNames: readonly L[] = [], collect?: (g: Gauge<L>) => void): Gauge<L> {
    const have = this.registry.getSingleMetric(name);
    if (have) {
      if (!(have instanceof Gauge)) throw new MailjailError('MJ_METRICS_NAME', `${name} is already registered as another metric type`);
      return have as Gauge<L>;
    }
    return new Gauge<L>({
      name, help, labelNames, registers: [this.registry],
      ...(collect ? { collect(this: Gauge<L>) { collect(this); } } : {}),
    });
  }

  /** Totals of our own metrics (labels summed) for `mailjail status`, keyed by short name. */
  async snapshot(): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const m of await this.registry.getMetricsAsJSON()) {
      if (!m.name.startsWith('mailjail_') || m.name.startsWith('mailjail_process_') || m.name.startsWith('mailjail_nodejs_')) continue;
      if (String(m.type) === 'histogram') continue;
      const short = m.name.replace(/^mailjail_/, '').replace(/_total$/, '');
      out[short] = (m.values as { value: number }[]).reduce((a, v) => a + v.value, 0);
    }
    return out;
  }
}

export interface MetricsServer {
  readonly host: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Serves GET /metrics (Prometheus text format) on host:port; port 0 picks a free port (tests). */
export async function serveMetrics(metrics: Metrics, listen: { host: string; port: number }): Promise<MetricsServer> {
  const server: Server = createServer((req, res) => {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    const url = (req.url ?? '/').split('?')[0];
    if (url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(req.method === 'HEAD' ? undefined : text),
        (e: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(String(e)),
      );
      return;
    }
    if (url === '/') {
      res.writeHead(200, { 'content-type': 'text/plain' }).end('mailjail metrics: /metrics\n');
      return;
    }
    res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
  });
  server.keepAliveTimeout = 5_000;
  server.headersTimeout = 10_000;
  server.requestTimeout = 10_000;
  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) =>
      reject(new MailjailError('MJ_METRICS_LISTEN', `cannot listen on ${listen.host}:${listen.port} for metrics: ${e.code ?? e.message}`, { cause: e })));
    server.listen(listen.port, listen.host, () => resolve());
  });
  const addr = server.address() as AddressInfo;
  return {
    host: addr.address,
    port: addr.port,
    close: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}
