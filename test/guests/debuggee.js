// A guest for the replay-debugger tests. Its state is reachable from the debugger's eval: `counter`
// and `history` are exported (eval `$mod.counter`), `lastKey` is a global (eval `globalThis.lastKey`).
//
//   POST /inc?key=K   counter + 1, remembers K      -> { counter }
//   GET  /time        reads the clock                 -> { now, counter }
//   GET  /throw       reads the clock, then throws (a guest exception with a stack)

export let counter = 0;
export const history = [];
globalThis.lastKey = null;

function json(data, status = 200) {
  return new Response(JSON.stringify(data), { status, headers: { 'content-type': 'application/json' } });
}

function fail(depth, at) {
  if (depth === 0) throw new Error(`boom from the guest at ${at}`);
  return fail(depth - 1, at);
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    switch (url.pathname) {
      case '/inc':
        counter++;
        globalThis.lastKey = url.searchParams.get('key');
        history.push(globalThis.lastKey);
        console.log(`counter is ${counter}`);
        return json({ counter });
      case '/time': {
        const now = Date.now();
        console.log(`time is ${now}`);
        return json({ now, counter });
      }
      case '/throw':
        return fail(3, Date.now());
      default:
        return json({ error: 'not found' }, 404);
    }
  },
};
