// The logging channel's transport in production: WebSocket (ws), one binary message per frame, over
// plain TCP or mutual TLS (channel-tls.ts). The listener's HTTP edge refuses what is not a WebSocket
// upgrade (plain HTTP: 426; garbage: 400; a bad certificate: dropped) and logs it; bounds on frames,
// connections and the upgrade's duration hold here, before any frame reaches a shell.

import * as http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import type { RawData, WebSocket } from 'ws';
import { closeReason } from './auth.js';
import { backupTlsOptions, primaryTlsOptions } from './channel-tls.js';
import type { Connection, ConnectionHandlers, DialOptions, Listener, ListenOptions, Transport } from './transport.js';

/** TCP connections the port accepts at once (handshakes, junk, the attached backup). */
export const MAX_CONNECTIONS = 64;
/** How long a closing peer gets to answer our close frame before its socket is destroyed. */
const CLOSE_GRACE_MS = 1000;
/** How often HTTP connections are checked against the header/request timeouts, in ms. */
const HTTP_TIMEOUT_CHECK_MS = 1000;

/**
 * ws (200 KB bundled) and node:https (tls) load at the first dial or listen, not when this module
 * loads: every node imports the transport through its Env, and `ftjs run`, which never dials, paid
 * for them on its cold start (issue 19). ws is CommonJS, so a synchronous require serves `dial`.
 */
const lazyRequire = createRequire(import.meta.url);
let wsModule: typeof import('ws') | undefined;
function wsLib(): typeof import('ws') {
  wsModule ??= lazyRequire('ws') as typeof import('ws');
  return wsModule;
}

export const wsTransport: Transport = {
  listen: listenWs,
  dial(url: string, options: DialOptions): Connection {
    const ws = new (wsLib().WebSocket)(url, { maxPayload: options.maxFrameBytes, perMessageDeflate: false, ...(options.tls ? backupTlsOptions(options.tls) : {}) });
    return new WsConnection(ws, url);
  },
};

class WsConnection implements Connection {
  private closeTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly ws: WebSocket,
    readonly remote: string,
  ) {}

  get open(): boolean {
    return this.ws.readyState === this.ws.OPEN;
  }

  get bufferedBytes(): number {
    return this.ws.bufferedAmount;
  }

  on(handlers: ConnectionHandlers): void {
    const ws = this.ws;
    ws.on('open', () => handlers.open?.());
    ws.on('message', (data, isBinary) => handlers.message(toBytes(data), isBinary));
    ws.on('error', (err) => handlers.error(err));
    ws.on('close', (code, reason) => {
      clearTimeout(this.closeTimer);
      handlers.close(code, reason.toString('utf8'));
    });
  }

  send(frame: Uint8Array, written?: (error?: Error) => void): void {
    if (this.ws.readyState !== this.ws.OPEN) return;
    this.ws.send(frame, { binary: true }, written ? (err) => written(err ?? undefined) : undefined);
  }

  close(code: number, reason: string): void {
    const ws = this.ws;
    if (ws.readyState === ws.OPEN) ws.close(code, closeReason(reason));
    else if (ws.readyState === ws.CONNECTING) {
      ws.terminate();
      return;
    }
    if (this.closeTimer === undefined && ws.readyState !== ws.CLOSED) {
      this.closeTimer = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
      this.closeTimer.unref();
    }
  }

  terminate(): void {
    if (this.ws.readyState !== this.ws.CLOSED) this.ws.terminate();
  }
}

async function listenWs(options: ListenOptions, onConnection: (connection: Connection) => void): Promise<Listener> {
  const { logger } = options;
  const httpOptions = {
    // A connection that never completes its HTTP upgrade is dropped like a slow handshake.
    headersTimeout: options.handshakeTimeoutMs,
    requestTimeout: options.handshakeTimeoutMs,
    connectionsCheckingInterval: Math.min(HTTP_TIMEOUT_CHECK_MS, options.handshakeTimeoutMs),
  };
  const server = options.tls ? (lazyRequire('node:https') as typeof import('node:https')).createServer({ ...httpOptions, ...primaryTlsOptions(options.tls) }) : http.createServer(httpOptions);
  if (options.tls) {
    server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
      // No certificate, one not signed by our CA, or not TLS at all: refused before any WebSocket.
      logger.warn({ remote: remoteOf(socket), err: { code: err.code, message: err.message } }, `refused a TLS connection on the logging-channel port: ${err.code ?? err.message}`);
    });
  }
  server.maxConnections = MAX_CONNECTIONS;
  const wss = new (wsLib().WebSocketServer)({
    noServer: true,
    maxPayload: options.maxFrameBytes,
    // Compression would let a small frame inflate past our bounds' intent and costs CPU on the hot path.
    perMessageDeflate: false,
    clientTracking: false,
  });
  const open = new Set<WebSocket>();
  server.on('upgrade', (req, socket, head) => {
    const why = options.turnAway();
    if (why !== null) {
      logger.warn({ remote: remoteOf(socket) }, `turned away a connection: ${why}`);
      socket.end('HTTP/1.1 503 Service Unavailable\r\nconnection: close\r\n\r\n');
      socket.destroy();
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      open.add(ws);
      ws.on('close', () => open.delete(ws));
      onConnection(new WsConnection(ws, remoteOf(req.socket)));
    });
  });
  server.on('request', (req, res) => {
    logger.warn({ remote: remoteOf(req.socket), method: req.method, url: req.url }, 'refused a plain HTTP request on the logging-channel port (it speaks WebSocket only)');
    res.writeHead(426, { 'content-type': 'text/plain', connection: 'close', upgrade: 'websocket' });
    res.end('this port is the ftjs logging channel: WebSocket only\n');
  });
  server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
    // Garbage on the port (not HTTP at all) lands here; an attached backup is a different socket.
    logger.warn({ remote: remoteOf(socket), err: { code: err.code, message: err.message } }, `refused a non-WebSocket connection on the logging-channel port: ${err.code ?? err.message}`);
    if (err.code !== 'ECONNRESET' && socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    socket.destroy();
  });
  wss.on('wsClientError', (err, socket, req) => {
    logger.warn({ remote: remoteOf(req.socket), err: { message: err.message } }, `refused a bad WebSocket upgrade: ${err.message}`);
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\n\r\n');
    socket.destroy();
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => logger.error({ err }, 'logging-channel server error'));
  return {
    port: (server.address() as AddressInfo).port,
    tls: options.tls !== undefined,
    async close(): Promise<void> {
      // The shell closed its connections gracefully before; what is left (or slow to answer) goes now.
      await Promise.all(
        [...open].map(
          (ws) =>
            new Promise<void>((resolve) => {
              if (ws.readyState === ws.CLOSED) return resolve();
              ws.once('close', () => resolve());
              setTimeout(() => ws.terminate(), CLOSE_GRACE_MS).unref();
            }),
        ),
      );
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      wss.close();
    },
  };
}

function remoteOf(socket: Duplex | { remoteAddress?: string; remotePort?: number }): string {
  const s = socket as { remoteAddress?: string; remotePort?: number };
  return `${s.remoteAddress ?? '?'}:${s.remotePort ?? '?'}`;
}

function toBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}
