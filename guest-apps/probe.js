// Sandbox escape probes.
//
//   GET /          route description
//   GET /probe     runs the whole battery -> { ok, findings, warnings, probes }
//   GET /globals   just the global-object survey
//   GET /clock     just the clock / Date / timezone probes
//
// `findings` lists host capabilities the guest could reach (must be empty in
// ftjs); `warnings` lists information leaks that are not capabilities (e.g. a
// host path in an error stack). Everything observed is returned in `probes`,
// so a recording and its replay can be compared field by field: the clock
// values in particular must be identical, because every way of reading the
// time has to come from the recorded clock.

// ---------------------------------------------------------------------------
// What a guest is entitled to see.

const ECMASCRIPT_GLOBALS = [
  'AggregateError', 'Array', 'ArrayBuffer', 'AsyncDisposableStack', 'BigInt', 'BigInt64Array',
  'BigUint64Array', 'Boolean', 'DataView', 'Date', 'DisposableStack', 'Error', 'EvalError',
  'Float16Array', 'Float32Array', 'Float64Array', 'Function', 'Infinity', 'Int16Array', 'Int32Array',
  'Int8Array', 'InternalError', 'Iterator', 'JSON', 'Map', 'Math', 'NaN', 'Number', 'Object',
  'Promise', 'Proxy', 'RangeError', 'ReferenceError', 'Reflect', 'RegExp', 'Set', 'String',
  'SuppressedError', 'Symbol', 'SyntaxError', 'TypeError', 'URIError', 'Uint16Array', 'Uint32Array',
  'Uint8Array', 'Uint8ClampedArray', 'WeakMap', 'WeakSet', 'decodeURI', 'decodeURIComponent',
  'encodeURI', 'encodeURIComponent', 'escape', 'eval', 'globalThis', 'isFinite', 'isNaN',
  'parseFloat', 'parseInt', 'undefined', 'unescape',
];

// The web APIs the ftjs sandbox promises.
const PROMISED_WEB_GLOBALS = [
  'Headers', 'Request', 'Response', 'TextDecoder', 'TextEncoder', 'URL', 'URLSearchParams', 'atob',
  'btoa', 'clearInterval', 'clearTimeout', 'console', 'crypto', 'fetch', 'performance',
  'queueMicrotask', 'setInterval', 'setTimeout', 'structuredClone',
];

// Harmless web/standard names that are not promised: reported, not findings.
const BENIGN_EXTRA_GLOBALS = [
  'AbortController', 'AbortSignal', 'Blob', 'ByteLengthQueuingStrategy', 'CompressionStream',
  'CountQueuingStrategy', 'Crypto', 'CryptoKey', 'CustomEvent', 'DOMException', 'DecompressionStream',
  'Event', 'EventTarget', 'File', 'FormData', 'Intl', 'Performance', 'ReadableStream',
  'ReadableStreamDefaultReader', 'SubtleCrypto', 'TextDecoderStream', 'TextEncoderStream',
  'TransformStream', 'WritableStream', 'navigator', 'reportError', 'self', 'Navigator', 'URLPattern',
  // The rest of the WHATWG Streams interfaces (installed with ReadableStream).
  'ReadableStreamBYOBReader', 'ReadableStreamBYOBRequest', 'ReadableStreamDefaultController',
  'ReadableByteStreamController', 'WritableStreamDefaultWriter', 'WritableStreamDefaultController',
  'TransformStreamDefaultController',
];

// Names that must not exist at all: host capabilities or nondeterminism sources.
const FORBIDDEN_GLOBALS = [
  'process', 'require', 'Buffer', 'global', 'WeakRef', 'FinalizationRegistry', 'SharedArrayBuffer',
  'Atomics', 'WebAssembly', 'module', 'exports', '__dirname', '__filename', 'Deno', 'Bun', 'std',
  'os', 'scriptArgs', 'print', 'gc', 'Worker', 'importScripts', 'XMLHttpRequest', 'WebSocket',
  'setImmediate', 'clearImmediate',
];

