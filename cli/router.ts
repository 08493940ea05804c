// The front door of `ftjs up`: one port that routes each request to whichever node is live, as any
// load balancer would (HAProxy, nginx, a Kubernetes readiness probe): by polling /_ft/health.

import http from 'node:http';
import type { Logger } from 'pino';

export interface RouterOptions {
  nodes: Array<{ name: string; url: string }>;
  /** How often each node's health is polled. */
  healthIntervalMs: number;
  /** How long a request waits for some node to become live before it gets 503. */
  waitForLiveMs: number;
  logger: Logger;
}

export class Router {
  private live: { name: string; url: string } | null = null;
  private timer: NodeJS.Timeout | undefined;
  readonly server: http.Server;

  constructor(private readonly options: RouterOptions) {
    this.server = http.createServer((req, res) => void this.forward(req, res));
  }

  start(): void {
    const poll = () => void this.poll();
    poll();
    this.timer = setInterval(poll, this.options.healthIntervalMs);
  }

  stop(): void {
    clearInterval(this.timer);
    this.server.close();
    this.server.closeAllConnections();
  }

  get liveNode(): string | null {
    return this.live?.name ?? null;
  }

  private async poll(): Promise<void> {
    let found: { name: string; url: string } | null = null;
    for (const node of this.options.nodes) {
      try {
        const res = await fetch(`${node.url}/_ft/health`, { signal: AbortSignal.timeout(this.options.healthIntervalMs * 4) });
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
  }

  private async target(): Promise<{ name: string; url: string } | null> {
    const deadline = Date.now() + this.options.waitForLiveMs;
    while (!this.live && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, this.options.healthIntervalMs));
    return this.live;
  }

  private async forward(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks);
    const node = await this.target();
    if (!node) {
      res.writeHead(503, { 'content-type': 'application/json', 'retry-after': '1' });
      res.end(JSON.stringify({ error: 'no node of the pair is live' }));
      return;
    }
    const url = new URL(req.url ?? '/', node.url);
    const upstream = http.request(url, { method: req.method, headers: { ...req.headers, host: url.host } }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.statusMessage, up.headers);
      up.pipe(res);
    });
    upstream.on('error', (error) => {
      this.options.logger.warn({ node: node.name, err: error.message }, 'front door: forwarding failed');
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json', 'retry-after': '1' });
        res.end(JSON.stringify({ error: `the live node (${node.name}) failed: ${error.message}` }));
      } else res.destroy();
    });
    upstream.end(body);
  }
}
