// The front door of `ftjs up`: one port that routes each request to whichever node is live, as any
// load balancer would (HAProxy, nginx, a Kubernetes readiness probe): by polling /_ft/health.

import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { Logger } from 'pino';

export interface RouterOptions {
  nodes: Array<{ name: string; url: string }>;
  /** How often each node's health is polled. */
  healthIntervalMs: number;
  /** How long a request waits for some node to become live before it gets 503. */
  waitForLiveMs: number;
  logger: Logger;
  /** Called as each node response's headers arrive (a drill uses it to time who spoke when). */
  onUpstreamResponse?: (node: string, headers: http.IncomingHttpHeaders, atMs: number) => void;
  /**
   * `ftjs up`: the pair's protection, served at GET /_ft/up and stamped on every response as
   * `ftjs-protected: yes|no`. `adminToken`: /_ft/up then needs it, as the nodes' /_ft/status does.
   */
  frontStatus?: () => Record<string, unknown>;
  adminToken?: string | null;
}

/** How long stop() waits for requests in flight to be answered. */
const DRAIN_MS = 2_000;

export class Router {
  private live: { name: string; url: string } | null = null;
  private timer: NodeJS.Timeout | undefined;
  private stopping = false;
  private foundLive = false;
  /** Requests still being answered; stop() lets them finish (a 502 says more than a reset). */
  private readonly inFlight = new Set<http.ServerResponse>();
  readonly server: http.Server;

  constructor(private readonly options: RouterOptions) {
    this.server = http.createServer((req, res) => {
      this.inFlight.add(res);
      res.once('close', () => this.inFlight.delete(res));
      void this.forward(req, res);
    });
  }

  start(): void {
    const poll = () => void this.poll();
    poll();
    this.timer = setInterval(poll, this.options.healthIntervalMs);
  }

  /**
   * Stops accepting, then gives each request in flight up to `drainMs` to get its answer (its node
   * may just have died: the client is owed the 502 that says so, not a reset connection).
   */
  async stop(drainMs = DRAIN_MS): Promise<void> {
    this.stopping = true;
    clearInterval(this.timer);
    this.server.close();
    this.server.closeIdleConnections();
    const deadline = Date.now() + drainMs;
    while (this.inFlight.size > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
    this.server.closeAllConnections();
  }

  /** A node joins the set the front door routes among (a fresh backup that may go live later). */
  addNode(node: { name: string; url: string }): void {
    if (this.options.nodes.some((n) => n.name === node.name)) throw new Error(`front door: a node named ${node.name} is already routed to`);
    this.options.nodes.push(node);
  }

  removeNode(name: string): void {
    const i = this.options.nodes.findIndex((n) => n.name === name);
    if (i >= 0) this.options.nodes.splice(i, 1);
  }

  /** Some node of the pair has answered live since the door started (it stays true). */
  get everFoundLive(): boolean {
    return this.foundLive;
  }

  /** Requests received and not yet answered. */
  get requestsInFlight(): number {
    return this.inFlight.size;
  }

  get liveNode(): string | null {
    return this.live?.name ?? null;
  }

  private async poll(): Promise<void> {
    let found: { name: string; url: string } | null = null;
    for (const node of [...this.options.nodes]) {
      try {
        const res = await fetch(`${node.url}/_ft/health`, { signal: AbortSignal.timeout(Math.max(250, this.options.healthIntervalMs * 4)) });
        await res.arrayBuffer();
        if (res.status === 200) {
          found = node;
          break;
        }
      } catch {
        /* down or unreachable: not live */
      }
    }
    if (found?.name !== this.live?.name) this.options.logger.info({ live: found?.name ?? null }, found ? `front door now routes to ${found.name}` : 'front door: no node is live');
    this.live = found;
    if (found) this.foundLive = true;
  }

  private async target(): Promise<{ name: string; url: string } | null> {
    const deadline = Date.now() + this.options.waitForLiveMs;
    while (!this.live && !this.stopping && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, this.options.healthIntervalMs));
    return this.live;
  }

  private async forward(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { frontStatus } = this.options;
    if (frontStatus) {
      const status = frontStatus();
      if ((req.url ?? '').split('?')[0] === '/_ft/up') return this.sendUp(req, res, status);
      res.setHeader('ftjs-protected', status.protected === true ? 'yes' : 'no');
    }
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    // Only a request with an Idempotency-Key may be sent twice: the pair answers a retry with the
    // original response instead of running it again.
    const retriable = typeof req.headers['idempotency-key'] === 'string';
    const deadline = Date.now() + this.options.waitForLiveMs;
    let lastError = 'no node of the pair is live';
    for (let attempt = 1; ; attempt++) {
      const node = await this.target();
      if (node) {
        const outcome = await this.attempt(node, req, body);
        if (outcome.kind === 'response') {
          const { upstream } = outcome;
          // A node that is not live (503 from the node itself) is as good as down for a retriable request.
          const notLive = upstream.statusCode === 503 && upstream.headers['ftjs-seq'] === undefined;
          if (!(retriable && notLive && Date.now() < deadline)) {
            res.writeHead(upstream.statusCode ?? 502, upstream.statusMessage, upstream.headers);
            upstream.pipe(res);
            return;
          }
          upstream.resume();
          lastError = `${node.name} is not live`;
        } else {
          lastError = `the live node (${node.name}) failed: ${outcome.error.message}`;
          this.options.logger.warn({ node: node.name, err: outcome.error.message, retriable, attempt }, 'front door: forwarding failed');
        }
        if (!retriable || Date.now() >= deadline) break;
        if (this.live?.name === node.name) this.live = null; // look again before the next attempt
      } else {
        if (this.stopping) lastError = 'the front door is stopping';
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, this.options.healthIntervalMs));
    }
    res.writeHead(retriable ? 503 : 502, { 'content-type': 'application/json', 'retry-after': '1' });
    res.end(JSON.stringify({ error: lastError }));
  }

  private sendUp(req: http.IncomingMessage, res: http.ServerResponse, status: Record<string, unknown>): void {
    req.resume();
    const token = this.options.adminToken;
    if (token && !bearerMatches(req.headers.authorization, token)) {
      res.writeHead(401, { 'content-type': 'application/json', 'www-authenticate': 'Bearer realm="ftjs"' });
      res.end(JSON.stringify({ error: '/_ft/up needs Authorization: Bearer <admin token>' }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json', 'ftjs-protected': status.protected === true ? 'yes' : 'no' });
    res.end(JSON.stringify(status));
  }

  private attempt(node: { name: string; url: string }, req: http.IncomingMessage, body: Buffer): Promise<{ kind: 'response'; upstream: http.IncomingMessage } | { kind: 'error'; error: Error }> {
    return new Promise((resolve) => {
      const url = new URL(req.url ?? '/', node.url);
      const upstream = http.request(url, { method: req.method, headers: { ...req.headers, host: url.host } }, (up) => {
        this.options.onUpstreamResponse?.(node.name, up.headers, Date.now());
        resolve({ kind: 'response', upstream: up });
      });
      upstream.on('error', (error) => resolve({ kind: 'error', error }));
      upstream.end(body);
    });
  }
}

function bearerMatches(header: string | undefined, token: string): boolean {
  const given = Buffer.from(header?.startsWith('Bearer ') ? header.slice(7) : '');
  const wanted = Buffer.from(token);
  return given.byteLength === wanted.byteLength && timingSafeEqual(given, wanted);
}
