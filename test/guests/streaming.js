// A guest that streams: responses whose bodies are ReadableStreams that produce over time (timers),
// a Hono-style streamText (TransformStream + writer.write), request bodies read as streams,
// compression streams, and streams that fail or run past the limit. Used by test/streaming.test.ts.

const encoder = new TextEncoder();
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const line = (value) => encoder.encode(JSON.stringify(value) + '\n');

/** `n` chunks, `gapMs` apart (timers), each saying when (guest clock) it was produced. */
function timedChunks(n, gapMs) {
  let i = 0;
  return new ReadableStream({
    start(controller) {
      const produce = () => {
        controller.enqueue(line({ i, at: Date.now() }));
        console.log('produced chunk ' + i);
        i++;
        if (i < n) setTimeout(produce, gapMs);
        else controller.close();
      };
      produce();
    },
  });
}

/** Hono's streamText pattern: a TransformStream's readable is the body; the handler writes over time. */
function streamText(write) {
  const { readable, writable } = new TransformStream();
  const writer = writable.getWriter();
  const stream = {
    write: (text) => writer.write(encoder.encode(text)),
    sleep,
  };
  (async () => {
    try {
      await write(stream);
    } finally {
      await writer.close();
    }
  })();
  return new Response(readable, { headers: { 'content-type': 'text/plain; charset=UTF-8', 'transfer-encoding': 'chunked', 'x-content-type-options': 'nosniff' } });
}

export default {
  async fetch(request) {
    const url = new URL(request.url);
    const n = Number(url.searchParams.get('n') ?? 5);
    const gap = Number(url.searchParams.get('gap') ?? 100);
    switch (url.pathname) {
      case '/stream':
        return new Response(timedChunks(n, gap), { headers: { 'content-type': 'application/x-ndjson' } });
      case '/text':
        return streamText(async (stream) => {
          for (let i = 0; i < n; i++) {
            await stream.write(`line ${i} at ${Date.now()}\n`);
            if (i + 1 < n) await stream.sleep(gap);
          }
        });
      case '/echo': {
        // The request body as a stream: its chunks, and its text through a TextDecoderStream.
        const [a, b] = request.body.tee();
        const sizes = [];
        for await (const chunk of a) sizes.push(Object.prototype.toString.call(chunk) + ':' + chunk.byteLength);
        let text = '';
        for await (const s of b.pipeThrough(new TextDecoderStream())) text += s;
        return Response.json({ sizes, text, used: request.bodyUsed });
      }
      case '/gzip':
        return new Response(request.body.pipeThrough(new CompressionStream(url.searchParams.get('format') ?? 'gzip')));
      case '/gunzip':
        return new Response(request.body.pipeThrough(new DecompressionStream(url.searchParams.get('format') ?? 'gzip')));
      case '/fail':
        // Two chunks, then the stream errors: the client must see the response cut off.
        return new Response(
          new ReadableStream({
            async pull(controller) {
              await sleep(10);
              if ((this.sent = (this.sent ?? 0) + 1) > 2) controller.error(new Error('the source broke'));
              else controller.enqueue(encoder.encode('part\n'));
            },
          }),
        );
      case '/endless':
        // Never ends on its own: the host cuts it off at --max-streamed-response-bytes.
        return new Response(
          new ReadableStream({
            async pull(controller) {
              await sleep(1);
              controller.enqueue(new Uint8Array(1000));
            },
          }),
        );
      case '/ticks': {
        // An endless event stream (as SSE would be): it stops when the client goes away.
        let timer = 0;
        let n = 0;
        return new Response(
          new ReadableStream({
            start(controller) {
              const tick = () => {
                controller.enqueue(encoder.encode(`tick ${n++}\n`));
                timer = setTimeout(tick, gap);
              };
              tick();
            },
            cancel(reason) {
              clearTimeout(timer);
              console.log(`ticks cancelled after ${n}: ${reason && reason.name}: ${reason && reason.message}`);
            },
          }),
        );
      }
      case '/strings':
        // Chunks that are not bytes: an error the guest's console names.
        return new Response(new ReadableStream({ start(c) { c.enqueue('not bytes'); c.close(); } }));
      case '/hold':
        // A stream that waits for /release (a second request): shows open streams count.
        return new Response(new ReadableStream({ start(c) { c.enqueue(encoder.encode('open\n')); globalThis.held = (globalThis.held ?? []).concat([c]); } }));
      case '/release':
        for (const c of globalThis.held ?? []) {
          try {
            c.close();
          } catch {
            // a stream the host refused (cancelled) cannot be closed
          }
        }
        globalThis.held = [];
        return new Response('released');
      case '/proxy': {
        // An outbound fetch whose body is a stream (read whole first: outbound bodies leave as one output),
        // and the upstream's body passed on as the response body (untouched: sent whole, not streamed).
        const upstream = await fetch(url.searchParams.get('to'), {
          method: 'POST',
          body: ReadableStream.from(['streamed ', 'upstream ', 'body']).pipeThrough(new TextEncoderStream()),
          duplex: 'half',
        });
        return new Response(upstream.body, upstream);
      }
      case '/blob':
        return new Response(new Blob(['from ', 'a blob']).stream());
      case '/plain':
        return new Response('plain body');
      default:
        return new Response('not found', { status: 404 });
    }
  },
};