const KNOWN_CONSTRUCTORS = new Set([
  ...ECMASCRIPT_GLOBALS.filter((n) => /^[A-Z]/.test(n)),
  'WeakRef', 'FinalizationRegistry', 'SharedArrayBuffer', 'TypedArray', 'AsyncFunction',
  'GeneratorFunction', 'AsyncGeneratorFunction', 'Generator', 'AsyncGenerator',
  ...PROMISED_WEB_GLOBALS.filter((n) => /^[A-Z]/.test(n)),
  ...BENIGN_EXTRA_GLOBALS.filter((n) => /^[A-Z]/.test(n)),
  'Console', 'Navigator',
  // Intl service constructors (only present if the engine has Intl).
  'Collator', 'DateTimeFormat', 'DisplayNames', 'DurationFormat', 'ListFormat', 'Locale', 'NumberFormat',
  'PluralRules', 'RelativeTimeFormat', 'Segmenter',
  // Base class a JS implementation of Request/Response commonly uses.
  'Body',
]);

// Property names that smell like host glue wherever they appear.
const SUSPICIOUS_NAME = /host|ftjs|hypervisor|bridge|native|recorder|replay|quickjs|emscripten|wasm|^HEAP|malloc|ccall|cwrap|^__/i;
// The guest's Intl is a polyfill (FormatJS, hypervisor/guest/intl/) that keeps its data hooks as
// static members of the constructors (__addLocaleData, __defaultLocale, tzData, ...): guest-side data
// and functions, not host glue.
const INTL_POLYFILL_INTERNAL = /^globalThis\.Intl\.[A-Za-z]+\.(__\w+|tzData|calendarData|localeData)\b/;
const STANDARD_NAMES_MATCHING = new Set([
  'host', 'hostname', '__proto__', '__defineGetter__', '__defineSetter__', '__lookupGetter__', '__lookupSetter__',
]);

// ---------------------------------------------------------------------------
// Helpers.

function json(data, status = 200, extraHeaders = {}) {
  return new Response(JSON.stringify(data, null, 0), {
    status,
    headers: { 'content-type': 'application/json; charset=utf-8', ...extraHeaders },
  });
}

function attempt(fn) {
  try {
    return { value: fn() };
  } catch (err) {
    return { error: describeError(err) };
  }
}

async function attemptAsync(fn) {
  try {
    return { value: await fn() };
  } catch (err) {
    return { error: describeError(err) };
  }
}

function describeError(err) {
  if (err && typeof err === 'object') return `${err.name || 'Error'}: ${err.message}`;
  return `thrown ${typeof err}: ${String(err)}`;
}

function keyName(key) {
  return typeof key === 'symbol' ? `[${key.toString()}]` : key;
}

function ctorName(value) {
  try {
    const proto = Object.getPrototypeOf(value);
    if (proto === null) return '(null prototype)';
    const ctor = proto.constructor;
    if (typeof ctor !== 'function') return '(no constructor)';
    return ctor.name || '(anonymous)';
  } catch (err) {
    return `(error: ${describeError(err)})`;
  }
}

function sourceOf(fn) {
  const r = attempt(() => Function.prototype.toString.call(fn));
  if (r.error) return { error: r.error };
  const src = r.value;
  return {
    native: /\{\s*\[native code\]\s*\}\s*$/.test(src),
    text: src.length > 160 ? src.slice(0, 160) + '...' : src,
  };
}

// ---------------------------------------------------------------------------
// Probes.

function probeTypeofs() {
  // Bare identifiers first (what ordinary code would write) ...
  const bare = {
    process: typeof process,
    require: typeof require,
    Buffer: typeof Buffer,
    global: typeof global,
    WeakRef: typeof WeakRef,
    FinalizationRegistry: typeof FinalizationRegistry,
    SharedArrayBuffer: typeof SharedArrayBuffer,
    Atomics: typeof Atomics,
    WebAssembly: typeof WebAssembly,
  };
  // ... then the full list through globalThis.
  const viaGlobalThis = {};
  for (const name of FORBIDDEN_GLOBALS) viaGlobalThis[name] = typeof globalThis[name];
  const v8 = {
    'Error.captureStackTrace': typeof Error.captureStackTrace,
    'Error.prepareStackTrace': typeof Error.prepareStackTrace,
  };
  return { bare, viaGlobalThis, v8 };
}

