// A keyed store that declares the drill's kv workload at /store and silently drops every fifth
// write while acknowledging it (test/drill-workload.test.ts: the drill must catch it).
const store = new Map();
let writes = 0;

export default {
  async fetch(request) {
    const { pathname } = new URL(request.url);
    if (pathname === '/.well-known/ftjs-drill') return Response.json({ workload: 'kv', prefix: '/store' });
    if (!pathname.startsWith('/store/')) return new Response('not found', { status: 404 });
    const key = decodeURIComponent(pathname.slice('/store/'.length));
    if (request.method === 'PUT') {
      const value = await request.text();
      if (++writes % 5 !== 0) store.set(key, value);
      return new Response(null, { status: 204 });
    }
    const value = store.get(key);
    return value === undefined ? new Response('missing', { status: 404 }) : new Response(value);
  },
};
