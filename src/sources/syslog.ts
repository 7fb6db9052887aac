// Remote syslog listener: UDP, TCP and TLS (RFC 5425) on Node's own dgram/net/tls. It frames and
// hands on lines; it never parses them (that is parse/). Registry syslog servers were not used:
// see docs/ingest.md ("Why our own listener").
//
// Guarantees:
//  - peers outside `allow` are dropped before a byte is framed, and counted per peer;
//  - a frame over `maxMessageBytes` is counted and skipped, the connection lives on;
//  - memory per connection is bounded by the framer (≤ maxMessageBytes held) and in all by
//    `maxHeldBytes` (a connection that would overdraw it is closed) and `maxConnections`;
//  - `allow` and `maxConnectionsPerPeer` apply at TCP accept, also for TLS (before the handshake,
//    so stalled handshakes from one sender cannot take every slot); handshakes time out after
//    `handshakeTimeoutMs`, idle connections after `idleTimeoutMs`, and a sender that holds a frame
//    open (trickling) for `frameTimeoutMs` is closed;
//  - backpressure: when the consumer lags, every TCP/TLS socket is paused (senders buffer);
//    UDP datagrams that find the queue full are dropped and counted, never silently.
import { createSocket, type Socket as UdpSocket, type RemoteInfo } from 'node:dgram';
import { readFileSync } from 'node:fs';
import { createServer as createTcpServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createTlsServer, type TLSSocket, type Server as TlsServer } from 'node:tls';
import { isIpv6 } from '../parse/ip.js';
import { MailjailError, type Cidr, type Ip, type Origin, type OriginKind, type RawRecord, type Source } from '../types.js';
import { Framer, HeldBudget, trimFrame } from './framer.js';
import { allowedPeer, compileAllowlist, PeerTable, type PeerCounters } from './peers.js';
import { BatchQueue } from './queue.js';

export interface SyslogTlsConfig {
  /** PEM files of the listener's certificate chain and key. */
  readonly certFile: string;
  readonly keyFile: string;
  /** PEM file of the CA(s) that sign client certificates (needed for `requireClientCert`). */
  readonly caFile?: string;
  /** Refuse clients without a certificate signed by `caFile` (mutual TLS). Default false. */
  readonly requireClientCert?: boolean;
}

export interface SyslogListenerConfig {
  /** Source name, carried in every record's origin. */
  readonly name: string;
  readonly protocol: 'udp' | 'tcp' | 'tls';
  /** Bind address. Default "::" (IPv6 and IPv4 on a dual-stack host). */
  readonly host?: string;
  /** Port; 0 picks a free one (see `listen()`'s answer). */
  readonly port: number;
  /** Sender networks allowed in (addresses or CIDRs, IPv4 and IPv6). Nothing else gets in. */
  readonly allow: readonly string[];
  /** Largest message accepted, in bytes. Default 65536. */
  readonly maxMessageBytes?: number;
  /** TCP/TLS: close a connection silent for this long. Default 300000 (5 min). */
  readonly idleTimeoutMs?: number;
  /**
   * TCP/TLS: close a connection whose current frame is not complete this long after it began
   * (a sender trickling bytes never goes idle). Time paused for backpressure does not count.
   * Default 30000.
   */
  readonly frameTimeoutMs?: number;
  /** TLS: close a connection whose handshake has not completed after this long. Default 10000. */
  readonly handshakeTimeoutMs?: number;
  /**
   * TCP/TLS: bytes of partial frames held across all connections of this listener. A connection
   * whose framer would need more is closed and counted in `overBudget`. Default 32 MiB.
   */
  readonly maxHeldBytes?: number;
  /** TCP/TLS: simultaneous connections. Default 1024. */
  readonly maxConnections?: number;
  /**
   * TCP/TLS: simultaneous connections from one sender address. Default 64: a broken or hostile
   * sender cannot take every slot of `maxConnections` from the others.
   */
  readonly maxConnectionsPerPeer?: number;
  /** Records queued before TCP reading pauses / UDP drops. Default 16384. */
  readonly highWater?: number;
  /** Largest batch handed on. Default 1024. */
  readonly maxBatch?: number;
  /** Peers remembered in the counters. Default 4096. */
  readonly maxPeers?: number;
  /** UDP: SO_RCVBUF to ask for. Default 8 MiB (the kernel caps it at net.core.rmem_max). */
  readonly udpRecvBufferBytes?: number;
  readonly tls?: SyslogTlsConfig;
}