function surveyGlobal(g) {
  const names = Object.getOwnPropertyNames(g).sort();
  const symbols = Object.getOwnPropertySymbols(g).map((s) => s.toString()).sort();
  const allowed = new Set([...ECMASCRIPT_GLOBALS, ...PROMISED_WEB_GLOBALS]);
  const benign = new Set(BENIGN_EXTRA_GLOBALS);
  const forbidden = new Set(FORBIDDEN_GLOBALS);
  const unexpected = names.filter((n) => !allowed.has(n) && !benign.has(n) && !forbidden.has(n));
  const benignPresent = names.filter((n) => benign.has(n));
  const missingPromised = PROMISED_WEB_GLOBALS.filter((n) => !names.includes(n));
  const accessors = names.filter((n) => {
    const d = Object.getOwnPropertyDescriptor(g, n);
    return d && (d.get || d.set);
  });
  return { names, symbols, unexpected, benignPresent, missingPromised, accessors };
}

function probeGlobals() {
  const direct = surveyGlobal(globalThis);
  const viaFunction = attempt(() => {
    const g = new Function('return this')();
    return { sameAsGlobalThis: g === globalThis, type: typeof g, ...(g === globalThis ? {} : surveyGlobal(g)) };
  });
  const viaIndirectEval = attempt(() => {
    const g = (0, eval)('this');
    return { sameAsGlobalThis: g === globalThis, type: typeof g, ...(g === globalThis ? {} : surveyGlobal(g)) };
  });
  const misc = {
    toStringTag: Object.prototype.toString.call(globalThis),
    protoChain: (() => {
      const chain = [];
      let o = Object.getPrototypeOf(globalThis);
      while (o !== null && chain.length < 10) {
        chain.push(ctorName(o) + ':' + Object.getOwnPropertyNames(o).sort().join(','));
        o = Object.getPrototypeOf(o);
      }
      return chain;
    })(),
  };
  return { direct, viaFunction, viaIndirectEval, misc };
}

class SubDate extends Date {}

function readClocks() {
  // Order matters: taken one after the other, the values must be non-decreasing.
  const readings = [];
  const read = (name, fn, walk = false) => {
    const r = attempt(fn);
    readings.push(walk ? { name, walk, ...r } : { name, ...r });
  };
  read('Date.now()', () => Date.now());
  read('new Date().getTime()', () => new Date().getTime());
  read('+new Date()', () => +new Date());
  read('new Date().valueOf()', () => new Date().valueOf());
  read('new SubDate().getTime()', () => new SubDate().getTime());
  read('Reflect.construct(Date, []).getTime()', () => Reflect.construct(Date, []).getTime());
  read('Reflect.construct(Date, [], SubDate).getTime()', () => Reflect.construct(Date, [], SubDate).getTime());
  read('Date.prototype.constructor.now()', () => Date.prototype.constructor.now());
  read('Date.now.call(null)', () => Date.now.call(null));
  read('Date.now.bind(null)()', () => Date.now.bind(null)());
  read('new Date()[Symbol.toPrimitive]("number")', () => new Date()[Symbol.toPrimitive]('number'));
  read('Object.getPrototypeOf(new Date()).constructor.now()', () => Object.getPrototypeOf(new Date()).constructor.now());
  read('new (Object.getPrototypeOf(Date))().getTime()', () => {
    const Parent = Object.getPrototypeOf(Date);
    const v = new Parent();
    return typeof v.getTime === 'function' ? v.getTime() : `not a date: ${Object.prototype.toString.call(v)}`;
  }, true);
  read('new (Object.getPrototypeOf(Date.prototype).constructor)()', () => {
    const Ctor = Object.getPrototypeOf(Date.prototype).constructor;
    const v = new Ctor();
    return Object.prototype.toString.call(v) === '[object Date]' ? v.getTime() : `${ctorName(v)} ${Object.prototype.toString.call(v)}`;
  }, true);
  read('Date.parse(Date())', () => Date.parse(Date())); // second precision
  const numeric = readings.filter((r) => typeof r.value === 'number' && r.name !== 'Date.parse(Date())');
  const values = numeric.map((r) => r.value);
  let monotonic = true;
  for (let i = 1; i < values.length; i++) if (values[i] < values[i - 1]) monotonic = false;
  const spread = values.length ? Math.max(...values) - Math.min(...values) : 0;
  const parsed = readings.find((r) => r.name === 'Date.parse(Date())');
  const secondsAgree =
    parsed && typeof parsed.value === 'number' && values.length
      ? Math.abs(Math.floor(values[0] / 1000) * 1000 - parsed.value) <= 1000
      : false;
  return {
    readings,
    monotonic,
    spread,
    secondsAgree,
    consistent: monotonic && spread < 1000 && secondsAgree,
    performanceNow: attempt(() => performance.now()),
    performanceTimeOrigin: attempt(() => performance.timeOrigin),
  };
}

