// A guest exercising this runtime's aborts, forms, encodings and navigator end to end (test/aborts.test.ts).
// env.UPSTREAM: an HTTP server whose /hang never answers and whose /echo echoes the request.

const held = new Map();

function json(data, status = 200) {
  return new Response(JSON.stringify(data), { status, headers: { 'content-type': 'application/json' } });
}

async function outcome(promise) {
  try {
    const r = await promise;
    return { ok: true, status: r.status, body: await r.text() };
  } catch (e) {
    return { ok: false, name: e && e.name, message: e && e.message, reason: typeof e === 'string' ? e : undefined };
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    const up = env.UPSTREAM;
    switch (url.pathname) {
      case '/pre-aborted': {
        const c = new AbortController();
        c.abort('stopped before it started');
        return json(await outcome(fetch(`${up}/hang?pre`, { signal: c.signal })));
      }
      case '/timeout': {
        const ms = Number(url.searchParams.get('ms'));
        const started = Date.now();
        const r = await outcome(fetch(`${up}/hang?timeout`, { signal: AbortSignal.timeout(ms) }));
        return json({ ...r, waitedAtLeast: Date.now() - started >= ms });
      }
      case '/held': {
        // A fetch that waits until /abort aborts it (another request: a task of its own).
        const c = new AbortController();
        held.set(url.searchParams.get('id'), c);
        const any = AbortSignal.any([c.signal, new AbortController().signal]);
        return json(await outcome(fetch(new Request(`${up}/hang?held`, { signal: any }))));
      }
      case '/abort': {
        const c = held.get(url.searchParams.get('id'));
        held.delete(url.searchParams.get('id'));
        c?.abort();
        return json({ aborted: c !== undefined });
      }
      case '/abort-same-task': {
        const c = new AbortController();
        const p = fetch(`${up}/hang?same-task`, { signal: c.signal });
        c.abort(new Error('changed my mind'));
        return json(await outcome(p));
      }
      case '/completes': {
        const c = new AbortController();
        const r = await outcome(fetch(`${up}/echo`, { method: 'POST', body: 'x', signal: c.signal }));
        c.abort(); // after completion: no effect
        return json(r);
      }
      case '/form-upload': {
        const fd = new FormData();
        fd.append('name', 'ftjs');
        fd.append('file', new File(['héllo'], 'h.txt', { type: 'text/plain' }));
        const r = await fetch(`${up}/echo`, { method: 'POST', body: fd });
        return json(await r.json());
      }
      case '/parse': {
        const form = await request.formData();
        const out = [];
        for (const [k, v] of form) out.push(typeof v === 'string' ? [k, v] : [k, v.name, v.type, await v.text()]);
        console.log('parsed', JSON.stringify(out));
        return json(out);
      }
      case '/platform':
        return json({
          ua: navigator.userAgent,
          cores: navigator.hardwareConcurrency,
          utf16: new TextDecoder('utf-16le').decode(new Uint8Array([0xff, 0xfe, 0x68, 0, 0x69, 0])),
          w1252: new TextDecoder('latin1').decode(new Uint8Array([0x80, 0xe9])),
          pattern: new URLPattern({ pathname: '/u/:id' }).exec('http://x/u/7')?.pathname.groups.id,
        });
      default:
        return json({ error: 'not found' }, 404);
    }
  },
};