export interface SyslogStats {
  readonly name: string;
  readonly protocol: 'udp' | 'tcp' | 'tls';
  readonly received: number;
  readonly bytes: number;
  readonly denied: number;
  readonly oversize: number;
  readonly badFrames: number;
  /** UDP datagrams dropped because the consumer was behind. */
  readonly dropped: number;
  readonly connections: number;
  readonly activeConnections: number;
  /** Connections refused because their sender already had maxConnectionsPerPeer open. */
  readonly peerLimited: number;
  /** Connections refused because maxConnections were open (handshaking ones included). */
  readonly refused: number;
  readonly idleTimeouts: number;
  /** Connections closed because a frame stayed incomplete for frameTimeoutMs. */
  readonly frameTimeouts: number;
  /** Connections closed because their partial frame would have overdrawn maxHeldBytes. */
  readonly overBudget: number;
  /** Bytes of partial frames held now, across all connections. */
  readonly heldBytes: number;
  /** TLS handshakes that did not complete within handshakeTimeoutMs. */
  readonly handshakeTimeouts: number;
  readonly tlsErrors: number;
  /** Times TCP reading was paused for backpressure, and whether it is paused now. */
  readonly pauses: number;
  readonly paused: boolean;
  readonly queued: number;
  readonly peers: Readonly<Record<string, PeerCounters>>;
}

const ORIGIN_KIND: Record<SyslogListenerConfig['protocol'], OriginKind> = {
  udp: 'syslog-udp', tcp: 'syslog-tcp', tls: 'syslog-tls',
};

const peerName = (ip: Ip, port: number | undefined): string =>
  isIpv6(ip) ? `[${ip}]:${port ?? 0}` : `${ip}:${port ?? 0}`;

export class SyslogSource implements Source {
  readonly name: string;
  private readonly cfg: SyslogListenerConfig;
  private readonly allow: readonly Cidr[];
  private readonly maxMessage: number;
  private readonly peers: PeerTable;
  private queue: BatchQueue | undefined;
  /** The listening TCP server, for TLS too: TLS connections are admitted here, then handshaken. */
  private server: NetServer | undefined;
  private readonly held: HeldBudget;
  private udp: UdpSocket | undefined;
  private readonly sockets = new Set<Socket>();
  /** Open TCP/TLS connections per sender address (for maxConnectionsPerPeer). */
  private readonly openPerPeer = new Map<string, number>();
  /** TLS: the raw TCP sockets under TLS (destroyed on close, so close never waits on a handshake). */
  private readonly rawSockets = new Set<Socket>();
  private isPaused = false;
  private readonly c = {
    received: 0, bytes: 0, denied: 0, oversize: 0, badFrames: 0, dropped: 0,
    connections: 0, peerLimited: 0, refused: 0, idleTimeouts: 0, frameTimeouts: 0, overBudget: 0,
    handshakeTimeouts: 0, tlsErrors: 0, pauses: 0,
  };
  /** When reading last resumed after backpressure: paused time does not count toward frameTimeoutMs. */
  private resumedAt = 0;

  constructor(cfg: SyslogListenerConfig) {
    if (!['udp', 'tcp', 'tls'].includes(cfg.protocol)) {
      throw new MailjailError('MJ_SRC_CONFIG', `${cfg.name}: protocol must be udp, tcp or tls`);
    }
    if (cfg.protocol === 'tls' && !cfg.tls) {
      throw new MailjailError('MJ_SRC_CONFIG', `${cfg.name}: protocol tls needs tls.certFile and tls.keyFile`);
    }
    if (cfg.tls?.requireClientCert && !cfg.tls.caFile) {
      throw new MailjailError('MJ_SRC_CONFIG', `${cfg.name}: tls.requireClientCert needs tls.caFile`);
    }
    if (!Number.isInteger(cfg.port) || cfg.port < 0 || cfg.port > 65535) {
      throw new MailjailError('MJ_SRC_CONFIG', `${cfg.name}: port ${cfg.port} is not a port`);
    }
    this.name = cfg.name;
    this.cfg = cfg;
    this.allow = compileAllowlist(cfg.allow);
    this.maxMessage = cfg.maxMessageBytes ?? 65536;
    this.peers = new PeerTable(cfg.maxPeers ?? 4096);
    this.held = new HeldBudget(cfg.maxHeldBytes ?? 32 * 1024 * 1024);
  }

  /** Binds the listener (records() does it too); answers the bound address, useful with port 0. */
  async listen(): Promise<{ address: string; port: number }> {
    if (this.server || this.udp) return this.address();
    const q = new BatchQueue({ highWater: this.cfg.highWater ?? 16384, maxBatch: this.cfg.maxBatch ?? 1024 });
    q.onDrain(() => this.resume());
    this.queue = q;
    const host = this.cfg.host ?? '::';
    try {
      if (this.cfg.protocol === 'udp') await this.listenUdp(host);
      else await this.listenStream(host);
    } catch (e) {
      this.queue = undefined;
      throw new MailjailError('MJ_SRC_LISTEN', `${this.name}: cannot listen on ${host}:${this.cfg.port}/${this.cfg.protocol}`, { cause: e });
    }
    return this.address();
  }