function probeDate() {
  const protoOfDate = Object.getPrototypeOf(Date);
  const protoOfDateProto = Object.getPrototypeOf(Date.prototype);
  return {
    protoOfDateIsFunctionPrototype: protoOfDate === Function.prototype,
    protoOfDateName: typeof protoOfDate === 'function' ? protoOfDate.name : ctorName(protoOfDate),
    protoOfDatePrototypeIsObjectPrototype: protoOfDateProto === Object.prototype,
    protoOfDatePrototypeCtor: ctorName(Date.prototype),
    dateProtoCtorIsDate: Date.prototype.constructor === Date,
    newDateProtoIsDatePrototype: Object.getPrototypeOf(new Date()) === Date.prototype,
    subclassInstanceIsDate: new SubDate() instanceof Date,
    dateOwnNames: Object.getOwnPropertyNames(Date).sort(),
    datePrototypeOwnNames: Object.getOwnPropertyNames(Date.prototype).sort(),
    globalDescriptor: (() => {
      const d = Object.getOwnPropertyDescriptor(globalThis, 'Date');
      return d ? { writable: d.writable, enumerable: d.enumerable, configurable: d.configurable, accessor: !!(d.get || d.set) } : null;
    })(),
    dateCalledAsFunction: attempt(() => Date()),
  };
}

function probeTimezone() {
  const now = new Date();
  const epoch = new Date(0);
  const localCtor = new Date(2024, 0, 15, 12, 30, 0).getTime();
  const utcCtor = Date.UTC(2024, 0, 15, 12, 30, 0);
  const summer = new Date(Date.UTC(2024, 6, 1)).getTimezoneOffset();
  const result = {
    timezoneOffset: now.getTimezoneOffset(),
    summerOffset: summer,
    epochToString: epoch.toString(),
    epochToTimeString: epoch.toTimeString(),
    epochGetHours: epoch.getHours(),
    localConstructorIsUtc: localCtor === utcCtor,
    parseNoZoneIsUtc: Date.parse('2024-01-15T12:30:00') === utcCtor,
    epochToLocaleString: attempt(() => epoch.toLocaleString()),
    intlTimeZone: attempt(() =>
      typeof Intl === 'undefined' ? 'no Intl' : Intl.DateTimeFormat().resolvedOptions().timeZone,
    ),
  };
  result.utc =
    result.timezoneOffset === 0 &&
    summer === 0 &&
    /GMT\+0000/.test(result.epochToString) &&
    result.epochGetHours === 0 &&
    result.localConstructorIsUtc &&
    result.parseNoZoneIsUtc &&
    (result.intlTimeZone.value === 'no Intl' || result.intlTimeZone.value === 'UTC');
  return result;
}

function probeToStrings() {
  const targets = {
    Date: () => Date,
    'Date.now': () => Date.now,
    'Date.prototype.getTime': () => Date.prototype.getTime,
    'Date.prototype.getTimezoneOffset': () => Date.prototype.getTimezoneOffset,
    'Math.random': () => Math.random,
    fetch: () => fetch,
    setTimeout: () => setTimeout,
    clearTimeout: () => clearTimeout,
    setInterval: () => setInterval,
    queueMicrotask: () => queueMicrotask,
    'crypto.getRandomValues': () => crypto.getRandomValues,
    'crypto.randomUUID': () => crypto.randomUUID,
    'performance.now': () => performance.now,
    'console.log': () => console.log,
    Request: () => Request,
    Response: () => Response,
    Headers: () => Headers,
    URL: () => URL,
    TextEncoder: () => TextEncoder,
    structuredClone: () => structuredClone,
    atob: () => atob,
    'Function.prototype.toString': () => Function.prototype.toString,
  };
  const out = {};
  for (const [name, get] of Object.entries(targets)) {
    const r = attempt(get);
    out[name] = r.error ? { error: r.error } : typeof r.value === 'function' ? sourceOf(r.value) : { type: typeof r.value };
  }
  return out;
}

