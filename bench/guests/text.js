// The floor from an async handler that reads the request body with text() on PUTs, as kv.js does (bench/vm-request.ts --guest).
export default {
  async fetch(request) {
    const body = request.method === 'PUT' ? await request.text() : '';
    return new Response(body.length >= 0 ? 'ok' : 'no');
  },
};
