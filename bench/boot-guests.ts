// The guests of the boot and cold-start benchmarks (bench/boot.ts, bench/cold-start.ts): guest-apps/kv.js
// and two Hono bundles built here with esbuild, ~60 KB and ~100 KB.

import { statSync } from 'node:fs';
import path from 'node:path';
import { projectPath } from './util.js';

export const HONO_SMALL = `import { Hono } from 'hono';
import { cors } from 'hono/cors';
import { etag } from 'hono/etag';
import { basicAuth } from 'hono/basic-auth';
import { jwt } from 'hono/jwt';
import { validator } from 'hono/validator';
const app = new Hono();
const store = new Map();
app.use('*', cors());
app.use('/e/*', etag());
app.get('/', (c) => c.json({ hello: 'world' }));
app.put('/kv/:key', async (c) => { store.set(c.req.param('key'), await c.req.text()); return c.json({ ok: true }); });
app.get('/kv/:key', (c) => (store.has(c.req.param('key')) ? c.json({ key: c.req.param('key'), value: store.get(c.req.param('key')) }) : c.json({ error: 'not found' }, 404)));
export const unused = [basicAuth, jwt, validator];
export default app;
`;

export const HONO_LARGE = `${HONO_SMALL.replace('export const unused = [basicAuth, jwt, validator];', '')}
import { sign, verify } from 'hono/jwt';
import { logger } from 'hono/logger';
import { secureHeaders } from 'hono/secure-headers';
import { streamText } from 'hono/streaming';
import { HTTPException } from 'hono/http-exception';
import { prettyJSON } from 'hono/pretty-json';
import { bodyLimit } from 'hono/body-limit';
import { cache } from 'hono/cache';
import { compress } from 'hono/compress';
import { csrf } from 'hono/csrf';
import { html } from 'hono/html';
import { getCookie, setCookie } from 'hono/cookie';
import { timing } from 'hono/timing';
import { requestId } from 'hono/request-id';
export const unused = [basicAuth, jwt, validator, sign, verify, logger, secureHeaders, streamText, HTTPException, prettyJSON, bodyLimit, cache, compress, csrf, html, getCookie, setCookie, timing, requestId];
`;

export interface Guest {
  name: string;
  file: string;
  bytes: number;
}

/** kv.js, and the Hono bundles written into `dir`. */
export async function buildGuests(dir: string): Promise<Guest[]> {
  const { build } = await import('esbuild');
  const guests: Guest[] = [{ name: 'kv.js', file: projectPath('guest-apps/kv.js'), bytes: statSync(projectPath('guest-apps/kv.js')).size }];
  for (const [name, source] of [
    ['hono-60k', HONO_SMALL],
    ['hono-100k', HONO_LARGE],
  ] as const) {
    const file = path.join(dir, `${name}.mjs`);
    // Whitespace-minified: the loader on this branch still finds imports with a text pattern that
    // Hono's doc comments trip (issue 14); the code is the same.
    await build({
      stdin: { contents: source, resolveDir: projectPath('.'), loader: 'js' },
      bundle: true,
      format: 'esm',
      platform: 'neutral',
      conditions: ['workerd', 'worker', 'browser'],
      mainFields: ['module', 'main'],
      minifyWhitespace: true,
      outfile: file,
      logLevel: 'error',
    });
    guests.push({ name, file, bytes: statSync(file).size });
  }
  return guests;
}
