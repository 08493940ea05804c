// A closed-loop HTTP load generator: `connections` keep-alive clients, each sending its next request
// as soon as the previous response arrived, for `durationMs`. Records every latency.

import http from 'node:http';

export interface LoadRequest {
  method: string;
  path: string;
  body?: string;
}

export interface LoadResult {
  requests: number;
  errors: number;
  seconds: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  latenciesMs: number[];
}

export async function closedLoop(baseUrl: string, connections: number, durationMs: number, next: (i: number) => LoadRequest): Promise<LoadResult> {
  const url = new URL(baseUrl);
  const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
  const latencies: number[] = [];
  let errors = 0;
  let counter = 0;
  const started = performance.now();
  const deadline = started + durationMs;
  const one = (req: LoadRequest) =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now();
      const r = http.request({ host: url.hostname, port: url.port, method: req.method, path: req.path, agent, headers: req.body ? { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(req.body) } : {} }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode && res.statusCode < 500 ? performance.now() - t0 : -1));
      });
      r.on('error', reject);
      r.end(req.body);
    });
  await Promise.all(
    Array.from({ length: connections }, async () => {
      while (performance.now() < deadline) {
        try {
          const ms = await one(next(counter++));
          if (ms < 0) errors++;
          else latencies.push(ms);
        } catch {
          errors++;
        }
      }
    }),
  );
  const seconds = (performance.now() - started) / 1000;
  agent.destroy();
  const sorted = latencies.sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  return { requests: latencies.length, errors, seconds, rps: latencies.length / seconds, p50Ms: at(0.5), p99Ms: at(0.99), latenciesMs: sorted };
}

/** The kv.js mix the benchmarks use: half PUTs of small values, half GETs, over 1,000 keys. */
export function kvMix(i: number): LoadRequest {
  const key = `k${i % 1000}`;
  return i % 2 === 0 ? { method: 'PUT', path: `/kv/${key}`, body: `value-${i}` } : { method: 'GET', path: `/kv/${key}` };
}