const STANDARD_FUNCTION_PROPS = new Set(['length', 'name', 'prototype', 'arguments', 'caller']);

function walkGraph(maxDepth = 3, maxNodes = 20_000) {
  const seen = new Set([globalThis]);
  const queue = [{ value: globalThis, path: 'globalThis', depth: 0 }];
  const typeofCounts = {};
  const unknownConstructors = [];
  const functionExtraProps = [];
  const suspiciousNames = [];
  const errors = [];
  let edges = 0;
  let truncated = false;

  const visit = (value, path, depth) => {
    edges++;
    const t = value === null ? 'null' : typeof value;
    typeofCounts[t] = (typeofCounts[t] || 0) + 1;
    if ((t !== 'object' && t !== 'function') || seen.has(value)) return;
    if (seen.size >= maxNodes) {
      truncated = true;
      return;
    }
    seen.add(value);
    const ctor = ctorName(value);
    const allowedNullProto = value === Object.prototype || path.endsWith('[Symbol(Symbol.unscopables)]');
    if (!KNOWN_CONSTRUCTORS.has(ctor) && !(ctor === '(null prototype)' && allowedNullProto) && !INTL_POLYFILL_INTERNAL.test(path)) {
      if (unknownConstructors.length < 50) unknownConstructors.push({ path, ctor });
    }
    if (t === 'function' && value !== Function.prototype && !KNOWN_CONSTRUCTORS.has(attempt(() => value.name).value)) {
      const extra = Reflect.ownKeys(value).filter((k) => !STANDARD_FUNCTION_PROPS.has(k)).map(keyName);
      if (extra.length && functionExtraProps.length < 50) functionExtraProps.push({ path, props: extra });
    }
    if (depth < maxDepth) queue.push({ value, path, depth });
  };

  while (queue.length) {
    const { value: obj, path, depth } = queue.shift();
    let keys;
    try {
      keys = Reflect.ownKeys(obj);
    } catch (err) {
      errors.push({ path, error: describeError(err) });
      continue;
    }
    for (const key of keys) {
      const name = keyName(key);
      const childPath = `${path}.${name}`;
      if (
        typeof key === 'string' &&
        SUSPICIOUS_NAME.test(key) &&
        !STANDARD_NAMES_MATCHING.has(key) &&
        !INTL_POLYFILL_INTERNAL.test(childPath) &&
        suspiciousNames.length < 50
      ) {
        suspiciousNames.push(childPath);
      }
      let desc;
      try {
        desc = Object.getOwnPropertyDescriptor(obj, key);
      } catch (err) {
        errors.push({ path: childPath, error: describeError(err) });
        continue;
      }
      if (!desc) continue;
      if ('value' in desc) {
        visit(desc.value, childPath, depth + 1);
      } else {
        if (desc.get) visit(desc.get, `${childPath}<get>`, depth + 1);
        if (desc.set) visit(desc.set, `${childPath}<set>`, depth + 1);
        // Ordinary code reads globals through their getters: do the same at the top.
        if (obj === globalThis && desc.get) {
          try {
            visit(globalThis[key], `${childPath}<value>`, depth + 1);
          } catch (err) {
            errors.push({ path: childPath, error: describeError(err) });
          }
        }
      }
    }
    let proto;
    try {
      proto = Object.getPrototypeOf(obj);
    } catch (err) {
      errors.push({ path: `${path}.[[Prototype]]`, error: describeError(err) });
      continue;
    }
    visit(proto, `${path}.[[Prototype]]`, depth + 1);
  }

  return {
    maxDepth,
    uniqueObjects: seen.size,
    edges,
    truncated,
    typeofCounts,
    unknownConstructors,
    functionExtraProps,
    suspiciousNames,
    errors: errors.slice(0, 20),
  };
}

