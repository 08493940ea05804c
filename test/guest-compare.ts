// Runs a guest app two ways and compares them route by route: `ftjs run ENTRY` (a real process on a
// real socket) against plain Node calling `app.fetch(new Request(...))` on the very bundle ftjs builds
// (same esbuild step, written to a file and imported). Whatever differs is the runtime's doing.

import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bundleGuest } from '../dist/hypervisor/vm/bundle.js';
import { tempDir } from './helpers.js';

export interface Fetcher {
  fetch(request: Request, env: Record<string, string>, ctx: unknown): Response | Promise<Response>;
}

/** The default export of the esbuild bundle of `entry`, imported into this Node process. */
export async function importBundle(entry: string): Promise<Fetcher> {
  const bundled = await bundleGuest(entry);
  const file = path.join(tempDir('ftjs-bundle-'), 'bundle.mjs');
  writeFileSync(file, bundled.sources[0]!.text);
  const module = (await import(/* @vite-ignore */ pathToFileURL(file).href)) as { default: Fetcher };
  const app = module.default;
  // Wrapped: an itty router is a Proxy that answers every property, `then` included, so awaiting it hangs.
  return { fetch: (request, env, ctx) => app.fetch(request, env, ctx) };
}

export interface RouteRequest {
  method: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Uint8Array;
}

export interface Seen {
  status: number;
  /** Every header the app set, sorted, names lower-case. */
  headers: Array<[string, string]>;
  body: string;
}

/** Headers a server or the HTTP stack adds (or drops) on its own: not the app's. */
const TRANSPORT_HEADERS = new Set(['date', 'connection', 'keep-alive', 'transfer-encoding', 'content-length', 'ftjs-seq', 'ftjs-node', 'ftjs-epoch']);

async function seen(response: Response): Promise<Seen> {
  const headers = [...response.headers].filter(([name]) => !TRANSPORT_HEADERS.has(name)).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
  return { status: response.status, headers, body: await response.text() };
}

export function header(s: Seen, name: string): string | undefined {
  return s.headers.find(([n]) => n === name)?.[1];
}

const CTX = { waitUntil() {}, passThroughOnException() {} };

/** The same request against the ftjs node at `baseUrl` and against `app` in Node. */
export async function both(baseUrl: string, app: Fetcher, env: Record<string, string>, route: RouteRequest): Promise<{ ftjs: Seen; node: Seen }> {
  const init = (): RequestInit => ({ method: route.method, headers: route.headers ?? {}, ...(route.body !== undefined ? { body: route.body as BodyInit } : {}) });
  const ftjs = await seen(await fetch(baseUrl + route.path, init()));
  const node = await seen(await app.fetch(new Request(baseUrl + route.path, init()), env, CTX));
  return { ftjs, node };
}

/** A multipart/form-data body with a fixed boundary (fetch's FormData picks a random one). */
export function multipart(boundary: string, parts: Array<{ name: string; value: string; filename?: string; type?: string }>): Uint8Array {
  let text = '';
  for (const p of parts) {
    text += `--${boundary}\r\nContent-Disposition: form-data; name="${p.name}"${p.filename ? `; filename="${p.filename}"` : ''}\r\n`;
    if (p.type) text += `Content-Type: ${p.type}\r\n`;
    text += `\r\n${p.value}\r\n`;
  }
  return new TextEncoder().encode(`${text}--${boundary}--\r\n`);
}
