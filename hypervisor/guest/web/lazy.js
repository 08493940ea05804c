// Lazy modules: big parts of the platform (streams, compression) that most requests never touch.
// They are not evaluated at boot; the host hands a module's code over on first use (a pure function
// of the boot config, so replay does the same at the same position), and it is evaluated here with
// the intrinsics captured now, at boot (the guest may have replaced the globals of those names since).
//
// lazyGlobals() installs accessors on the global object that load the module on first read and then
// become plain data properties, as any other global: the guest sees no difference but the first cost.

const host = globalThis.__ftjs_host;
const OP_LAZY_MODULE = 9; // keep in sync with hypervisor/vm/vm.ts HostOp
const indirectEval = globalThis.eval;
const ObjectDefineProperty = Object.defineProperty;
const PromiseResolve = Promise.resolve.bind(Promise);
const PromiseThen = Function.prototype.call.bind(Promise.prototype.then);

// A microtask queue of boot-captured parts (the runtime's queueMicrotask is defined after this module).
function bootQueueMicrotask(callback) {
  PromiseThen(PromiseResolve(), () => callback());
}

// In the order of LAZY_INTRINSICS (hypervisor/vm/glue.ts), after the imports object.
const intrinsics = [
  Object, Function, Array, Promise, Symbol, Error, TypeError, RangeError, Reflect, Math, Number, String,
  ArrayBuffer, DataView, Uint8Array, Uint16Array, Uint32Array, Int8Array, Int16Array, Int32Array, Float32Array,
  Float64Array, BigInt64Array, BigUint64Array, Uint8ClampedArray, Map, Set, WeakMap, JSON,
  bootQueueMicrotask, undefined, undefined, undefined, undefined, undefined, globalThis, undefined, undefined, undefined,
];
// Platform classes defined by other web modules: filled in by provideIntrinsic before any lazy load.
const PROVIDED = { AbortController: 30, AbortSignal: 31, DOMException: 32, TextEncoder: 33, TextDecoder: 34 };

export function provideIntrinsic(name, value) {
  intrinsics[PROVIDED[name]] = value;
}

const loaded = new Map();

/** The exports of lazy module `name`, evaluated once with `imports`. */
export function lazyModule(name, imports) {
  let exports = loaded.get(name);
  if (exports === undefined) {
    const code = host(OP_LAZY_MODULE, name);
    if (typeof code !== 'string') throw new Error('ftjs: the lazy web module "' + name + '" is missing from the glue');
    const factory = indirectEval(code);
    exports = factory(imports, ...intrinsics);
    loaded.set(name, exports);
  }
  return exports;
}

export function isLoaded(name) {
  return loaded.has(name);
}

function defineData(name, value) {
  ObjectDefineProperty(globalThis, name, { value, writable: true, configurable: true, enumerable: false });
}

/** Globals `names` read from `load()` (an object of exports) the first time any of them is read. */
export function lazyGlobals(names, load) {
  for (let i = 0; i < names.length; i++) {
    const name = names[i];
    ObjectDefineProperty(globalThis, name, {
      configurable: true,
      enumerable: false,
      get() {
        const value = load()[name];
        defineData(name, value);
        return value;
      },
      set(value) {
        defineData(name, value);
      },
    });
  }
}
