// Plain Node serving a Workers-style module through node:http, with no sandbox: the baseline the boot
// and cold-start benchmarks compare `ftjs run` with. Prints one JSON line with the URL once listening.
//
//   node dist/bench/node-serve.js <module> [port]

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

interface Service {
  fetch(request: Request, env: Record<string, string>, ctx: unknown): Response | Promise<Response>;
}

const file = process.argv[2];
if (!file) throw new Error('usage: node-serve.js <module> [port]');
const service = ((await import(pathToFileURL(path.resolve(file)).href)) as { default: Service }).default;
const ctx = { waitUntil() {}, passThroughOnException() {} };

const server = http.createServer((req, res) => {
  void (async () => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const hasBody = req.method !== 'GET' && req.method !== 'HEAD';
    const headers = new Headers();
    for (const [name, value] of Object.entries(req.headers)) if (typeof value === 'string') headers.set(name, value);
    const request = new Request(`http://${req.headers.host ?? 'localhost'}${req.url ?? '/'}`, { method: req.method, headers, body: hasBody ? Buffer.concat(chunks) : null });
    const response = await service.fetch(request, {}, ctx);
    const body = Buffer.from(await response.arrayBuffer());
    // A Content-Length, as ftjs sends: the load generator reads only length-delimited responses.
    res.writeHead(response.status, response.statusText, { ...Object.fromEntries(response.headers), 'content-length': String(body.byteLength) });
    res.end(body);
  })().catch((error: Error) => {
    res.writeHead(500, { 'content-type': 'text/plain' });
    res.end(error.stack);
  });
});
server.listen(Number(process.argv[3] ?? 0), '127.0.0.1', () => {
  const { port } = server.address() as AddressInfo;
  process.stdout.write(`${JSON.stringify({ msg: 'serving', url: `http://127.0.0.1:${port}` })}\n`);
});
