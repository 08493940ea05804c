// Guest-side half of the hypervisor: evaluated once at boot, after web.js, inside the VM.
// It owns every per-request host object on the guest side (resolvers, timer callbacks) in tables keyed
// by ids, so that the whole VM is plain WASM memory and can be snapshotted. It talks to the host through
// one function captured here and then removed from the global object; the guest cannot reach it.
// The completion value of this script is the dispatch function the host calls to deliver events.
(function () {
  'use strict';
  const host = globalThis.__ftjs_host;
  const web = globalThis.__ftjs_web;
  delete globalThis.__ftjs_host;
  delete globalThis.__ftjs_web;

  // Host operations (keep in sync with hypervisor/vm/vm.ts HostOp).
  const OP_RESPOND = 1;
  const OP_FETCH = 2;
  const OP_TIMER_SET = 3;
  const OP_TIMER_CLEAR = 4;
  const OP_CONSOLE = 5;
  // 6 (entropy) is called by the web glue (hypervisor/guest/web/crypto.js, subtle.js).
  const OP_BOOTED = 7;
  const OP_FETCH_ABORT = 8;
  // 9 (lazy web modules) is called by the web glue (hypervisor/guest/web/lazy.js).
  const OP_RESPOND_HEAD = 10;
  const OP_RESPOND_CHUNK = 11;
  const OP_RESPOND_END = 12;
  // 13: crypto.subtle, called by hypervisor/guest/web/subtle.js (OP_CRYPTO there).
  // 14 (OP_LAZY_GLUE) is called by the web glue's lazy Intl (web/intl.js), which captured the host itself.

  // Not provably deterministic across a host-side allocation difference (notes/quickjs.md): removed.
  delete globalThis.WeakRef;
  delete globalThis.FinalizationRegistry;
  // Shared memory and Atomics.wait could block the VM outside the interrupt handler's reach (and a
  // timed wait reads the host clock); a single-threaded guest has no use for them.
  delete globalThis.SharedArrayBuffer;
  delete globalThis.Atomics;

  const define = (name, value) =>
    Object.defineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });

  const JSONstringify = JSON.stringify;
  const JSONparse = JSON.parse;
  const ArrayBufferSlice = Function.prototype.call.bind(ArrayBuffer.prototype.slice);
  const AbortReason = globalThis.DOMException || Error; // captured: the guest may replace the global

  /** The request whose work is running: inherited by timers and fetches it starts. */
  let currentOwner = 0;
  let app = null;
  let env = Object.freeze({});
  let idempotency = { maxKeys: 10000, ttlMs: 86400000 };

  // ---------- console ----------
  const LEVELS = ['debug', 'log', 'info', 'warn', 'error'];
  function inspect(value, depth, seen) {
    switch (typeof value) {
      case 'string':
        return depth === 0 ? value : JSONstringify(value);
      case 'number':
      case 'boolean':
      case 'undefined':
        return String(value);
      case 'bigint':
        return value + 'n';
      case 'symbol':
        return value.toString();
      case 'function':
        return '[Function: ' + (value.name || 'anonymous') + ']';
    }
    if (value === null) return 'null';
    if (value instanceof Error) return value.stack ? value.name + ': ' + value.message + '\n' + value.stack : value.name + ': ' + value.message;
    if (seen.includes(value)) return '[Circular]';
    if (depth > 3) return Array.isArray(value) ? '[Array]' : '[Object]';
    seen = seen.concat([value]);
    if (Array.isArray(value)) return '[ ' + value.map((v) => inspect(v, depth + 1, seen)).join(', ') + ' ]';
    if (value instanceof Date) return isNaN(value) ? 'Invalid Date' : value.toISOString();
    if (value instanceof Map) return 'Map(' + value.size + ') { ' + [...value].map(([k, v]) => inspect(k, depth + 1, seen) + ' => ' + inspect(v, depth + 1, seen)).join(', ') + ' }';
    if (value instanceof Set) return 'Set(' + value.size + ') { ' + [...value].map((v) => inspect(v, depth + 1, seen)).join(', ') + ' }';
    const keys = Object.keys(value);
    const name = value.constructor && value.constructor !== Object && typeof value.constructor.name === 'string' ? value.constructor.name + ' ' : '';
    if (keys.length === 0) return name + '{}';
    return name + '{ ' + keys.map((k) => k + ': ' + inspect(value[k], depth + 1, seen)).join(', ') + ' }';
  }
  function format(args) {
    let out = '';
    for (let i = 0; i < args.length; i++) out += (i ? ' ' : '') + inspect(args[i], 0, []);
    return out;
  }
  const counts = new Map();
  const console = {};
  // console.group indentation, as Node: every line of every console call is indented.
  let groupIndent = '';
  function print(level, text) {
    host(OP_CONSOLE, level, groupIndent ? groupIndent + text.replace(/\n/g, '\n' + groupIndent) : text);
  }
  for (let i = 0; i < LEVELS.length; i++) {
    const level = i;
    console[LEVELS[i]] = function (...args) {
      print(level, format(args));
    };
  }
  console.trace = function (...args) {
    print(0, format(args) + '\n' + new Error().stack);
  };
  console.assert = function (condition, ...args) {
    if (!condition) print(4, 'Assertion failed' + (args.length ? ': ' + format(args) : ''));
  };
  console.count = function (label = 'default') {
    const n = (counts.get(label) || 0) + 1;
    counts.set(label, n);
    print(1, label + ': ' + n);
  };
  // console.time on performance.now(), which reads the recorded clock: replay prints the same figures.
  // Output and warnings as Node's ("label: 12.5ms", "1.250s" from a second on).
  const timeStarts = new Map();
  function elapsed(label, method) {
    label = String(label);
    const start = timeStarts.get(label);
    if (start === undefined) {
      print(3, "Warning: No such label '" + label + "' for console." + method + '()');
      return null;
    }
    const ms = performance.now() - start;
    return label + ': ' + (ms >= 1000 ? (ms / 1000).toFixed(3) + 's' : Number(ms.toFixed(3)) + 'ms');
  }
  console.time = function (label = 'default') {
    label = String(label);
    if (timeStarts.has(label)) print(3, "Warning: Label '" + label + "' already exists for console.time()");
    else timeStarts.set(label, performance.now());
  };
  console.timeLog = function (label = 'default', ...data) {
    const line = elapsed(label, 'timeLog');
    if (line !== null) print(1, data.length ? line + ' ' + format(data) : line);
  };
  console.timeEnd = function (label = 'default') {
    const line = elapsed(label, 'timeEnd');
    if (line === null) return;
    timeStarts.delete(String(label));
    print(1, line);
  };
  console.group = console.groupCollapsed = function (...label) {
    if (label.length) print(1, format(label));
    groupIndent += '  ';
  };
  console.groupEnd = function () {
    groupIndent = groupIndent.slice(0, -2);
  };
  console.table = console.dir = function (...args) {
    print(1, format(args));
  };
  define('console', console);

  // QuickJS's own out-of-memory and stack-overflow errors are the VM's limits being hit: say which
  // flag raises them, as the host does for the CPU and body limits.
  const EngineInternalError = globalThis.InternalError; // captured: the guest may replace the global
  function limitHint(error) {
    if (!(error instanceof EngineInternalError)) return '';
    if (error.message === 'out of memory') return ' (the guest hit its memory limit: --memory-limit-mb)';
    if (error.message === 'stack overflow') return ' (the guest hit its stack limit: --max-stack-kb)';
    return '';
  }
  function reportError(where, error) {
    let text = inspect(error, 0, []);
    const hint = limitHint(error);
    // On the first line, before the stack: a deep recursion's stack runs past the console line limit.
    if (hint) text = text.indexOf('\n') < 0 ? text + hint : text.replace('\n', hint + '\n');
    host(OP_CONSOLE, 4, 'Uncaught (' + where + ') ' + text);
  }

  // ---------- microtasks ----------
  define('queueMicrotask', function queueMicrotask(callback) {
    if (typeof callback !== 'function') throw new TypeError('queueMicrotask: callback must be a function');
    Promise.resolve().then(() => {
      try {
        callback();
      } catch (error) {
        reportError('queueMicrotask', error);
      }
    });
  });

  // ---------- timers ----------
  const timers = new Map();
  let nextTimerId = 1;
  const MAX_DELAY_MS = 2147483647;
  function delayOf(ms) {
    ms = Number(ms);
    if (!(ms > 0)) return 0;
    return ms > MAX_DELAY_MS ? MAX_DELAY_MS : Math.floor(ms);
  }
  function addTimer(callback, ms, args, repeat) {
    if (typeof callback !== 'function') throw new TypeError('timer callback must be a function (string callbacks are not supported)');
    const id = nextTimerId++;
    const delay = delayOf(ms);
    timers.set(id, { callback, args, repeat: repeat ? Math.max(delay, 1) : 0, owner: currentOwner });
    host(OP_TIMER_SET, id, delay, currentOwner);
    return id;
  }
  function clearTimer(id) {
    id = Number(id);
    if (timers.delete(id)) host(OP_TIMER_CLEAR, id);
  }
  define('setTimeout', function setTimeout(callback, ms, ...args) {
    return addTimer(callback, ms, args, false);
  });
  define('setInterval', function setInterval(callback, ms, ...args) {
    return addTimer(callback, ms, args, true);
  });
  define('clearTimeout', function clearTimeout(id) {
    clearTimer(id);
  });
  define('clearInterval', function clearInterval(id) {
    clearTimer(id);
  });
  // AbortSignal.timeout() fires through a guest timer (recorded like any other).
  web.useTimer((callback, ms) => addTimer(callback, ms, [], false));
  function fireTimer(id) {
    const timer = timers.get(id);
    if (!timer) return;
    if (timer.repeat) host(OP_TIMER_SET, id, timer.repeat, timer.owner);
    else timers.delete(id);
    currentOwner = timer.owner;
    try {
      timer.callback(...timer.args);
    } catch (error) {
      reportError('timer', error);
    }
  }

  // ---------- time ----------
  // Date.now() reads the engine clock import, which the hypervisor feeds from the input port. The
  // origin is the guest's clock when it first asks for it, not when this glue or the guest's top level
  // evaluates: a boot that reads no input can start from an image (hypervisor/vm/boot-image.ts).
  let timeOrigin = -1;
  const origin = () => (timeOrigin < 0 ? (timeOrigin = Date.now()) : timeOrigin);
  const performance = {
    get timeOrigin() {
      return origin();
    },
    now: function now() {
      const from = origin();
      return Date.now() - from;
    },
    mark() {},
    measure() {},
    toJSON() {
      return { timeOrigin: origin() };
    },
  };
  define('performance', performance);

  // ---------- entropy ----------
  // `crypto` (getRandomValues, randomUUID, subtle; host op 6) is installed by the web glue: web/crypto.js.

  // ---------- outbound fetch ----------
  const fetches = new Map();
  let nextFetchId = 1;
  // A body crosses to the host as an ArrayBuffer, or as a string the host encodes to UTF-8 itself.
  function bodyBuffer(bytes) {
    if (typeof bytes === 'string') return bytes.length === 0 ? undefined : bytes;
    if (!bytes || bytes.byteLength === 0) return undefined;
    if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes.buffer;
    return ArrayBufferSlice(bytes.buffer, bytes.byteOffset, bytes.byteOffset + bytes.byteLength);
  }
  define('fetch', function fetch(input, init) {
    let parts, signal;
    try {
      const request = web.toRequest(input, init);
      signal = web.requestSignal(request);
      // An aborted signal rejects at once with its reason: no request leaves.
      if (signal !== null) {
        const [aborted, reason] = web.abortState(signal);
        if (aborted) return Promise.reject(reason);
      }
      parts = web.requestParts(request);
    } catch (error) {
      return Promise.reject(error);
    }
    // A streamed request body is read whole first (outbound bodies leave as one output).
    if (web.isStream(parts.body)) {
      const intact = web.intactBytes(parts.body);
      if (intact === null) {
        const owner = currentOwner;
        return web.readAll(parts.body).then((bytes) => {
          currentOwner = owner;
          parts.body = bytes;
          return startFetch(parts, signal);
        });
      }
      parts.body = intact;
    }
    return startFetch(parts, signal);
  });
  function startFetch(parts, signal) {
    const id = nextFetchId++;
    return new Promise((resolve, reject) => {
      fetches.set(id, { resolve, reject, url: parts.url, owner: currentOwner });
      host(OP_FETCH, id, JSONstringify([parts.method, parts.url, parts.headers]), bodyBuffer(parts.body), currentOwner);
      // Aborted in flight: the guest sees the rejection in the task that aborted (a deterministic
      // consequence of recorded events), and the host cancels the outbound request; its result, if
      // any arrives, is never delivered.
      if (signal !== null) {
        web.onAbort(signal, (reason) => {
          if (!fetches.delete(id)) return; // already answered
          host(OP_FETCH_ABORT, id);
          reject(reason);
        });
      }
    });
  }
  function fetchDone(id, meta, body) {
    const pending = fetches.get(id);
    if (!pending) return;
    fetches.delete(id);
    currentOwner = pending.owner;
    const [error, status, statusText, headers] = JSONparse(meta);
    if (error !== null) {
      pending.reject(new TypeError('fetch failed: ' + error));
      return;
    }
    pending.resolve(web.makeResponse(status, statusText, headers, body ? new Uint8Array(body) : null, pending.url));
  }

  // ---------- exactly-once for clients ----------
  // A request with an Idempotency-Key runs once: its response is kept here, in guest memory, so it
  // is replicated, snapshotted and replayed with everything else. A retry (after a failover, to either
  // node) gets the original response; a retry while the original runs waits for it. Bounded by key
  // count and age (--idempotency-max-keys, --idempotency-ttl-ms); the oldest finished keys go first.
  const keyed = new Map(); // key -> { fingerprint, done, response: [meta, body], waiters: [id], atMs }
  const keyOfRequest = new Map(); // request id -> key
  function send(id, meta, body) {
    host(OP_RESPOND, id, meta, body);
    remember(id, meta, body);
  }
  /** Keeps the response of a keyed request (a streamed one once it ended) and answers its waiters. */
  function remember(id, meta, body) {
    const key = keyOfRequest.get(id);
    if (key === undefined) return;
    keyOfRequest.delete(id);
    const entry = keyed.get(key);
    if (!entry) return;
    entry.done = true;
    entry.response = [meta, body];
    const replayedMeta = withHeader(meta, 'idempotent-replayed', 'true');
    for (const waiter of entry.waiters) host(OP_RESPOND, waiter, replayedMeta, body);
    entry.waiters = [];
  }
  function withHeader(meta, name, value) {
    const parsed = JSONparse(meta);
    parsed[2] = parsed[2].concat([[name, value]]);
    return JSONstringify(parsed);
  }
  function plainResponse(id, status, statusText, message) {
    host(OP_RESPOND, id, JSONstringify([status, statusText, [['content-type', 'application/json']]]), JSONstringify({ error: message }));
  }
  /** The table holds keys oldest first (by guest time): drop finished ones past their age or the count. */
  function evictKeys(nowMs) {
    for (const [key, entry] of keyed) {
      // Under the count and this one young: the rest are younger still.
      if (keyed.size < idempotency.maxKeys && nowMs - entry.atMs <= idempotency.ttlMs) break;
      // A running key stays, whatever its age or the count (its waiters need it): look past it, so a
      // long request at the head does not pin the table full of finished keys behind it.
      if (entry.done) keyed.delete(key);
    }
  }
  /** Returns true when the request was answered (or parked) from the table instead of running. */
  function idempotent(id, key, method, url, bodyDigest) {
    const nowMs = Date.now();
    const fingerprint = method + ' ' + url.replace(/^[a-z]+:\/\/[^/]*/i, '') + ' (body sha256 ' + bodyDigest.slice(0, 12) + ')';
    let entry = keyed.get(key);
    // A finished key past its age is forgotten even when no new key came along to evict it.
    if (entry && entry.done && nowMs - entry.atMs > idempotency.ttlMs) {
      keyed.delete(key);
      entry = undefined;
    }
    if (entry) {
      if (entry.fingerprint !== fingerprint) {
        plainResponse(id, 422, 'Unprocessable Entity', 'Idempotency-Key ' + JSONstringify(key) + ' was first used for ' + entry.fingerprint + ', not ' + fingerprint);
      } else if (entry.done) {
        host(OP_RESPOND, id, withHeader(entry.response[0], 'idempotent-replayed', 'true'), entry.response[1]);
      } else {
        entry.waiters.push(id);
      }
      return true;
    }
    // Make room only for a new key, after the lookup: a retry must find its own key still there.
    evictKeys(nowMs);
    if (keyed.size >= idempotency.maxKeys) {
      plainResponse(id, 503, 'Service Unavailable', 'too many idempotency keys in flight (--idempotency-max-keys=' + idempotency.maxKeys + ')');
      return true;
    }
    keyed.set(key, { fingerprint, done: false, response: null, waiters: [], atMs: nowMs });
    keyOfRequest.set(id, key);
    return false;
  }
  /** The host stopped request `id` (CPU budget): its key is forgotten, so a retry runs afresh. */
  function aborted(id, message) {
    const key = keyOfRequest.get(id);
    if (key === undefined) return;
    keyOfRequest.delete(id);
    const entry = keyed.get(key);
    keyed.delete(key);
    if (entry) for (const waiter of entry.waiters) plainResponse(waiter, 503, 'Service Unavailable', message);
  }

  // ---------- inbound requests ----------
  function respond(id, response) {
    if (!(response instanceof Response)) {
      fail(id, new TypeError('fetch handler must return a Response (or a promise of one), got ' + (response === null ? 'null' : typeof response)));
      return;
    }
    let parts;
    try {
      parts = web.responseParts(response);
    } catch (error) {
      fail(id, error);
      return;
    }
    const meta = JSONstringify([parts.status, parts.statusText, parts.headers]);
    let body = parts.body;
    if (web.isStream(body)) {
      // A stream made from bytes that nothing read: sent whole, as any other body.
      const intact = web.intactBytes(body);
      if (intact === null) return streamOut(id, meta, body);
      body = intact;
    }
    send(id, meta, bodyBuffer(body));
  }
  // A streamed response: its head now, then each chunk as the stream gives it (in whatever task that
  // is: each is an output of its own task, held by the Output Rule like any other), then its end.
  // The host answers false when it will send no more (the response hit a limit, or was stopped):
  // the stream is then cancelled. A keyed request's response is kept whole once it ended.
  const streamsOut = new Map(); // request id -> cancel(reason), while its stream is being sent
  function streamOut(id, meta, stream) {
    let reader;
    try {
      reader = stream.getReader();
    } catch (error) {
      fail(id, error);
      return;
    }
    if (!host(OP_RESPOND_HEAD, id, meta)) {
      reader.cancel(new TypeError('the response was refused by the host'));
      return;
    }
    const keep = keyOfRequest.has(id) ? [] : null;
    let cancelled = false;
    streamsOut.set(id, (reason) => {
      // The host ended the response (the client went away): what the stream gives from now on is dropped.
      cancelled = true;
      streamsOut.delete(id);
      aborted(id, 'the streamed response was cut off: ' + reason);
      reader.cancel(new AbortReason(reason, 'AbortError'));
    });
    const stop = (message) => {
      streamsOut.delete(id);
      host(OP_RESPOND_END, id, message);
      aborted(id, 'the streamed response failed: ' + message);
    };
    const pump = () =>
      reader.read().then(
        (step) => {
          if (cancelled) return;
          currentOwner = id;
          if (step.done) {
            streamsOut.delete(id);
            host(OP_RESPOND_END, id);
            if (keep !== null) remember(id, meta, bodyBuffer(concatChunks(keep)));
            return;
          }
          const chunk = step.value;
          if (!(chunk instanceof Uint8Array)) {
            const error = new TypeError('a response body stream must give Uint8Array chunks, got ' + (chunk === null ? 'null' : typeof chunk));
            reportError('response stream', error);
            stop(error.name + ': ' + error.message);
            reader.cancel(error);
            return;
          }
          if (!host(OP_RESPOND_CHUNK, id, bodyBuffer(chunk))) {
            streamsOut.delete(id);
            aborted(id, 'the streamed response was cut off by the host');
            reader.cancel(new TypeError('the response was cut off by the host'));
            return;
          }
          if (keep !== null) keep.push(chunk.slice());
          return pump();
        },
        (error) => {
          if (cancelled) return;
          currentOwner = id;
          reportError('response stream', error);
          stop(error instanceof Error ? error.name + ': ' + error.message : String(error));
        },
      );
    pump();
  }
  function concatChunks(chunks) {
    let total = 0;
    for (let i = 0; i < chunks.length; i++) total += chunks[i].byteLength;
    const out = new Uint8Array(total);
    let offset = 0;
    for (let i = 0; i < chunks.length; i++) {
      out.set(chunks[i], offset);
      offset += chunks[i].byteLength;
    }
    return out;
  }
  function fail(id, error) {
    reportError('fetch handler', error);
    const message = (error instanceof Error ? error.name + ': ' + error.message : String(error)) + limitHint(error);
    send(id, JSONstringify([500, 'Internal Server Error', [['content-type', 'application/json']]]), JSONstringify({ error: 'guest exception', message }));
  }
  function onRequest(id, meta, body) {
    const [method, url, headers, bodyDigest] = JSONparse(meta);
    for (let i = 0; i < headers.length; i++) {
      if (headers[i][0] === 'idempotency-key') {
        if (idempotent(id, headers[i][1], method, url, bodyDigest)) return;
        break;
      }
    }
    const request = web.makeRequest(method, url, headers, body ? new Uint8Array(body) : null);
    currentOwner = id;
    let result;
    try {
      if (typeof app.fetch !== 'function') throw new TypeError('the guest module exports no fetch(request, env, ctx) handler (only scheduled): it cannot answer requests');
      result = app.fetch(request, env, executionContext());
    } catch (error) {
      fail(id, error);
      return;
    }
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      Promise.resolve(result).then(
        (response) => respond(id, response),
        (error) => fail(id, error),
      );
    } else {
      respond(id, result);
    }
  }

  // ctx of a handler. waitUntil: the task runs every promise to quiescence anyway, so it only reports
  // a rejection. passThroughOnException: there is no origin behind an ftjs node to pass through to;
  // it is accepted and changes nothing (an exception still gives the 500 answer and is logged).
  function executionContext() {
    return {
      waitUntil(promise) {
        Promise.resolve(promise).catch((error) => reportError('waitUntil', error));
      },
      passThroughOnException() {},
    };
  }

  // ---------- cron triggers ----------
  let warnedNoScheduled = false;
  function onScheduled(scheduledTime, cron) {
    if (typeof app.scheduled !== 'function') {
      if (!warnedNoScheduled) {
        warnedNoScheduled = true;
        host(OP_CONSOLE, 3, 'ftjs: cron trigger "' + cron + '" fired but the guest module exports no scheduled(controller, env, ctx) handler: cron triggers are ignored (this warning is shown once)');
      }
      return;
    }
    // noRetry(): Workers may retry a failed firing; ftjs never retries, so it has nothing to turn off.
    const controller = Object.freeze({ cron, scheduledTime, type: 'scheduled', noRetry() {} });
    let result;
    try {
      result = app.scheduled(controller, env, executionContext());
    } catch (error) {
      reportError('scheduled handler', error);
      return;
    }
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      Promise.resolve(result).catch((error) => reportError('scheduled handler', error));
    }
  }

  // ---------- boot ----------
  function boot(entry, configJson) {
    const config = JSONparse(configJson);
    env = Object.freeze(config.env);
    idempotency = config.idempotency;
    import(entry).then(
      (namespace) => {
        const candidate = namespace.default;
        if (!candidate || (typeof candidate.fetch !== 'function' && typeof candidate.scheduled !== 'function')) {
          host(OP_BOOTED, 0, 'the guest module "' + entry + '" must export default { fetch(request, env, ctx) } (or a scheduled(controller, env, ctx) handler)');
          return;
        }
        app = candidate;
        host(OP_BOOTED, 1, '');
      },
      (error) => host(OP_BOOTED, 0, 'the guest module "' + entry + '" failed to load: ' + inspect(error, 0, [])),
    );
  }

  // The host's single entry point. Kinds: keep in sync with hypervisor/vm/vm.ts GuestEvent.
  return function dispatch(kind, id, meta, body) {
    currentOwner = 0;
    switch (kind) {
      case 1:
        return onRequest(id, meta, body);
      case 2:
        return fireTimer(id);
      case 3:
        return fetchDone(id, meta, body);
      case 4:
        return aborted(id, meta);
      case 5:
        return onScheduled(id, meta);
      case 6: {
        const cancel = streamsOut.get(id);
        currentOwner = id;
        if (cancel) cancel('the client closed the connection');
        return;
      }
      case 9:
        return boot(meta, body);
    }
  };
})();
