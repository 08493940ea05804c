// A small testharness.js-compatible harness for running Web Platform Tests (.any.js files) in one
// realm: a bare QuickJS context with the guest web glue, or a Node worker thread for the Node 20
// baseline. It is evaluated in that realm before the test's META scripts and the test itself, and
// installs the testharness API as globals. It counts subtests the way testharness.js reports them:
// each test()/async_test()/promise_test() is one subtest, PASS or not.
//
// Timers are virtual: setTimeout/step_timeout only queue a callback with a due time, and the
// driver (runner.ts / node-worker.mjs) calls __wpt.fireNextTimer() whenever the microtask queue is
// empty and subtests are still running. A 100 ms delay therefore costs no wall time, and the order
// of callbacks follows their due times, as on a real event loop.
(function (global) {
  'use strict';

  const results = []; // { name, status, message }
  const tests = [];
  let promiseChain = Promise.resolve();
  let harnessError = null;
  let allDone = false;
  const completionCallbacks = [];

  // --- virtual timers ---
  let now = 0;
  let timerSeq = 0;
  const timers = new Map(); // id -> { due, seq, fn, args, interval }
  function addTimer(fn, ms, args, interval) {
    const id = ++timerSeq;
    const delay = Math.max(0, Number(ms) || 0);
    timers.set(id, { due: now + delay, seq: id, fn, args, interval: interval ? Math.max(1, delay) : 0 });
    return id;
  }
  function fireNextTimer() {
    let next = null;
    for (const [id, t] of timers) {
      if (next === null || t.due < next[1].due || (t.due === next[1].due && t.seq < next[1].seq)) next = [id, t];
    }
    if (next === null) return false;
    const [id, t] = next;
    now = Math.max(now, t.due);
    if (t.interval) { t.due = now + t.interval; t.seq = ++timerSeq; } else timers.delete(id);
    try {
      if (typeof t.fn === 'function') t.fn(...t.args);
    } catch (e) {
      if (!harnessError) harnessError = 'uncaught exception in a timer: ' + describeError(e);
    }
    return true;
  }
  const setTimeoutV = (fn, ms, ...args) => addTimer(fn, ms, args, false);
  const setIntervalV = (fn, ms, ...args) => addTimer(fn, ms, args, true);
  const clearTimerV = (id) => { timers.delete(id); };

  // --- formatting and errors ---
  function describeError(e) {
    if (e instanceof AssertionError) return e.message;
    try {
      if (e && typeof e === 'object' && 'name' in e) return String(e.name) + ': ' + String(e.message);
      return String(e);
    } catch {
      return '(unprintable exception)';
    }
  }
  function format_value(v) {
    try {
      if (typeof v === 'string') return JSON.stringify(v);
      if (typeof v === 'number') return Object.is(v, -0) ? '-0' : String(v);
      if (typeof v === 'bigint') return String(v) + 'n';
      if (typeof v === 'symbol') return v.toString();
      if (v === null || typeof v !== 'object') return String(v);
      if (Array.isArray(v)) return '[' + v.map(format_value).join(', ') + ']';
      return Object.prototype.toString.call(v);
    } catch {
      return '(unprintable)';
    }
  }
  class AssertionError extends Error {
    constructor(message) { super(message); this.name = 'AssertionError'; }
  }
  class OptionalFeatureUnsupportedError extends AssertionError {}
  function fail(msg, description) {
    throw new AssertionError((description ? description + ': ' : '') + msg);
  }
  function sameValue(a, b) {
    if (typeof a === 'number' && typeof b === 'number') return Object.is(a, b);
    return a === b;
  }

  // --- assertions ---
  const A = {};
  A.assert_true = (v, d) => { if (v !== true) fail('expected true got ' + format_value(v), d); };
  A.assert_false = (v, d) => { if (v !== false) fail('expected false got ' + format_value(v), d); };
  A.assert_equals = (a, e, d) => {
    if (typeof a !== typeof e) fail('expected (' + typeof e + ') ' + format_value(e) + ' but got (' + typeof a + ') ' + format_value(a), d);
    if (!sameValue(a, e)) fail('expected ' + format_value(e) + ' but got ' + format_value(a), d);
  };
  A.assert_not_equals = (a, e, d) => { if (sameValue(a, e)) fail('got disallowed value ' + format_value(a), d); };
  A.assert_in_array = (a, arr, d) => { if (arr.indexOf(a) === -1) fail('value ' + format_value(a) + ' not in array', d); };
  A.assert_array_equals = (a, e, d) => {
    if (typeof a !== 'object' || a === null || !('length' in a)) fail('value is ' + format_value(a) + ', expected array', d);
    if (a.length !== e.length) fail('lengths differ, expected array ' + format_value(e) + ' length ' + e.length + ', got ' + format_value(a) + ' length ' + a.length, d);
    for (let i = 0; i < a.length; i++) {
      if (Object.prototype.hasOwnProperty.call(a, i) !== Object.prototype.hasOwnProperty.call(e, i)) fail('property ' + i + ': presence differs', d);
      if (!sameValue(e[i], a[i])) fail('expected property ' + i + ' to be ' + format_value(e[i]) + ' but got ' + format_value(a[i]), d);
    }
  };
  A.assert_array_approx_equals = (a, e, eps, d) => {
    if (a.length !== e.length) fail('lengths differ', d);
    for (let i = 0; i < a.length; i++) if (!(Math.abs(a[i] - e[i]) <= eps)) fail('property ' + i + ' not within ' + eps, d);
  };
  A.assert_approx_equals = (a, e, eps, d) => {
    if (typeof a !== 'number') fail('expected a number but got ' + typeof a, d);
    if (a === e) return;
    if (!(Math.abs(a - e) <= eps)) fail('expected ' + e + ' +/- ' + eps + ' but got ' + a, d);
  };
  A.assert_less_than = (a, e, d) => { if (typeof a !== 'number' || !(a < e)) fail('expected a number less than ' + e + ' but got ' + format_value(a), d); };
  A.assert_greater_than = (a, e, d) => { if (typeof a !== 'number' || !(a > e)) fail('expected a number greater than ' + e + ' but got ' + format_value(a), d); };
  A.assert_less_than_equal = (a, e, d) => { if (typeof a !== 'number' || !(a <= e)) fail('expected <= ' + e + ' but got ' + format_value(a), d); };
  A.assert_greater_than_equal = (a, e, d) => { if (typeof a !== 'number' || !(a >= e)) fail('expected >= ' + e + ' but got ' + format_value(a), d); };
  A.assert_between_exclusive = (a, lo, hi, d) => { if (!(a > lo && a < hi)) fail('expected between ' + lo + ' and ' + hi, d); };
  A.assert_between_inclusive = (a, lo, hi, d) => { if (!(a >= lo && a <= hi)) fail('expected between ' + lo + ' and ' + hi, d); };
  A.assert_regexp_match = (a, re, d) => { if (!re.test(a)) fail('expected ' + format_value(a) + ' to match ' + re, d); };
  A.assert_class_string = (o, cls, d) => {
    const s = Object.prototype.toString.call(o);
    if (s !== '[object ' + cls + ']') fail('expected [object ' + cls + '] but got ' + s, d);
  };
  A.assert_own_property = (o, p, d) => { if (!Object.prototype.hasOwnProperty.call(o, p)) fail('expected own property ' + format_value(p), d); };
  A.assert_not_own_property = (o, p, d) => { if (Object.prototype.hasOwnProperty.call(o, p)) fail('unexpected own property ' + format_value(p), d); };
  A.assert_inherits = (o, p, d) => {
    if (Object.prototype.hasOwnProperty.call(o, p)) fail('property ' + format_value(p) + ' found on object, expected in prototype chain', d);
    if (!(p in o)) fail('property ' + format_value(p) + ' not found in prototype chain', d);
  };
  A.assert_idl_attribute = A.assert_inherits;
  A.assert_readonly = (o, p, d) => {
    const initial = o[p];
    try {
      o[p] = initial + 'a';
      if (!sameValue(o[p], initial)) fail('changing property ' + format_value(p) + ' succeeded', d);
    } finally {
      try { o[p] = initial; } catch { /* read-only */ }
    }
  };
  A.assert_unreached = (d) => fail('Reached unreachable code', d);
  A.assert_implements = (cond, d) => { if (!cond) fail('not implemented', d); };
  A.assert_implements_optional = (cond, d) => { if (!cond) throw new OptionalFeatureUnsupportedError(d || 'optional feature unsupported'); };
  A.assert_object_equals = (a, e, d) => {
    const check = (x, y, stack) => {
      if (typeof x !== 'object' || x === null || typeof y !== 'object' || y === null) {
        if (!sameValue(x, y)) fail('expected ' + format_value(y) + ' got ' + format_value(x), d);
        return;
      }
      if (stack.indexOf(x) >= 0) return;
      for (const k in y) {
        if (!Object.prototype.hasOwnProperty.call(y, k)) continue;
        if (!Object.prototype.hasOwnProperty.call(x, k)) fail('property ' + k + ' missing', d);
        check(x[k], y[k], stack.concat([x]));
      }
      for (const k in x) if (Object.prototype.hasOwnProperty.call(x, k) && !Object.prototype.hasOwnProperty.call(y, k)) fail('unexpected property ' + k, d);
    };
    check(a, e, []);
  };
  A.assert_any = (fn, actual, expected, ...rest) => {
    const errors = [];
    for (const e of expected) {
      try { fn(actual, e, ...rest); return; } catch (err) { errors.push(describeError(err)); }
    }
    fail(errors.join('; '));
  };
  A.assert_throws_js = (Type, fn, d) => {
    try {
      fn();
    } catch (e) {
      if (e instanceof AssertionError) throw e;
      if (typeof e !== 'object' || e === null) fail('threw ' + format_value(e) + ' instead of an object', d);
      if (e.constructor !== Type) fail('threw ' + describeError(e) + ', expected ' + Type.name, d);
      return;
    }
    fail('did not throw (expected ' + Type.name + ')', d);
  };
  A.assert_throws_exactly = (expected, fn, d) => {
    try { fn(); } catch (e) {
      if (e instanceof AssertionError) throw e;
      if (!sameValue(e, expected)) fail('threw ' + format_value(e) + ' but we expected it to throw ' + format_value(expected), d);
      return;
    }
    fail('did not throw', d);
  };
  const DOM_CODES = {
    IndexSizeError: 1, HierarchyRequestError: 3, WrongDocumentError: 4, InvalidCharacterError: 5,
    NoModificationAllowedError: 7, NotFoundError: 8, NotSupportedError: 9, InvalidStateError: 11,
    SyntaxError: 12, InvalidModificationError: 13, NamespaceError: 14, InvalidAccessError: 15,
    TypeMismatchError: 17, SecurityError: 18, NetworkError: 19, AbortError: 20, URLMismatchError: 21,
    QuotaExceededError: 22, TimeoutError: 23, InvalidNodeTypeError: 24, DataCloneError: 25,
    EncodingError: 0, NotReadableError: 0, UnknownError: 0, ConstraintError: 0, DataError: 0,
    TransactionInactiveError: 0, ReadOnlyError: 0, VersionError: 0, OperationError: 0, NotAllowedError: 0,
    OptOutError: 0,
  };
  const CODE_NAMES = {
    INDEX_SIZE_ERR: 'IndexSizeError', HIERARCHY_REQUEST_ERR: 'HierarchyRequestError', INVALID_CHARACTER_ERR: 'InvalidCharacterError',
    NOT_FOUND_ERR: 'NotFoundError', NOT_SUPPORTED_ERR: 'NotSupportedError', INVALID_STATE_ERR: 'InvalidStateError',
    SYNTAX_ERR: 'SyntaxError', INVALID_ACCESS_ERR: 'InvalidAccessError', TYPE_MISMATCH_ERR: 'TypeMismatchError',
    SECURITY_ERR: 'SecurityError', NETWORK_ERR: 'NetworkError', ABORT_ERR: 'AbortError', QUOTA_EXCEEDED_ERR: 'QuotaExceededError',
    TIMEOUT_ERR: 'TimeoutError', DATA_CLONE_ERR: 'DataCloneError', INVALID_MODIFICATION_ERR: 'InvalidModificationError',
    NAMESPACE_ERR: 'NamespaceError', NO_MODIFICATION_ALLOWED_ERR: 'NoModificationAllowedError',
  };
  function checkDom(type, ctor, e, d) {
    if (e instanceof AssertionError) throw e;
    let name = type;
    if (typeof type === 'number') name = Object.keys(DOM_CODES).find((k) => DOM_CODES[k] === type);
    else if (CODE_NAMES[type]) name = CODE_NAMES[type];
    if (typeof e !== 'object' || e === null) fail('threw ' + format_value(e) + ', expected a DOMException', d);
    if (e.constructor !== ctor) fail('threw ' + describeError(e) + ' (not a DOMException of this realm)', d);
    if (e.name !== name) fail('threw DOMException ' + e.name + ', expected ' + name, d);
    if (name in DOM_CODES && e.code !== DOM_CODES[name]) fail('DOMException code ' + e.code + ', expected ' + DOM_CODES[name], d);
  }
  A.assert_throws_dom = (type, ...rest) => {
    const ctor = typeof rest[0] === 'function' && typeof rest[1] === 'function' ? rest.shift() : global.DOMException;
    const [fn, d] = rest;
    try { fn(); } catch (e) { checkDom(type, ctor, e, d); return; }
    fail('did not throw (expected DOMException ' + type + ')', d);
  };
  function promiseRejects(t, check, promise, d) {
    return Promise.resolve(promise).then(
      () => fail('promise resolved instead of rejecting', d),
      (e) => check(e),
    );
  }
  A.promise_rejects_js = (t, Type, p, d) => promiseRejects(t, (e) => {
    if (typeof e !== 'object' || e === null || e.constructor !== Type) fail('rejected with ' + describeError(e) + ', expected ' + Type.name, d);
  }, p, d);
  A.promise_rejects_dom = (t, type, ...rest) => {
    // (t, type, promise, description) or (t, type, constructor, promise, description)
    const ctor = typeof rest[0] === 'function' ? rest.shift() : global.DOMException;
    const [p, d] = rest;
    return promiseRejects(t, (e) => checkDom(type, ctor, e, d), p, d);
  };
  A.promise_rejects_exactly = (t, expected, p, d) => promiseRejects(t, (e) => {
    if (!sameValue(e, expected)) fail('rejected with ' + format_value(e) + ', expected ' + format_value(expected), d);
  }, p, d);

  // --- tests ---
  const PASS = 'PASS', FAIL = 'FAIL', TIMEOUT = 'TIMEOUT', NOTRUN = 'NOTRUN', PRECONDITION_FAILED = 'PRECONDITION_FAILED';

  class Test {
    constructor(name) {
      this.name = name;
      this.phase = 0; // 0 running, 1 done
      this.status = null;
      this.message = null;
      this.cleanups = [];
      this._onDone = null;
      tests.push(this);
    }
    step(fn, self, ...args) {
      if (this.phase !== 0) return undefined;
      try {
        return fn.apply(self === undefined ? this : self, args);
      } catch (e) {
        this.fail(e);
        return undefined;
      }
    }
    step_func(fn, self) {
      const t = this;
      return function (...args) { return t.step(fn, self === undefined ? this : self, ...args); };
    }
    step_func_done(fn, self) {
      const t = this;
      return function (...args) {
        let r;
        if (fn) r = t.step(fn, self === undefined ? this : self, ...args);
        t.done();
        return r;
      };
    }
    unreached_func(d) {
      return this.step_func(() => A.assert_unreached(d));
    }
    step_timeout(fn, ms, ...args) {
      return setTimeoutV(this.step_func(() => fn(...args)), ms);
    }
    step_wait_func(cond, fn, d, timeout = 3000, interval = 100) {
      const start = now;
      const poll = () => {
        if (this.phase !== 0) return;
        let ok;
        try { ok = cond(); } catch (e) { this.fail(e); return; }
        if (ok) this.step(fn);
        else if (now - start > timeout) this.fail(new AssertionError(d || 'step_wait timed out'));
        else setTimeoutV(poll, interval);
      };
      poll();
    }
    step_wait_func_done(cond, fn, d, timeout, interval) {
      this.step_wait_func(cond, () => { if (fn) fn(); this.done(); }, d, timeout, interval);
    }
    step_wait(cond, d, timeout = 3000, interval = 100) {
      return new Promise((resolve, reject) => {
        const start = now;
        const poll = () => {
          let ok;
          try { ok = cond(); } catch (e) { reject(e); return; }
          if (ok) resolve();
          else if (now - start > timeout) reject(new AssertionError(d || 'step_wait timed out'));
          else setTimeoutV(poll, interval);
        };
        poll();
      });
    }
    add_cleanup(fn) { this.cleanups.push(fn); }
    fail(e) {
      if (this.phase !== 0) return;
      this.finish(e instanceof OptionalFeatureUnsupportedError ? PRECONDITION_FAILED : FAIL, describeError(e));
    }
    done() {
      if (this.phase !== 0) return;
      this.finish(PASS, null);
    }
    force_timeout() { this.finish(TIMEOUT, 'forced timeout'); }
    finish(status, message) {
      if (this.phase !== 0) return;
      this.phase = 1;
      const after = () => {
        results.push({ name: String(this.name), status, message });
        if (this._onDone) this._onDone();
      };
      const pending = [];
      for (const c of this.cleanups) {
        try {
          const r = c();
          if (r && typeof r.then === 'function') pending.push(r);
        } catch (e) {
          if (!harnessError) harnessError = 'cleanup failed: ' + describeError(e);
        }
      }
      if (pending.length) Promise.all(pending).then(after, after);
      else after();
    }
  }

  function nameOf(fn, name) {
    if (name !== undefined) return name;
    return (fn && fn.name) || '(unnamed test)';
  }

  function test(fn, name, props) {
    const t = new Test(nameOf(fn, name));
    t.step(fn, t, t);
    t.done();
    return t;
  }
  function async_test(fn, name, props) {
    if (typeof fn !== 'function') { props = name; name = fn; fn = null; }
    const t = new Test(nameOf(fn, name));
    if (fn) t.step(fn, t, t);
    return t;
  }
  function promise_test(fn, name, props) {
    const t = new Test(nameOf(fn, name));
    promiseChain = promiseChain.then(() => new Promise((resolve) => {
      t._onDone = resolve;
      let p;
      try {
        p = fn.call(t, t);
      } catch (e) {
        t.fail(e);
        return;
      }
      if (!p || typeof p.then !== 'function') {
        t.fail(new AssertionError('promise_test: test body must return a promise'));
        return;
      }
      p.then(() => t.done(), (e) => t.fail(e));
    }));
    return t;
  }
  function generate_tests(fn, cases) {
    for (const c of cases) test(() => fn(...c.slice(1)), c[0]);
  }
  function setup(fnOrProps, maybeProps) {
    if (typeof fnOrProps === 'function') {
      try { fnOrProps(); } catch (e) { harnessError = 'setup failed: ' + describeError(e); }
    }
  }
  function promise_setup(fn) {
    promiseChain = promiseChain.then(() => fn()).catch((e) => { harnessError = 'promise_setup failed: ' + describeError(e); });
  }

  class EventWatcher {
    constructor(t, target, types) {
      this.t = t; this.target = target; this.queue = []; this.waiting = null;
      types = Array.isArray(types) ? types : [types];
      for (const type of types) target.addEventListener(type, t.step_func((ev) => {
        if (this.waiting && this.waiting.types[0] === ev.type) {
          const w = this.waiting;
          w.types.shift();
          w.events.push(ev);
          if (w.types.length === 0) { this.waiting = null; w.resolve(w.single ? ev : w.events); }
        } else if (this.waiting) {
          this.waiting.reject(new AssertionError('unexpected event ' + ev.type));
        }
      }));
    }
    wait_for(types) {
      const single = !Array.isArray(types);
      return new Promise((resolve, reject) => {
        this.waiting = { types: single ? [types] : types.slice(), events: [], resolve, reject, single };
      });
    }
  }

  // Resources the tests fetch (JSON data next to them) come from the runner, not a network.
  function resolvePath(rel) {
    const base = global.__wpt_base || '/';
    const parts = (rel.startsWith('/') ? rel : base + rel).split('/');
    const out = [];
    for (const p of parts) {
      if (p === '..') out.pop();
      else if (p !== '.' && p !== '') out.push(p);
    }
    return out.join('/');
  }
  function readResource(rel) {
    const text = global.__wpt_read(resolvePath(String(rel)));
    if (typeof text !== 'string') throw new TypeError('WPT runner: no resource ' + rel + ' (the runner has no network)');
    return text;
  }
  function fetch_json(rel) {
    try { return Promise.resolve(JSON.parse(readResource(rel))); } catch (e) { return Promise.reject(e); }
  }
  function wptFetch(input) {
    const rel = typeof input === 'string' ? input : String(input && input.url);
    if (/^[a-z][a-z0-9+.-]*:/i.test(rel)) return Promise.reject(new TypeError('WPT runner: no network for ' + rel));
    try {
      const text = readResource(rel);
      const type = rel.endsWith('.json') ? 'application/json' : 'text/plain';
      // In the guest, the Response the VM's fetch makes (immutable headers, a URL); in Node, a plain one.
      const web = global.__ftjs_web;
      if (web && typeof web.makeResponse === 'function') {
        return Promise.resolve(web.makeResponse(200, 'OK', [['content-type', type]], new TextEncoder().encode(text), 'http://web-platform.test/' + resolvePath(rel)));
      }
      return Promise.resolve(new global.Response(text, { headers: { 'content-type': type } }));
    } catch (e) {
      return Promise.reject(e);
    }
  }

  function done() { allDone = true; }
  function add_completion_callback(fn) { completionCallbacks.push(fn); }
  function add_result_callback() {}
  function add_start_callback() {}
  function get_title() { return global.__wpt_title || ''; }
  function timeout() {}

  const api = {
    test, async_test, promise_test, generate_tests, setup, promise_setup, done, format_value,
    add_completion_callback, add_result_callback, add_start_callback, get_title, timeout,
    step_timeout: setTimeoutV, EventWatcher, fetch_json, AssertionError,
    ...A,
  };
  for (const k of Object.keys(api)) global[k] = api[k];
  global.setTimeout = setTimeoutV;
  global.setInterval = setIntervalV;
  global.clearTimeout = clearTimerV;
  global.clearInterval = clearTimerV;
  global.fetch = wptFetch;
  // A VM has a console (runtime.js); the bare context does not. Test output is not a result: dropped.
  if (typeof global.console === 'undefined') {
    const quiet = () => {};
    global.console = { log: quiet, info: quiet, warn: quiet, error: quiet, debug: quiet };
  }
  global.self = global;
  global.GLOBAL = { isWindow: () => false, isWorker: () => false, isShadowRealm: () => false };
  global.location = { search: '', href: 'http://web-platform.test/', hash: '', origin: 'http://web-platform.test', protocol: 'http:', host: 'web-platform.test', hostname: 'web-platform.test', pathname: '/', port: '' };

  // The driver's view.
  global.__wpt = {
    fireNextTimer,
    harnessError: (msg) => { if (!harnessError) harnessError = msg; },
    pending: () => tests.some((t) => t.phase === 0) || results.length < tests.length,
    progress: () => results.length * 1e6 + tests.length,
    finish() {
      for (const t of tests) if (t.phase === 0) { t.phase = 1; results.push({ name: String(t.name), status: TIMEOUT, message: 'did not complete' }); }
      for (const cb of completionCallbacks) { try { cb(tests, {}); } catch { /* ignore */ } }
      return JSON.stringify({ results, harnessError });
    },
  };
})(globalThis);
