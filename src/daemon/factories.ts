// Config sections → stage objects: the sources and the firewall backend named in mailjail.yaml.
// Kept apart from start.ts so that tests can hand the daemon their own sources and backends.
import { createBackend, type ResolvedFirewallConfig } from '../firewall/index.js';
import { JournaldSource, SyslogSource } from '../sources/index.js';
import type { FirewallBackend, Source } from '../types.js';
import type { SourceConfig } from './config.js';
import type { FirewallContext, SourceContext } from './deps.js';

export function makeSource(cfg: SourceConfig, ctx: SourceContext): Source {
  if (cfg.type === 'journald') {
    return new JournaldSource({
      name: cfg.name,
      stateDir: ctx.stateDir,
      ...(cfg.directory !== undefined ? { directory: cfg.directory } : {}),
      ...(cfg.files !== undefined ? { files: cfg.files } : {}),
      programs: ctx.programs,
      ...(cfg.units !== undefined ? { units: cfg.units } : {}),
      startAt: { lookbackMs: cfg.lookback > 0 ? cfg.lookback : ctx.lookbackMs },
      backend: cfg.reader,
      onWarn: (code, message) => ctx.log.warn({ code }, message),
    });
  }
  return new SyslogSource({
    name: cfg.name,
    protocol: cfg.type === 'syslog-udp' ? 'udp' : cfg.type === 'syslog-tcp' ? 'tcp' : 'tls',
    host: cfg.listen.host,
    port: cfg.listen.port,
    allow: cfg.allow,
    maxMessageBytes: cfg.maxMessageSize,
    ...(cfg.maxConnections !== undefined ? { maxConnections: cfg.maxConnections } : {}),
    ...(cfg.maxConnectionsPerPeer !== undefined ? { maxConnectionsPerPeer: cfg.maxConnectionsPerPeer } : {}),
    ...(cfg.idleTimeout !== undefined ? { idleTimeoutMs: cfg.idleTimeout } : {}),
    ...(cfg.frameTimeout !== undefined ? { frameTimeoutMs: cfg.frameTimeout } : {}),
    ...(cfg.handshakeTimeout !== undefined ? { handshakeTimeoutMs: cfg.handshakeTimeout } : {}),
    ...(cfg.maxHeldBytes !== undefined ? { maxHeldBytes: cfg.maxHeldBytes } : {}),
    ...(cfg.tls ? {
      tls: {
        certFile: cfg.tls.cert,
        keyFile: cfg.tls.key,
        ...(cfg.tls.ca !== undefined ? { caFile: cfg.tls.ca } : {}),
        requireClientCert: cfg.tls.requireClientCert,
      },
    } : {}),
  });
}

export function makeFirewall(cfg: ResolvedFirewallConfig, _ctx: FirewallContext, opts: { dryRun?: boolean } = {}): FirewallBackend {
  return createBackend({
    backend: opts.dryRun ? 'dry-run' : cfg.backend,
    prefix: cfg.prefix,
    ...(cfg.chain !== undefined ? { chain: cfg.chain } : {}),
    ...(cfg.table !== undefined ? { table: cfg.table } : {}),
    ports: cfg.ports,
    maxelem: cfg.maxelem,
    target: cfg.target,
    ipv6: cfg.ipv6,
  });
}