  address(): { address: string; port: number } {
    const a = this.udp ? this.udp.address() : this.server?.address();
    if (!a || typeof a === 'string') throw new MailjailError('MJ_SRC_LISTEN', `${this.name}: not listening`);
    return { address: a.address, port: a.port };
  }

  async *records(signal: AbortSignal): AsyncIterable<readonly RawRecord[]> {
    await this.listen();
    const q = this.queue!;
    const onAbort = (): void => q.close();
    signal.addEventListener('abort', onAbort, { once: true });
    if (signal.aborted) q.close();
    try {
      for (;;) {
        const batch = await q.next();
        if (!batch) return;
        yield batch;
      }
    } finally {
      signal.removeEventListener('abort', onAbort);
      await this.close();
    }
  }

  /** Stops listening and drops every connection. */
  async close(): Promise<void> {
    this.queue?.close();
    const srv = this.server;
    const udp = this.udp;
    this.server = undefined;
    this.udp = undefined;
    for (const s of this.sockets) s.destroy();
    for (const s of this.rawSockets) s.destroy();
    this.sockets.clear();
    this.rawSockets.clear();
    if (srv) await new Promise<void>((r) => srv.close(() => r()));
    if (udp) await new Promise<void>((r) => udp.close(() => r()));
  }

  stats(): SyslogStats {
    return {
      name: this.name,
      protocol: this.cfg.protocol,
      ...this.c,
      activeConnections: this.sockets.size,
      heldBytes: this.held.held,
      paused: this.isPaused,
      queued: this.queue?.length ?? 0,
      peers: this.peers.snapshot(),
    };
  }

  private pause(): void {
    if (this.isPaused) return;
    this.isPaused = true;
    this.c.pauses++;
    for (const s of this.sockets) s.pause();
  }

  private resume(): void {
    if (!this.isPaused) return;
    this.isPaused = false;
    this.resumedAt = Date.now();
    for (const s of this.sockets) s.resume();
  }

  private listenUdp(host: string): Promise<void> {
    const v6 = host.includes(':');
    const sock = createSocket({ type: v6 ? 'udp6' : 'udp4', reuseAddr: false });
    const kind = ORIGIN_KIND.udp;
    sock.on('message', (msg: Buffer, rinfo: RemoteInfo) => this.onDatagram(msg, rinfo, kind));
    sock.on('error', (e) => this.queue?.close(new MailjailError('MJ_SRC_SOCKET', `${this.name}: ${e.message}`, { cause: e })));
    this.udp = sock;
    return new Promise((resolve, reject) => {
      sock.once('error', reject);
      sock.bind({ address: host, port: this.cfg.port }, () => {
        sock.off('error', reject);
        try {
          sock.setRecvBufferSize(this.cfg.udpRecvBufferBytes ?? 8 * 1024 * 1024);
        } catch {
          // The kernel may refuse; the default buffer still works, drops stay counted.
        }
        resolve();
      });
    });
  }

  private onDatagram(msg: Buffer, rinfo: RemoteInfo, kind: OriginKind): void {
    const ip = allowedPeer(this.allow, rinfo.address);
    if (!ip) {
      this.c.denied++;
      this.peers.get(rinfo.address).denied++;
      return;
    }
    const pc = this.peers.get(ip);
    if (msg.length > this.maxMessage) {
      this.c.oversize++;
      pc.oversize++;
      return;
    }
    const q = this.queue;
    if (!q || q.full) {
      this.c.dropped++;
      pc.dropped++;
      return;
    }
    const text = trimFrame(msg);
    if (text.length === 0) return;
    this.c.received++;
    this.c.bytes += msg.length;
    pc.received++;
    pc.bytes += msg.length;
    const origin: Origin = { kind, name: this.name, peer: peerName(ip, rinfo.port) };
    q.push({ kind: 'line', text: text.toString('utf8'), origin, received: Date.now() });
  }

