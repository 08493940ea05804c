// A closed-loop HTTP/1.1 load generator: `connections` keep-alive clients, each sending its next
// request as soon as the previous response arrived, for `durationMs`. Records every latency.
//
// It speaks HTTP over raw sockets instead of node:http: on this 2-core machine the generator shares
// a core with a node under test, and node:http's client cost ~0.13 ms of CPU per request, as much as
// a third of what the node spends serving it. This one writes prebuilt request bytes and reads just
// the status line and Content-Length (every ftjs response has one; chunked responses are refused).

import net from 'node:net';

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

/** Bytes of one request as sent: the same headers node:http's client sends (Host, Connection, and for a body Content-Type and Content-Length). */
export function requestBytes(host: string, req: LoadRequest): Buffer {
  const body = req.body === undefined ? null : Buffer.from(req.body);
  const head = `${req.method} ${req.path} HTTP/1.1\r\nHost: ${host}\r\nConnection: keep-alive\r\n` + (body ? `Content-Type: text/plain\r\nContent-Length: ${body.byteLength}\r\n` : '') + '\r\n';
  return body ? Buffer.concat([Buffer.from(head, 'latin1'), body]) : Buffer.from(head, 'latin1');
}

const HEADER_END = Buffer.from('\r\n\r\n');
/** A response head longer than this is not an ftjs response: the connection is dropped as an error. */
const MAX_HEAD_BYTES = 64 * 1024;

/** Parses responses off one connection: `feed` returns the statuses of the responses completed by `chunk`. */
class ResponseReader {
  private buffered: Buffer = Buffer.alloc(0);
  /** Bytes of body still to skip for the response in progress, or -1 while reading a head. */
  private bodyLeft = -1;
  private status = 0;
  closeAfter = false;

  feed(chunk: Buffer, done: (status: number) => void): void {
    this.buffered = this.buffered.byteLength === 0 ? chunk : Buffer.concat([this.buffered, chunk]);
    for (;;) {
      if (this.bodyLeft < 0) {
        const end = this.buffered.indexOf(HEADER_END);
        if (end < 0) {
          if (this.buffered.byteLength > MAX_HEAD_BYTES) throw new Error(`response head over ${MAX_HEAD_BYTES} bytes`);
          return;
        }
        const head = this.buffered.toString('latin1', 0, end);
        this.buffered = this.buffered.subarray(end + HEADER_END.byteLength);
        this.status = Number(head.slice(9, 12));
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (!length) throw new Error(`response without Content-Length (status ${this.status})`);
        this.closeAfter = /\r\nconnection:\s*close/i.test(head);
        this.bodyLeft = Number(length[1]);
      }
      if (this.buffered.byteLength < this.bodyLeft) {
        this.bodyLeft -= this.buffered.byteLength;
        this.buffered = Buffer.alloc(0);
        return;
      }
      this.buffered = this.buffered.subarray(this.bodyLeft);
      this.bodyLeft = -1;
      done(this.status);
      if (this.buffered.byteLength === 0) return;
    }
  }
}

export async function closedLoop(baseUrl: string, connections: number, durationMs: number, next: (i: number) => LoadRequest): Promise<LoadResult> {
  const url = new URL(baseUrl);
  const host = url.host;
  const port = Number(url.port);
  const latencies: number[] = [];
  let errors = 0;
  let counter = 0;
  const started = performance.now();
  const deadline = started + durationMs;

  const client = () =>
    new Promise<void>((finish) => {
      let socket: net.Socket;
      let reader: ResponseReader;
      let sentAt = 0;
      let inFlight = false;
      const send = () => {
        if (performance.now() >= deadline) {
          socket.end();
          finish();
          return;
        }
        inFlight = true;
        sentAt = performance.now();
        socket.write(requestBytes(host, next(counter++)));
      };
      const connect = () => {
        reader = new ResponseReader();
        socket = net.connect({ host: url.hostname, port, noDelay: true });
        socket.on('connect', send);
        socket.on('data', (chunk: Buffer) => {
          try {
            reader.feed(chunk, (status) => {
              inFlight = false;
              if (status >= 500 || status === 0) errors++;
              else latencies.push(performance.now() - sentAt);
              if (reader.closeAfter) socket.destroy();
              else send();
            });
          } catch {
            errors++;
            socket.destroy();
          }
        });
        socket.on('error', () => {});
        socket.on('close', () => {
          if (inFlight) errors++;
          inFlight = false;
          if (performance.now() < deadline) connect();
          else finish();
        });
      };
      connect();
    });

  await Promise.all(Array.from({ length: connections }, client));
  const seconds = (performance.now() - started) / 1000;
  const sorted = latencies.sort((a, b) => a - b);
  const at = (p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] ?? NaN;
  return { requests: latencies.length, errors, seconds, rps: latencies.length / seconds, p50Ms: at(0.5), p99Ms: at(0.99), latenciesMs: sorted };
}

/** The kv.js mix the benchmarks use: half PUTs of small values, half GETs, over 1,000 keys. */
export function kvMix(i: number): LoadRequest {
  const key = `k${i % 1000}`;
  return i % 2 === 0 ? { method: 'PUT', path: `/kv/${key}`, body: `value-${i}` } : { method: 'GET', path: `/kv/${key}` };
}
