// The node's HTTP face: guest traffic on the live node, `/_ft/health` and `/_ft/status` on every node.
// Request bodies are bounded here, at the edge, before anything reaches the log or the VM.

import http from 'node:http';
import type { Logger } from 'pino';
import type { HeaderList } from '../logging-channel/entry.js';
import { QueueFullError, type LiveLoop } from './live-loop.js';
import type { ResponseStream } from './response-stream.js';

export interface FrontDoorOptions {
  maxRequestBytes: number;
  /** Seconds a client is told to wait when this node does not serve guest traffic. */
  retryAfterSeconds: number;
}

export const DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024;

export interface NodeView {
  /** The loop serving guest traffic, or null when this node is not live. */
  liveLoop(): LiveLoop | null;
  /** `hash`: include the state hash (SHA-256 of the whole VM memory: costly, computed behind the guest's tasks). */
  status(options: { hash: boolean }): Promise<Record<string, unknown>>;
  /** Why guest traffic is refused, when liveLoop() is null. */
  notLiveReason(): string;
  /** 200 on /_ft/health: this node is live and its outputs flow (not claiming, not verifying its epoch). */
  healthy(): boolean;
  /** Who answers, stamped on every guest response (ftjs-node, ftjs-epoch). */
  identity(): { node: string; epoch: number };
}

// Headers that belong to one hop and must not be passed to or from the guest as-is.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'content-length']);

export function createFrontDoor(view: NodeView, options: FrontDoorOptions, logger: Logger): http.Server {
  const server = http.createServer((req, res) => {
    void handle(view, options, req, res).catch((error: Error) => {
      logger.error({ err: error }, 'front door: request failed');
      if (!res.headersSent) sendJson(res, 500, { error: 'internal error in the ftjs node' });
      else res.destroy();
    });
  });
  server.keepAliveTimeout = 5_000;
  return server;
}

async function handle(view: NodeView, options: FrontDoorOptions, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const path = req.url ?? '/';
  if (path === '/_ft/health') {
    // Cheap by design: load balancers poll it often, and it must never wait behind the guest.
    await drain(req);
    const live = view.healthy();
    return sendJson(res, live ? 200 : 503, { live, ...view.identity() });
  }
  if (path === '/_ft/status' || path === '/_ft/status?hash=0') {
    // ?hash=0 leaves out the state hash, for frequent polling (lag, roles) that must not slow the guest.
    await drain(req);
    return sendJson(res, 200, await view.status({ hash: path === '/_ft/status' }));
  }
  const loop = view.liveLoop();
  if (!loop) {
    await drain(req);
    res.setHeader('retry-after', String(options.retryAfterSeconds));
    return sendJson(res, 503, { error: `this node does not serve guest traffic: ${view.notLiveReason()}` });
  }
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > options.maxRequestBytes) {
    req.resume();
    return sendJson(res, 413, { error: `request body of ${declared} bytes exceeds the limit of ${options.maxRequestBytes} bytes (--max-request-bytes)` }, true);
  }
  const body = await readBody(req, options.maxRequestBytes);
  if (body === null) {
    return sendJson(res, 413, { error: `request body exceeds the limit of ${options.maxRequestBytes} bytes (--max-request-bytes)` }, true);
  }
  const headers: HeaderList = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name)) headers.push([name, raw[i + 1]!]);
  }
  const host = req.headers.host ?? 'localhost';
  const url = `http://${host}${path.startsWith('/') ? path : `/${path}`}`;
  let response;
  try {
    response = await loop.submitRequest(req.method ?? 'GET', url, headers, body);
  } catch (error) {
    if (error instanceof QueueFullError) {
      res.setHeader('retry-after', String(options.retryAfterSeconds));
      return sendJson(res, 503, { error: error.message });
    }
    throw error;
  }
  if (res.destroyed) {
    response.stream?.detach(); // the client left before the head: cancel the guest's stream
    return;
  }
  const flat: string[] = [];
  for (const [name, value] of response.headers) if (!HOP_BY_HOP.has(name.toLowerCase())) flat.push(name, value);
  // Which log entry produced this response (replay it with `ftjs replay`), and which node in which
  // epoch released it (a drill checks that one node speaks per epoch).
  const who = view.identity();
  flat.push('ftjs-seq', String(response.seq), 'ftjs-node', who.node, 'ftjs-epoch', String(who.epoch));
  if (response.stream) return sendStreamed(req, res, response.status, response.statusText, flat, response.stream);
  flat.push('content-length', String(req.method === 'HEAD' ? 0 : response.body.byteLength));
  res.writeHead(response.status, response.statusText || undefined, flat);
  res.end(req.method === 'HEAD' ? undefined : response.body);
}

/**
 * A streamed response: the head at once (chunked, no content-length), then each chunk as the output
 * gate releases it. A stream that fails ends the HTTP response without its last chunk (the socket is
 * destroyed), so the client sees it cut off rather than complete.
 */
function sendStreamed(req: http.IncomingMessage, res: http.ServerResponse, status: number, statusText: string, headers: string[], stream: ResponseStream): void {
  res.writeHead(status, statusText || undefined, headers);
  res.flushHeaders();
  if (req.method === 'HEAD') {
    stream.detach();
    res.end();
    return;
  }
  // Closed before the end (the client went away): the guest's stream is cancelled, by a recorded event.
  res.on('close', () => stream.detach());
  stream.attach({
    write: (chunk) => void res.write(chunk),
    end: (error) => {
      if (error === null) res.end();
      else res.destroy(new Error(`the guest's response stream failed: ${error}`));
    },
  });
}

function sendJson(res: http.ServerResponse, status: number, value: unknown, close = false): void {
  const body = JSON.stringify(value);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...(close ? { connection: 'close' } : {}) });
  res.end(body);
}

function drain(req: http.IncomingMessage): Promise<void> {
  return new Promise((resolve) => {
    req.resume();
    req.on('end', resolve);
    req.on('error', () => resolve());
  });
}

/** Reads the body, or returns null once it passes `maxBytes`. */
function readBody(req: http.IncomingMessage, maxBytes: number): Promise<Uint8Array | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    let over = false;
    req.on('data', (chunk: Buffer) => {
      if (over) return;
      total += chunk.byteLength;
      if (total > maxBytes) {
        over = true;
        chunks.length = 0;
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => resolve(over ? null : new Uint8Array(Buffer.concat(chunks))));
    req.on('error', reject);
  });
}