const IMPORT_SPECIFIERS = [
  'std',
  'os',
  'qjs:std',
  'qjs:os',
  'fs',
  'node:fs',
  'node:child_process',
  '/etc/passwd',
  'file:///etc/passwd',
  '../package.json',
  './lib/../../package.json',
  '../../../../../../../../etc/hostname',
  'http://127.0.0.1:1/evil.js',
];

async function probeDynamicImports() {
  const out = [];
  for (const spec of IMPORT_SPECIFIERS) {
    try {
      const ns = await import(spec);
      out.push({ spec, loaded: true, exports: Object.keys(ns).slice(0, 20) });
    } catch (err) {
      out.push({ spec, loaded: false, errorName: err && err.name, error: describeError(err) });
    }
  }
  return out;
}

function probeImportMeta() {
  return attempt(() => {
    const meta = import.meta;
    const out = {};
    for (const key of Reflect.ownKeys(meta)) {
      const v = meta[key];
      out[keyName(key)] = typeof v === 'string' ? v : typeof v;
    }
    return out;
  });
}

function probeStacks() {
  const stack = attempt(() => String(new Error('probe').stack));
  // V8-only trick: a prepareStackTrace hook receives CallSite objects.
  const hook = attempt(() => {
    const saved = Error.prepareStackTrace;
    let called = false;
    let files = [];
    try {
      Error.prepareStackTrace = (err, frames) => {
        called = true;
        files = Array.isArray(frames) ? frames.map((f) => String(f && f.getFileName && f.getFileName())).slice(0, 5) : [];
        return 'hooked';
      };
      String(new Error('hook').stack);
    } finally {
      if (saved === undefined) delete Error.prepareStackTrace;
      else Error.prepareStackTrace = saved;
    }
    return { called, files };
  });
  return { stack, prepareStackTraceHook: hook };
}

function callerProbe(register) {
  // A sloppy-mode callback handed to a host API looks at who called it.
  return new Promise((resolve) => {
    const report = (what) => resolve(what);
    const makeSloppy = attempt(() =>
      new Function(
        'report',
        'return function sloppyProbe() {' +
          ' try { var c = sloppyProbe.caller; report(c === null || c === undefined ? String(c) :' +
          ' typeof c === "function" ? "function: " + Function.prototype.toString.call(c).slice(0, 120) : typeof c); }' +
          ' catch (e) { report("threw " + e.name); } };',
      )(report),
    );
    if (makeSloppy.error) return resolve(`no Function constructor: ${makeSloppy.error}`);
    try {
      register(makeSloppy.value);
    } catch (err) {
      resolve(`register threw ${describeError(err)}`);
    }
  });
}

async function probeCallers() {
  const withTimeout = (p) => {
    let handle;
    const t = new Promise((resolve) => {
      handle = setTimeout(() => resolve('callback never ran'), 200);
    });
    return Promise.race([p, t]).finally(() => clearTimeout(handle));
  };
  return {
    setTimeout: await withTimeout(callerProbe((cb) => setTimeout(cb, 0))),
    queueMicrotask: await withTimeout(callerProbe((cb) => queueMicrotask(cb))),
    promiseThen: await withTimeout(callerProbe((cb) => Promise.resolve().then(cb))),
    arrayMap: await withTimeout(callerProbe((cb) => [1].map(cb))),
  };
}

function probeTimerHandle() {
  const handle = setTimeout(() => {}, 60_000);
  const info = { type: typeof handle, ctor: handle !== null && typeof handle === 'object' ? ctorName(handle) : null };
  if (info.type === 'object' && handle !== null) info.ownKeys = Reflect.ownKeys(handle).map(keyName).slice(0, 20);
  clearTimeout(handle);
  return info;
}

async function probeFileFetch() {
  let handle;
  const timeout = new Promise((resolve) => {
    handle = setTimeout(() => resolve({ error: 'timed out' }), 2_000);
  });
  const attemptFetch = (async () => {
    try {
      const res = await fetch('file:///etc/passwd');
      const text = await res.text();
      return { status: res.status, length: text.length, prefix: text.slice(0, 16) };
    } catch (err) {
      return { error: describeError(err) };
    }
  })();
  try {
    return await Promise.race([attemptFetch, timeout]);
  } finally {
    clearTimeout(handle);
  }
}

