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
  // Intrinsics captured at boot (hypervisor/guest/web/primordials.js): the guest may patch any builtin
  // (Promise.prototype.then, Map.prototype.set, Array iteration, JSON, Function.prototype.call) and
  // the glue serving its other requests must not notice. Nothing below calls a method it looked up
  // at call time on a value the guest can reach: no spread or destructuring of arrays (they call the
  // guest-patchable Array.prototype[Symbol.iterator]), no for-of, no .then.
  const {
    uncurryThis, ReflectApply, ObjectDefineProperty, ObjectFreeze, ObjectKeys, ArrayIsArray, JSONParse, JSONStringify,
    MathMax, MathFloor, NumberCtor, StringCtor, PromiseCtor, PromiseThen, PromiseResolve, PromiseReject,
    MapCtor, MapGet, MapSet, MapHas, MapDelete, MapEntries, MapSize, MapIteratorNext, SetCtor,
    StringSlice, StringIndexOf, SymbolToString, NumberToFixed, DateNow, DateToISOString,
    ArrayBufferSlice: ArrayBufferSliceIntrinsic, ArrayBufferIsView, Uint8ArrayCtor, TypedArraySet, TypedArrayName,
    TypedArraySlice: TypedArraySliceIntrinsic,
  } = web.primordials;
  const ErrorCtor = Error;
  const TypeErrorCtor = TypeError;
  const DateCtor = Date;
  const ResponseCtor = Response;

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
    ObjectDefineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });

  const JSONstringify = JSONStringify;
  const JSONparse = JSONParse;
  const ArrayBufferSlice = ArrayBufferSliceIntrinsic;
  /** Every line of `text` after the first, prefixed by `indent` (no RegExp: its Symbol.replace is patchable). */
  function indentLines(text, indent) {
    let out = '';
    let from = 0;
    for (let at = StringIndexOf(text, '\n'); at >= 0; at = StringIndexOf(text, '\n', from)) {
      out += StringSlice(text, from, at + 1) + indent;
      from = at + 1;
    }
    return out + StringSlice(text, from);
  }
  /** The entries of a boot-time Map, as [key, value] pairs, without its (patchable) iterator. */
  function mapPairs(map) {
    const pairs = [];
    const it = MapEntries(map);
    for (let step = MapIteratorNext(it); !step.done; step = MapIteratorNext(it)) pairs[pairs.length] = step.value;
    return pairs;
  }
  const AbortReason = globalThis.DOMException || Error; // captured: the guest may replace the global
  const DOMExceptionCtor = AbortReason;

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
        return StringCtor(value);
      case 'bigint':
        return StringCtor(value) + 'n';
      case 'symbol':
        return SymbolToString(value);
      case 'function':
        return '[Function: ' + (value.name || 'anonymous') + ']';
    }
    if (value === null) return 'null';
    if (value instanceof ErrorCtor) return value.stack ? value.name + ': ' + value.message + '\n' + value.stack : value.name + ': ' + value.message;
    for (let i = 0; i < seen.length; i++) if (seen[i] === value) return '[Circular]';
    if (depth > 3) return ArrayIsArray(value) ? '[Array]' : '[Object]';
    const inner = [];
    for (let i = 0; i < seen.length; i++) inner[i] = seen[i];
    inner[seen.length] = value;
    seen = inner;
    const list = (items, each) => {
      let out = '';
      for (let i = 0; i < items.length; i++) out += (i ? ', ' : '') + each(items[i]);
      return out;
    };
    if (ArrayIsArray(value)) return '[ ' + list(value, (v) => inspect(v, depth + 1, seen)) + ' ]';
    if (value instanceof DateCtor) {
      try {
        return DateToISOString(value);
      } catch {
        return 'Invalid Date';
      }
    }
    if (value instanceof MapCtor) return 'Map(' + MapSize(value) + ') { ' + list(mapPairs(value), (kv) => inspect(kv[0], depth + 1, seen) + ' => ' + inspect(kv[1], depth + 1, seen)) + ' }';
    if (value instanceof SetCtor) return 'Set(' + SetSize(value) + ') { ' + list(setValues(value), (v) => inspect(v, depth + 1, seen)) + ' }';
    const keys = ObjectKeys(value);
    const name = value.constructor && value.constructor !== Object && typeof value.constructor.name === 'string' ? value.constructor.name + ' ' : '';
    if (keys.length === 0) return name + '{}';
    return name + '{ ' + list(keys, (k) => k + ': ' + inspect(value[k], depth + 1, seen)) + ' }';
  }
  function format(args) {
    let out = '';
    for (let i = 0; i < args.length; i++) out += (i ? ' ' : '') + inspect(args[i], 0, []);
    return out;
  }
  const SetValues = uncurryThis(Set.prototype.values);
  const SetSize = uncurryThis(Object.getOwnPropertyDescriptor(Set.prototype, 'size').get);
  const SetIteratorNext = uncurryThis(Object.getPrototypeOf(new Set().values()).next);
  function setValues(set) {
    const out = [];
    const it = SetValues(set);
    for (let step = SetIteratorNext(it); !step.done; step = SetIteratorNext(it)) out[out.length] = step.value;
    return out;
  }
  const counts = new MapCtor();
  const console = {};
  // console.group indentation, as Node: every line of every console call is indented.
  let groupIndent = '';
  function print(level, text) {
    host(OP_CONSOLE, level, groupIndent ? groupIndent + indentLines(text, groupIndent) : text);
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
    const n = (MapGet(counts, label) || 0) + 1;
    MapSet(counts, label, n);
    print(1, label + ': ' + n);
  };
  // console.time on performance.now(), which reads the recorded clock: replay prints the same figures.
  // Output and warnings as Node's ("label: 12.5ms", "1.250s" from a second on).
  const timeStarts = new MapCtor();
  function elapsed(label, method) {
    label = StringCtor(label);
    const start = MapGet(timeStarts, label);
    if (start === undefined) {
      print(3, "Warning: No such label '" + label + "' for console." + method + '()');
      return null;
    }
    const ms = performanceNow() - start;
    return label + ': ' + (ms >= 1000 ? NumberToFixed(ms / 1000, 3) + 's' : NumberCtor(NumberToFixed(ms, 3)) + 'ms');
  }
  console.time = function (label = 'default') {
    label = StringCtor(label);
    if (MapHas(timeStarts, label)) print(3, "Warning: Label '" + label + "' already exists for console.time()");
    else MapSet(timeStarts, label, performanceNow());
  };
  console.timeLog = function (label = 'default', ...data) {
    const line = elapsed(label, 'timeLog');
    if (line !== null) print(1, data.length ? line + ' ' + format(data) : line);
  };
  console.timeEnd = function (label = 'default') {
    const line = elapsed(label, 'timeEnd');
    if (line === null) return;
    MapDelete(timeStarts, StringCtor(label));
    print(1, line);
  };
  console.group = console.groupCollapsed = function (...label) {
    if (label.length) print(1, format(label));
    groupIndent += '  ';
  };
  console.groupEnd = function () {
    groupIndent = StringSlice(groupIndent, 0, -2);
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
    if (hint) {
      const eol = StringIndexOf(text, '\n');
      text = eol < 0 ? text + hint : StringSlice(text, 0, eol) + hint + StringSlice(text, eol);
    }
    host(OP_CONSOLE, 4, 'Uncaught (' + where + ') ' + text);
  }

  // ---------- microtasks ----------
  define('queueMicrotask', function queueMicrotask(callback) {
    if (typeof callback !== 'function') throw new TypeError('queueMicrotask: callback must be a function');
    PromiseThen(PromiseResolve(), () => {
      try {
        callback();
      } catch (error) {
        reportError('queueMicrotask', error);
      }
    });
  });

  // ---------- timers ----------
  const timers = new MapCtor();
  let nextTimerId = 1;
  const MAX_DELAY_MS = 2147483647;
  function delayOf(ms) {
    ms = NumberCtor(ms);
    if (!(ms > 0)) return 0;
    return ms > MAX_DELAY_MS ? MAX_DELAY_MS : MathFloor(ms);
  }
  function addTimer(callback, ms, args, repeat) {
    if (typeof callback !== 'function') throw new TypeError('timer callback must be a function (string callbacks are not supported)');
    const id = nextTimerId++;
    const delay = delayOf(ms);
    MapSet(timers, id, { callback, args, repeat: repeat ? MathMax(delay, 1) : 0, owner: currentOwner });
    host(OP_TIMER_SET, id, delay, currentOwner);
    return id;
  }
  function clearTimer(id) {
    id = NumberCtor(id);
    const timer = MapGet(timers, id);
    if (timer === undefined || timer.internal) return; // the runtime's own timers are not the guest's to clear
    MapDelete(timers, id);
    host(OP_TIMER_CLEAR, id);
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
    const timer = MapGet(timers, id);
    if (!timer) return;
    if (timer.repeat) host(OP_TIMER_SET, id, timer.repeat, timer.owner);
    else MapDelete(timers, id);
    currentOwner = timer.owner;
    try {
      ReflectApply(timer.callback, undefined, timer.args);
    } catch (error) {
      reportError('timer', error);
    }
  }

  // ---------- response deadline ----------
  // A request the guest has not answered within --response-timeout-ms gets 504, and its idempotency key
  // is forgotten (its handler may run on; a late response is dropped by the host). Decided by a
  // runtime-owned timer on the recorded clock, so replay agrees. A request whose handler returned a
  // promise notes the time then (one clock read; the handler's synchronous part is bounded by the CPU
  // budget); one timer, armed for the oldest deadline, serves them all and is not cleared when a
  // request is answered (it finds nothing to do, and is armed again only when needed).
  let responseTimeoutMs = 0; // from the boot config; 0: no deadline
  let deadlineTimerId = 0; // the armed deadline timer, or 0
  const awaitingResponse = new MapCtor(); // request id -> deadline (guest ms), in arrival order
  function watchDeadline(id) {
    if (responseTimeoutMs <= 0) return;
    MapSet(awaitingResponse, id, DateNow() + responseTimeoutMs);
    if (deadlineTimerId === 0) armDeadlineTimer(responseTimeoutMs);
  }
  function armDeadlineTimer(delayMs) {
    const id = nextTimerId++;
    try {
      host(OP_TIMER_SET, id, delayMs, 0);
    } catch (error) {
      reportError('response deadline', error); // the guest holds every timer it may (--max-timers)
      return;
    }
    MapSet(timers, id, { callback: deadlineDue, args: [], repeat: 0, owner: 0, internal: true });
    deadlineTimerId = id;
  }
  function deadlineDue() {
    deadlineTimerId = 0;
    const nowMs = DateNow();
    const late = [];
    let nextDueMs = 0;
    const it = MapEntries(awaitingResponse);
    for (let step = MapIteratorNext(it); !step.done; step = MapIteratorNext(it)) {
      if (step.value[1] > nowMs) {
        nextDueMs = step.value[1];
        break;
      }
      late[late.length] = step.value[0];
    }
    for (let i = 0; i < late.length; i++) timeOut(late[i]);
    if (nextDueMs > 0) armDeadlineTimer(MathMax(1, nextDueMs - nowMs));
  }
  function timeOut(id) {
    MapDelete(awaitingResponse, id);
    const message = 'the request was not answered within ' + responseTimeoutMs + ' ms (--response-timeout-ms)';
    host(OP_CONSOLE, 3, 'ftjs: request ' + id + ': ' + message + ': answered 504');
    host(OP_RESPOND, id, JSONstringify([504, 'Gateway Timeout', [['content-type', 'application/json']]]), JSONstringify({ error: message }));
    forgetKey(id, 504, 'Gateway Timeout', message);
  }

  // ---------- time ----------
  // Date.now() reads the engine clock import, which the hypervisor feeds from the input port. The
  // origin is the guest's clock when it first asks for it, not when this glue or the guest's top level
  // evaluates: a boot that reads no input can start from an image (hypervisor/vm/boot-image.ts).
  let timeOrigin = -1;
  const origin = () => (timeOrigin < 0 ? (timeOrigin = DateNow()) : timeOrigin);
  const performanceNow = () => DateNow() - origin();
  const performance = {
    get timeOrigin() {
      return origin();
    },
    now: function now() {
      return performanceNow();
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
  const fetches = new MapCtor();
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
        if (aborted) return PromiseReject(reason);
      }
      parts = web.requestParts(request);
    } catch (error) {
      return PromiseReject(error);
    }
    // A streamed request body is read whole first (outbound bodies leave as one output).
    if (web.isStream(parts.body)) {
      const intact = web.intactBytes(parts.body);
      if (intact === null) {
        const owner = currentOwner;
        return PromiseThen(web.readAll(parts.body), (bytes) => {
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
    return new PromiseCtor((resolve, reject) => {
      MapSet(fetches, id, { resolve, reject, url: parts.url, owner: currentOwner });
      host(OP_FETCH, id, JSONstringify([parts.method, parts.url, parts.headers]), bodyBuffer(parts.body), currentOwner);
      // Aborted in flight: the guest sees the rejection in the task that aborted (a deterministic
      // consequence of recorded events), and the host cancels the outbound request; its result, if
      // any arrives, is never delivered.
      if (signal !== null) {
        web.onAbort(signal, (reason) => {
          if (!MapDelete(fetches, id)) return; // already answered
          host(OP_FETCH_ABORT, id);
          reject(reason);
        });
      }
    });
  }
  function fetchDone(id, meta, body) {
    const pending = MapGet(fetches, id);
    if (!pending) return;
    MapDelete(fetches, id);
    currentOwner = pending.owner;
    const result = JSONparse(meta); // [error, status, statusText, headers]
    if (result[0] !== null) {
      const reject = pending.reject;
      reject(new TypeErrorCtor('fetch failed: ' + result[0]));
      return;
    }
    const resolve = pending.resolve;
    resolve(web.makeResponse(result[1], result[2], result[3], body ? new Uint8ArrayCtor(body) : null, pending.url));
  }

  // ---------- exactly-once for clients ----------
  // A request with an Idempotency-Key runs once: its response is kept here, in guest memory, so it
  // is replicated, snapshotted and replayed with everything else. A retry (after a failover, to either
  // node) gets the original response; a retry while the original runs waits for it. Bounded by key
  // count and age (--idempotency-max-keys, --idempotency-ttl-ms); the oldest finished keys go first.
  const keyed = new MapCtor(); // key -> { fingerprint, done, response: [meta, body], waiters: [id], atMs }
  const keyOfRequest = new MapCtor(); // request id -> key
  function send(id, meta, body) {
    MapDelete(awaitingResponse, id);
    host(OP_RESPOND, id, meta, body);
    remember(id, meta, body);
  }
  /** Keeps the response of a keyed request (a streamed one once it ended) and answers its waiters. */
  function remember(id, meta, body) {
    const key = MapGet(keyOfRequest, id);
    if (key === undefined) return;
    MapDelete(keyOfRequest, id);
    const entry = MapGet(keyed, key);
    if (!entry) return;
    entry.done = true;
    entry.response = [meta, body];
    const replayedMeta = withHeader(meta, 'idempotent-replayed', 'true');
    const waiters = entry.waiters;
    for (let i = 0; i < waiters.length; i++) host(OP_RESPOND, waiters[i], replayedMeta, body);
    entry.waiters = [];
  }
  function withHeader(meta, name, value) {
    const parsed = JSONparse(meta);
    const headers = parsed[2];
    headers[headers.length] = [name, value];
    return JSONstringify(parsed);
  }
  function plainResponse(id, status, statusText, message) {
    host(OP_RESPOND, id, JSONstringify([status, statusText, [['content-type', 'application/json']]]), JSONstringify({ error: message }));
  }
  /** The table holds keys oldest first (by guest time): drop finished ones past their age or the count. */
  function evictKeys(nowMs) {
    const it = MapEntries(keyed);
    for (let step = MapIteratorNext(it); !step.done; step = MapIteratorNext(it)) {
      const key = step.value[0];
      const entry = step.value[1];
      // Under the count and this one young: the rest are younger still.
      if (MapSize(keyed) < idempotency.maxKeys && nowMs - entry.atMs <= idempotency.ttlMs) break;
      // A running key stays, whatever its age or the count (its waiters need it): look past it, so a
      // long request at the head does not pin the table full of finished keys behind it.
      if (entry.done) MapDelete(keyed, key);
    }
  }
  /** Returns true when the request was answered (or parked) from the table instead of running. */
  function idempotent(id, key, method, url, bodyDigest) {
    const nowMs = DateNow();
    const fingerprint = method + ' ' + pathOf(url) + ' (body sha256 ' + StringSlice(bodyDigest, 0, 12) + ')';
    let entry = MapGet(keyed, key);
    // A finished key past its age is forgotten even when no new key came along to evict it.
    if (entry && entry.done && nowMs - entry.atMs > idempotency.ttlMs) {
      MapDelete(keyed, key);
      entry = undefined;
    }
    if (entry) {
      if (entry.fingerprint !== fingerprint) {
        plainResponse(id, 422, 'Unprocessable Entity', 'Idempotency-Key ' + JSONstringify(key) + ' was first used for ' + entry.fingerprint + ', not ' + fingerprint);
      } else if (entry.done) {
        host(OP_RESPOND, id, withHeader(entry.response[0], 'idempotent-replayed', 'true'), entry.response[1]);
      } else {
        entry.waiters[entry.waiters.length] = id;
      }
      return true;
    }
    // Make room only for a new key, after the lookup: a retry must find its own key still there.
    evictKeys(nowMs);
    if (MapSize(keyed) >= idempotency.maxKeys) {
      plainResponse(id, 503, 'Service Unavailable', 'too many idempotency keys in flight (--idempotency-max-keys=' + idempotency.maxKeys + ')');
      return true;
    }
    MapSet(keyed, key, { fingerprint, done: false, response: null, waiters: [], atMs: nowMs });
    MapSet(keyOfRequest, id, key);
    return false;
  }
  /** The host stopped request `id` (CPU budget): its key is forgotten, so a retry runs afresh. */
  function aborted(id, message) {
    MapDelete(awaitingResponse, id);
    forgetKey(id, 503, 'Service Unavailable', message);
  }
  /** Request `id` ended without a response to keep: its key is forgotten and its waiters get `status`. */
  function forgetKey(id, status, statusText, message) {
    const key = MapGet(keyOfRequest, id);
    if (key === undefined) return;
    MapDelete(keyOfRequest, id);
    const entry = MapGet(keyed, key);
    MapDelete(keyed, key);
    if (entry) for (let i = 0; i < entry.waiters.length; i++) plainResponse(entry.waiters[i], status, statusText, message);
  }

  /** The path (and query) of an absolute URL: what follows its scheme and authority. */
  function pathOf(url) {
    const scheme = StringIndexOf(url, '://');
    if (scheme < 0) return url;
    const slash = StringIndexOf(url, '/', scheme + 3);
    return slash < 0 ? '' : StringSlice(url, slash);
  }
  /**
   * Calls onFulfilled/onRejected when `value` (a promise or a guest thenable) settles. A native promise
   * is watched through the boot-time then, whatever the guest did to Promise.prototype.then; a
   * thenable's own then is the guest's business, called from a job as the spec's promise resolution.
   */
  function settle(value, onFulfilled, onRejected) {
    let promise;
    try {
      promise = PromiseResolve(value);
    } catch (error) {
      promise = PromiseReject(error);
    }
    PromiseThen(promise, onFulfilled, onRejected);
  }

  // ---------- inbound requests ----------
  function respond(id, response) {
    if (!(response instanceof ResponseCtor)) {
      fail(id, new TypeErrorCtor('fetch handler must return a Response (or a promise of one), got ' + (response === null ? 'null' : typeof response)));
      return;
    }
    let meta;
    try {
      meta = web.responseHead(response);
    } catch (error) {
      fail(id, error);
      return;
    }
    let body = web.responseBody;
    web.responseBody = null;
    // A string (or no body) is never a stream: only an object needs the question.
    if (body !== null && typeof body === 'object' && web.isStream(body)) {
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
  const streamsOut = new MapCtor(); // request id -> cancel(reason), while its stream is being sent
  function streamOut(id, meta, stream) {
    let reader;
    try {
      reader = stream.getReader();
    } catch (error) {
      fail(id, error);
      return;
    }
    MapDelete(awaitingResponse, id);
    if (!host(OP_RESPOND_HEAD, id, meta)) {
      reader.cancel(new TypeError('the response was refused by the host'));
      return;
    }
    const keep = MapHas(keyOfRequest, id) ? [] : null;
    let cancelled = false;
    MapSet(streamsOut, id, (reason) => {
      // The host ended the response (the client went away): what the stream gives from now on is dropped.
      cancelled = true;
      MapDelete(streamsOut, id);
      aborted(id, 'the streamed response was cut off: ' + reason);
      reader.cancel(new AbortReason(reason, 'AbortError'));
    });
    const stop = (message) => {
      MapDelete(streamsOut, id);
      host(OP_RESPOND_END, id, message);
      aborted(id, 'the streamed response failed: ' + message);
    };
    const pump = () =>
      PromiseThen(
        reader.read(),
        (step) => {
          if (cancelled) return;
          currentOwner = id;
          if (step.done) {
            MapDelete(streamsOut, id);
            host(OP_RESPOND_END, id);
            if (keep !== null) remember(id, meta, bodyBuffer(concatChunks(keep)));
            return;
          }
          const chunk = step.value;
          if (!ArrayBufferIsView(chunk) || TypedArrayName(chunk) !== 'Uint8Array') {
            const error = new TypeErrorCtor('a response body stream must give Uint8Array chunks, got ' + (chunk === null ? 'null' : typeof chunk));
            reportError('response stream', error);
            stop(error.name + ': ' + error.message);
            reader.cancel(error);
            return;
          }
          if (!host(OP_RESPOND_CHUNK, id, bodyBuffer(chunk))) {
            MapDelete(streamsOut, id);
            aborted(id, 'the streamed response was cut off by the host');
            reader.cancel(new TypeError('the response was cut off by the host'));
            return;
          }
          if (keep !== null) keep[keep.length] = TypedArraySliceIntrinsic(chunk);
          return pump();
        },
        (error) => {
          if (cancelled) return;
          currentOwner = id;
          reportError('response stream', error);
          stop(error instanceof ErrorCtor ? error.name + ': ' + error.message : StringCtor(error));
        },
      );
    pump();
  }
  function concatChunks(chunks) {
    let total = 0;
    for (let i = 0; i < chunks.length; i++) total += chunks[i].byteLength;
    const out = new Uint8ArrayCtor(total);
    let offset = 0;
    for (let i = 0; i < chunks.length; i++) {
      TypedArraySet(out, chunks[i], offset);
      offset += chunks[i].byteLength;
    }
    return out;
  }
  function fail(id, error) {
    reportError('fetch handler', error);
    const message = (error instanceof ErrorCtor ? error.name + ': ' + error.message : StringCtor(error)) + limitHint(error);
    send(id, JSONstringify([500, 'Internal Server Error', [['content-type', 'application/json']]]), JSONstringify({ error: 'guest exception', message }));
  }
  function onRequest(id, meta, body) {
    const parsed = JSONparse(meta); // [method, url, headers, bodyDigest]
    const method = parsed[0];
    const url = parsed[1];
    const headers = parsed[2];
    const bodyDigest = parsed[3];
    // The host digests the body exactly when the request has an Idempotency-Key (hypervisor/vm/vm.ts):
    // no digest, no key to look for.
    if (bodyDigest !== '') for (let i = 0; i < headers.length; i++) {
      if (headers[i][0] === 'idempotency-key') {
        if (idempotent(id, headers[i][1], method, url, bodyDigest)) return;
        break;
      }
    }
    const request = web.makeRequest(method, url, headers, body ? new Uint8ArrayCtor(body) : null);
    currentOwner = id;
    let result;
    try {
      if (typeof app.fetch !== 'function') throw new TypeErrorCtor('the guest module exports no fetch(request, env, ctx) handler (only scheduled): it cannot answer requests');
      result = app.fetch(request, env, new ExecutionContext());
    } catch (error) {
      fail(id, error);
      return;
    }
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      // Only a request still unanswered when its handler returns is watched: a synchronous answer
      // reads no clock, and the guest's own first clock read in the task stays its own.
      watchDeadline(id);
      settle(
        result,
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
  // A fresh instance per call (as workerd's ExecutionContext, methods on its prototype): an object
  // literal's methods point back at it (their home object), a cycle only QuickJS's cycle collector
  // frees, so each request used to leave garbage that made every later collection longer.
  const reportWaitUntil = (error) => reportError('waitUntil', error);
  class ExecutionContext {
    waitUntil(promise) {
      settle(promise, undefined, reportWaitUntil);
    }
    passThroughOnException() {}
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
    const controller = ObjectFreeze({ cron, scheduledTime, type: 'scheduled', noRetry() {} });
    let result;
    try {
      result = app.scheduled(controller, env, new ExecutionContext());
    } catch (error) {
      reportError('scheduled handler', error);
      return;
    }
    if (result !== null && typeof result === 'object' && typeof result.then === 'function') {
      settle(result, undefined, (error) => reportError('scheduled handler', error));
    }
  }

  // ---------- boot ----------
  function boot(entry, configJson) {
    const config = JSONparse(configJson);
    env = ObjectFreeze(config.env);
    idempotency = config.idempotency;
    if (config.responseTimeoutMs > 0) responseTimeoutMs = config.responseTimeoutMs;
    PromiseThen(
      import(entry),
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
        const cancel = MapGet(streamsOut, id);
        currentOwner = id;
        if (cancel) cancel('the client closed the connection');
        return;
      }
      case 9:
        return boot(meta, body);
    }
  };
})();