  private listenStream(host: string): Promise<void> {
    let tls: TlsServer | undefined;
    if (this.cfg.protocol === 'tls') {
      const t = this.cfg.tls!;
      // Never listens itself: the TCP server below admits a connection, then hands it over.
      tls = createTlsServer({
        cert: readFileSync(t.certFile),
        key: readFileSync(t.keyFile),
        ...(t.caFile ? { ca: readFileSync(t.caFile) } : {}),
        requestCert: t.requireClientCert ?? false,
        rejectUnauthorized: t.requireClientCert ?? false,
        minVersion: 'TLSv1.2',
        handshakeTimeout: this.cfg.handshakeTimeoutMs ?? 10000,
      });
      tls.on('secureConnection', (s: TLSSocket) => {
        const ip = allowedPeer(this.allow, s.remoteAddress);
        if (ip) this.onStream(s, ORIGIN_KIND.tls, ip);
        else s.destroy();
      });
      tls.on('tlsClientError', (e: Error & { code?: string }, s) => {
        if (e.code === 'ERR_TLS_HANDSHAKE_TIMEOUT') this.c.handshakeTimeouts++;
        else this.c.tlsErrors++;
        s.destroy();
      });
    }
    const srv = createTcpServer({ noDelay: true }, (raw) => {
      const ip = this.admit(raw);
      if (!ip) {
        raw.destroy();
        return;
      }
      if (!tls) {
        this.onStream(raw, ORIGIN_KIND.tcp, ip);
        return;
      }
      this.rawSockets.add(raw);
      raw.once('close', () => this.rawSockets.delete(raw));
      tls.emit('connection', raw);
    });
    srv.maxConnections = this.cfg.maxConnections ?? 1024;
    // Node closes a connection over maxConnections at once and tells only through 'drop'.
    srv.on('drop', () => this.c.refused++);
    this.server = srv;
    return new Promise((resolve, reject) => {
      srv.once('error', reject);
      srv.listen({ host, port: this.cfg.port, ipv6Only: false }, () => {
        srv.off('error', reject);
        srv.on('error', (e) => this.queue?.close(new MailjailError('MJ_SRC_SOCKET', `${this.name}: ${e.message}`, { cause: e })));
        resolve();
      });
    });
  }

  /**
   * At TCP accept, before any byte is read or a TLS handshake begins: the allowlist, then the
   * per-sender cap. The sender's slot is held until the raw socket closes (TLS included).
   */
  private admit(s: Socket): Ip | undefined {
    const ip = allowedPeer(this.allow, s.remoteAddress);
    if (!ip) {
      this.c.denied++;
      this.peers.get(s.remoteAddress ?? '?').denied++;
      return undefined;
    }
    const open = this.openPerPeer.get(ip) ?? 0;
    if (open >= (this.cfg.maxConnectionsPerPeer ?? 64)) {
      this.c.peerLimited++;
      return undefined;
    }
    this.openPerPeer.set(ip, open + 1);
    s.once('close', () => {
      const n = (this.openPerPeer.get(ip) ?? 1) - 1;
      if (n > 0) this.openPerPeer.set(ip, n);
      else this.openPerPeer.delete(ip);
    });
    return ip;
  }

  private onStream(s: Socket, kind: OriginKind, ip: Ip): void {
    const pc = this.peers.get(ip);
    pc.connections++;
    this.c.connections++;
    const origin: Origin = { kind, name: this.name, peer: peerName(ip, s.remotePort) };
    let received = 0;
    /** A frame ended during this push: the next one began no earlier than this chunk. */
    let boundary = false;
    const framer = new Framer(this.maxMessage, {
      frame: (msg) => {
        boundary = true;
        this.c.received++;
        pc.received++;
        const q = this.queue;
        if (q && !q.push({ kind: 'line', text: msg.toString('utf8'), origin, received })) this.pause();
      },
      fault: (f) => {
        boundary = true;
        if (f === 'over-budget') {
          this.c.overBudget++;
          s.destroy();
        } else if (f === 'oversize') {
          this.c.oversize++;
          pc.oversize++;
        } else {
          this.c.badFrames++;
          pc.badFrames++;
        }
      },
    }, this.held);
    this.sockets.add(s);
    if (this.isPaused) s.pause();
    s.setTimeout(this.cfg.idleTimeoutMs ?? 300000, () => {
      this.c.idleTimeouts++;
      s.destroy();
    });
    // Trickle guard: idleTimeoutMs never fires for a sender that sends a byte now and then.
    const frameTimeout = this.cfg.frameTimeoutMs ?? 30000;
    let frameStart = 0;
    let frameTimer: NodeJS.Timeout | undefined;
    const checkFrame = (): void => {
      frameTimer = undefined;
      if (s.destroyed || !framer.midFrame) return;
      const now = Date.now();
      const waited = this.isPaused ? 0 : now - Math.max(frameStart, this.resumedAt);
      if (waited >= frameTimeout) {
        this.c.frameTimeouts++;
        s.destroy();
        return;
      }
      frameTimer = setTimeout(checkFrame, frameTimeout - waited);
    };
    s.on('data', (chunk: Buffer) => {
      received = Date.now();
      this.c.bytes += chunk.length;
      pc.bytes += chunk.length;
      const wasMid = framer.midFrame;
      boundary = false;
      framer.push(chunk);
      if (!framer.midFrame) return;
      if (!wasMid || boundary) frameStart = received;
      frameTimer ??= setTimeout(checkFrame, frameTimeout);
    });
    // A reset or garbage from one peer ends that connection only.
    s.on('error', () => s.destroy());
    s.on('close', () => {
      this.sockets.delete(s);
      clearTimeout(frameTimer);
      framer.dispose();
    });
  }
}