function describeBindings(env, ctx, request) {
  const envKeys = env && typeof env === 'object' ? Object.keys(env).sort() : [];
  const ctxKeys = [];
  if (ctx && typeof ctx === 'object') {
    for (let o = ctx; o && o !== Object.prototype; o = Object.getPrototypeOf(o)) {
      for (const k of Reflect.ownKeys(o)) if (k !== 'constructor') ctxKeys.push(keyName(k));
    }
  }
  return {
    env: {
      type: env === null ? 'null' : typeof env,
      ctor: env && typeof env === 'object' ? ctorName(env) : null,
      keys: envKeys,
      nonString: envKeys.filter((k) => typeof env[k] !== 'string'),
    },
    ctx: {
      type: ctx === null ? 'null' : typeof ctx,
      ctor: ctx && typeof ctx === 'object' ? ctorName(ctx) : null,
      keys: ctxKeys.sort(),
      waitUntil: ctx ? typeof ctx.waitUntil : 'n/a',
      valueTypes: ctxKeys.map((k) => `${k}:${attempt(() => typeof ctx[k]).value}`),
    },
    request: {
      ctor: ctorName(request),
      isRequest: request instanceof Request,
      ownKeys: Reflect.ownKeys(request).map(keyName).sort(),
    },
  };
}

// ---------------------------------------------------------------------------
// Verdicts.

