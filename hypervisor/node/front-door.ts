// The node's HTTP face: guest traffic on the live node, `/_ft/health` and `/_ft/status` on every node.
// Request bodies are bounded here, at the edge, before anything reaches the log or the VM.

import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { Logger } from 'pino';
import type { HeaderList } from '../../logging-channel/entry.js';
import { startupMark } from '../vm/startup-marks.js';
import { type LiveLoop, QueueFullError } from './live-loop.js';
import { classifyTarget } from './request-target.js';
import type { ResponseStream } from './response-stream.js';

export interface FrontDoorOptions {
  maxRequestBytes: number;
  /** The origin guests see in request URLs (--public-url); without it, the validated Host header's. */
  publicOrigin?: string | null;
  /** When set, /_ft/status answers only requests with `Authorization: Bearer <token>` (health stays open for load balancers). */
  adminToken?: string | null;
  /** Seconds a client is told to wait when this node does not serve guest traffic. */
  retryAfterSeconds: number;
}

/** What the CLI sets at the edge (--public-url, --admin-token-file / FTJS_ADMIN_TOKEN). */
export type EdgeOptions = Pick<FrontDoorOptions, 'publicOrigin' | 'adminToken'>;

export const DEFAULT_MAX_REQUEST_BYTES = 1024 * 1024;

const EMPTY_BODY = new Uint8Array(0);

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
  /** `ftjs run --test-scheduled`: the configured crons that POST /_ft/scheduled may fire now; absent: the endpoint is off. */
  testScheduled?(): readonly string[];
}

// Headers that belong to one hop and must not be passed to or from the guest as-is.
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'content-length']);

export function createFrontDoor(view: NodeView, options: FrontDoorOptions, logger: Logger): http.Server {
  const server = http.createServer((req, res) => {
    startupMark('first request in');
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
  // HTTP/1.1 requires a Host header (RFC 9112 §3.2); HTTP/1.0 may omit it.
  const host = req.headers.host ?? (req.httpVersion === '1.0' ? 'localhost' : undefined);
  const target = classifyTarget(req.url ?? '/', host, options.publicOrigin ?? null);
  if (target.kind === 'bad') {
    await drain(req);
    return sendJson(res, target.status, { error: target.reason });
  }
  if (target.kind === 'operator') return operator(view, options, target.endpoint, target.query, req, res);
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
  // A request without Content-Length or Transfer-Encoding has no body (RFC 9112 §6.3): no need to
  // wait for its end (node:http discards the empty rest once the response is sent).
  const body = req.headers['content-length'] === undefined && req.headers['transfer-encoding'] === undefined ? EMPTY_BODY : await readBody(req, options.maxRequestBytes);
  if (body === null) {
    return sendJson(res, 413, { error: `request body exceeds the limit of ${options.maxRequestBytes} bytes (--max-request-bytes)` }, true);
  }
  const headers: HeaderList = [];
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!.toLowerCase();
    if (!HOP_BY_HOP.has(name)) headers.push([name, raw[i + 1]!]);
  }
  const url = target.url;
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
  startupMark('first response out');
}

/** The node's own endpoints: never the guest's, whatever spelling of /_ft/ reached them. */
async function operator(view: NodeView, options: FrontDoorOptions, endpoint: string, query: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  await drain(req);
  if (endpoint === 'health') {
    // Cheap by design: load balancers poll it often, and it must never wait behind the guest.
    const live = view.healthy();
    return sendJson(res, live ? 200 : 503, { live, ...view.identity() });
  }
  if (endpoint === 'status') {
    if (options.adminToken && !bearerMatches(req.headers.authorization, options.adminToken)) {
      res.setHeader('www-authenticate', 'Bearer realm="ftjs"');
      return sendJson(res, 401, { error: '/_ft/status needs Authorization: Bearer <admin token>' });
    }
    // ?hash=0 leaves out the state hash, for frequent polling (lag, roles) that must not slow the guest.
    return sendJson(res, 200, await view.status({ hash: !/[?&]hash=0(?:&|$)/.test(query) }));
  }
  if (endpoint === 'scheduled' && view.testScheduled) return fireScheduled(view, view.testScheduled(), query, req, res);
  return sendJson(res, 404, { error: `no operator endpoint /_ft/${endpoint} (there are /_ft/health and /_ft/status); /_ft/ never reaches the guest` });
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const wanted = Buffer.from(token);
  return given.byteLength === wanted.byteLength && timingSafeEqual(given, wanted);
}

/** POST /_ft/scheduled[?cron=EXPR]: one firing of a configured cron trigger now (as wrangler's --test-scheduled). */
function fireScheduled(view: NodeView, crons: readonly string[], query: string, req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.method !== 'POST') return sendJson(res, 405, { error: 'POST /_ft/scheduled fires a cron trigger' });
  const loop = view.liveLoop();
  if (!loop) return sendJson(res, 503, { error: `this node does not serve: ${view.notLiveReason()}` });
  const asked = new URLSearchParams(query).get('cron');
  const cron = asked ?? crons[0];
  if (cron === undefined || !crons.includes(cron)) {
    return sendJson(res, 400, { error: cron === undefined ? 'no cron trigger is configured (--cron)' : `"${cron}" is not one of the configured cron triggers: ${JSON.stringify(crons)}` });
  }
  const scheduledTimeMs = Date.now();
  loop.triggerCron(cron, scheduledTimeMs);
  return sendJson(res, 202, { cron, scheduledTime: scheduledTimeMs });
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
    // A view, not a copy: the body is copied once, into the batch sent to the VM worker (run-wire.ts).
    req.on('end', () => resolve(over ? null : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks)));
    req.on('error', reject);
  });
}