function judge(p) {
  const findings = [];
  const warnings = [];

  for (const [name, type] of Object.entries(p.typeofs.bare)) {
    if (type !== 'undefined') findings.push(`global ${name} is reachable (typeof ${type})`);
  }
  for (const [name, type] of Object.entries(p.typeofs.viaGlobalThis)) {
    if (type !== 'undefined' && !(name in p.typeofs.bare)) findings.push(`global ${name} is reachable (typeof ${type})`);
  }
  for (const [name, type] of Object.entries(p.typeofs.v8)) {
    if (type === 'function') warnings.push(`${name} exists (V8 stack API)`);
  }

  const g = p.globals;
  for (const name of g.direct.unexpected) findings.push(`unexpected global ${name}`);
  for (const name of g.direct.missingPromised) warnings.push(`promised global ${name} is missing`);
  for (const view of ['viaFunction', 'viaIndirectEval']) {
    const v = g[view];
    if (v.value && !v.value.sameAsGlobalThis) {
      findings.push(`${view} reached a different global object`);
      for (const name of v.value.unexpected || []) findings.push(`${view}: unexpected global ${name}`);
    }
  }

  const d = p.date;
  if (!d.protoOfDateIsFunctionPrototype) findings.push(`Object.getPrototypeOf(Date) is ${d.protoOfDateName}, not Function.prototype (a wrapped Date?)`);
  if (!d.protoOfDatePrototypeIsObjectPrototype) findings.push('Date.prototype does not inherit directly from Object.prototype (a wrapped Date?)');
  if (!d.dateProtoCtorIsDate) findings.push('Date.prototype.constructor is not Date');

  const c = p.clock;
  if (!c.consistent) findings.push(`clock readings disagree (monotonic=${c.monotonic}, spread=${c.spread}ms, secondsAgree=${c.secondsAgree})`);
  for (const r of c.readings) {
    // The prototype walks are expected to fail or to reach a non-Date; if they
    // do reach a Date, its value takes part in the consistency check above.
    if (r.walk) continue;
    if (r.error) warnings.push(`clock reading ${r.name} failed: ${r.error}`);
    else if (typeof r.value !== 'number') findings.push(`clock reading ${r.name} gave ${r.value}`);
  }

  if (!p.timezone.utc) findings.push(`local time is not UTC (offset ${p.timezone.timezoneOffset}, ${p.timezone.epochToString})`);

  const w = p.graph;
  for (const u of w.unknownConstructors) findings.push(`object of unknown class ${u.ctor} at ${u.path}`);
  for (const f of w.functionExtraProps) findings.push(`function ${f.path} carries extra properties ${f.props.join(',')}`);
  for (const s of w.suspiciousNames) findings.push(`suspicious property name ${s}`);
  if (w.truncated) warnings.push('global graph walk was truncated');

  for (const imp of p.dynamicImports) {
    if (imp.loaded) findings.push(`dynamic import of ${imp.spec} succeeded`);
    else if (imp.errorName === 'SyntaxError') findings.push(`dynamic import of ${imp.spec} read a host file (${imp.error})`);
  }

  const hostPath = /(^|[\s(@])(\/(home|root|usr|etc|tmp|work|opt|var)\/|file:\/\/|node:)/;
  if (p.importMeta.value) {
    for (const [k, v] of Object.entries(p.importMeta.value)) {
      if (typeof v === 'string' && hostPath.test(v)) warnings.push(`import.meta.${k} exposes a host path: ${v}`);
    }
  }
  if (p.stacks.stack.value && hostPath.test(p.stacks.stack.value)) warnings.push('Error.stack exposes host paths');
  if (p.stacks.prepareStackTraceHook.value && p.stacks.prepareStackTraceHook.value.called) {
    warnings.push('Error.prepareStackTrace hook is honoured (CallSite objects reachable)');
  }

  for (const [via, what] of Object.entries(p.callers)) {
    if (typeof what === 'string' && what.startsWith('function: ') && !/\[native code\]/.test(what)) {
      warnings.push(`sloppy callback via ${via} sees a JS caller: ${what.slice(10, 70)}`);
    }
  }

  if (p.timerHandle.type === 'object' && !KNOWN_CONSTRUCTORS.has(p.timerHandle.ctor)) {
    findings.push(`setTimeout returns a host object (${p.timerHandle.ctor})`);
  }

  if (p.fileFetch.status !== undefined && p.fileFetch.length > 0) {
    findings.push(`fetch('file:///etc/passwd') returned ${p.fileFetch.status} with ${p.fileFetch.length} chars`);
  }

  const b = p.bindings;
  for (const k of b.env.nonString) findings.push(`env.${k} is not a string`);
  if (b.env.ctor && !KNOWN_CONSTRUCTORS.has(b.env.ctor) && b.env.ctor !== '(null prototype)') {
    findings.push(`env is an instance of ${b.env.ctor}`);
  }
  for (const vt of b.ctx.valueTypes) {
    const [k, type] = vt.split(':');
    if (type === 'object') findings.push(`ctx.${k} is an object`);
  }
  if (!KNOWN_CONSTRUCTORS.has(b.request.ctor)) findings.push(`request is an instance of ${b.request.ctor}`);

  return { findings, warnings };
}

// ---------------------------------------------------------------------------

// Hosts that need UTS #46: its table loads on the first one, so a replay must load it at the same
// point and map them identically.
function probeIdnaHosts() {
  return ['fa\u00DF.de', 'GOO\u200B\u2060\uFEFFgoo.com', '\uFDD0zyx.com', 'xn--a.com'].map((h) => {
    try {
      return new URL(`http://${h}/`).host;
    } catch (e) {
      return e.name;
    }
  });
}

async function runAll(env, ctx, request) {
  const probes = {
    idnaHosts: probeIdnaHosts(),
    typeofs: probeTypeofs(),
    globals: probeGlobals(),
    date: probeDate(),
    clock: readClocks(),
    timezone: probeTimezone(),
    toStrings: probeToStrings(),
    graph: walkGraph(3),
    importMeta: probeImportMeta(),
    stacks: probeStacks(),
    timerHandle: probeTimerHandle(),
    bindings: describeBindings(env, ctx, request),
    callers: await probeCallers(),
    dynamicImports: await probeDynamicImports(),
    fileFetch: await probeFileFetch(),
  };
  const { findings, warnings } = judge(probes);
  return { ok: findings.length === 0, findings, warnings, probes };
}

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    const routes = ['/', '/probe', '/globals', '/clock'];
    if (!routes.includes(url.pathname)) return json({ error: 'not found' }, 404);
    if (request.method !== 'GET') return json({ error: 'method not allowed', allow: 'GET' }, 405, { allow: 'GET' });

    switch (url.pathname) {
      case '/':
        return json({ name: 'probe', routes: routes.map((r) => `GET ${r}`) });
      case '/probe':
        return json(await runAll(env, ctx, request));
      case '/globals':
        return json({ typeofs: probeTypeofs(), globals: probeGlobals() });
      case '/clock':
        return json({ date: probeDate(), clock: readClocks(), timezone: probeTimezone() });
    }
  },
};
