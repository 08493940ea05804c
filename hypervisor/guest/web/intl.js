// Intl and the toLocale* methods, installed lazily. The polyfill (FormatJS, our Collator, locale and
// time-zone data: hypervisor/guest/intl/, 3.5 MB) is not part of the boot glue: it comes in lazy
// chunks of the boot config that the host compiles on the first real use of Intl (host op
// LAZY_GLUE), so a service that never formats a number pays nothing at boot. First use is itself a
// deterministic guest action, so a replay loads it at the very same point.
//
// What is installed at boot is small: `globalThis.Intl`, an ordinary object whose members are
// accessors that load the polyfill (after which they are plain data properties), and the ECMA-402
// versions of the Number/BigInt/Date/String/Array toLocale* methods and localeCompare. Everything
// they call on a receiver is captured here, at boot.

const host = globalThis.__ftjs_host;
const OP_LAZY_GLUE = 14;

const { defineProperty, getOwnPropertyDescriptor } = Object;
const { apply } = Reflect;
const StringCtor = String;
const ObjectCtor = Object;
const numberValue = Number.prototype.valueOf;
const bigintValue = BigInt.prototype.valueOf;
const timeValue = Date.prototype.getTime;
const toUpperCase = String.prototype.toUpperCase;
const toLowerCase = String.prototype.toLowerCase;
const stringReplace = String.prototype.replace;
const TypedArrayPrototype = Object.getPrototypeOf(Uint8Array.prototype);
const typedArrayLength = getOwnPropertyDescriptor(TypedArrayPrototype, 'length').get;
const isNaNNumber = Number.isNaN;
const { min, max, trunc } = Math;
const MAX_SAFE_INTEGER = Number.MAX_SAFE_INTEGER;

const INTL_MEMBERS = ['getCanonicalLocales', 'supportedValuesOf', 'Collator', 'DateTimeFormat', 'ListFormat', 'Locale', 'NumberFormat', 'PluralRules', 'RelativeTimeFormat'];
/** Methods the polyfills overwrite while loading; put back afterwards (they are ours or the guest's). */
const PATCHED_BY_POLYFILLS = [
  [Number.prototype, 'toLocaleString'],
  [BigInt.prototype, 'toLocaleString'],
  [Date.prototype, 'toLocaleString'],
  [Date.prototype, 'toLocaleDateString'],
  [Date.prototype, 'toLocaleTimeString'],
  [String.prototype, 'localeCompare'],
];

const intl = {};
defineProperty(intl, Symbol.toStringTag, { value: 'Intl', configurable: true });

function chunk(name) {
  if (typeof host !== 'function') throw new TypeError(`Intl is unavailable: no host to load "${name}" from`);
  const f = apply(host, undefined, [OP_LAZY_GLUE, name]);
  if (typeof f !== 'function') throw f === undefined ? new TypeError(`Intl is unavailable: the boot config has no "${name}" chunk`) : f;
  return f;
}

/** Compiles and runs chunk `name` on `target`; loading is not the guest's work, so its CPU budget restarts after. */
function run(name, target, then) {
  const result = then(chunk(name)(target));
  apply(host, undefined, [OP_LAZY_GLUE, '']);
  return result;
}

let api = null;
// Set while a load is under way. A preemption interrupts a load without running catch or finally
// blocks, so a load that finds it set starts over from the methods it had saved.
let saved = null;
/**
 * Loads the polyfill (once) and returns what the toLocale* methods call. The chunks populate a private
 * Intl object, which the polyfills keep using (the guest replacing Intl.X does not reach inside them);
 * `intl`, the guest's, gets its members only when the load is complete, so an interrupted load leaves
 * the accessors in place and the next use tries again.
 */
function load() {
  if (api) return api;
  if (saved) restoreMethods();
  saved = PATCHED_BY_POLYFILLS.map(([target, key]) => getOwnPropertyDescriptor(target, key));
  const inner = {};
  let loaded;
  try {
    loaded = run('intl', inner, (exports) => exports.finish((name, after) => run(name, inner, after)));
  } finally {
    restoreMethods();
  }
  for (const name of INTL_MEMBERS) defineProperty(intl, name, { value: inner[name], writable: true, enumerable: false, configurable: true });
  api = loaded;
  return api;
}

/** Puts back the methods the polyfills overwrite while loading (they are ours, or the guest's). */
function restoreMethods() {
  PATCHED_BY_POLYFILLS.forEach(([target, key], i) => defineProperty(target, key, saved[i]));
  saved = null;
}

for (const name of INTL_MEMBERS) {
  defineProperty(intl, name, {
    configurable: true,
    enumerable: false,
    get() {
      load();
      return intl[name];
    },
    set(value) {
      load();
      intl[name] = value;
    },
  });
}
defineProperty(globalThis, 'Intl', { value: intl, writable: true, enumerable: false, configurable: true });

// ------------------------------------------------------------------ ECMA-402 toLocale* methods

function method(target, name, fn) {
  defineProperty(target, name, { value: fn, writable: true, enumerable: false, configurable: true });
}

method(Number.prototype, 'toLocaleString', function toLocaleString() {
  const x = apply(numberValue, this, []);
  return load().formatNumber(x, arguments[0], arguments[1]);
});

method(BigInt.prototype, 'toLocaleString', function toLocaleString() {
  const x = apply(bigintValue, this, []);
  return load().formatNumber(x, arguments[0], arguments[1]);
});

function dateMethod(name, required, defaults) {
  const fn = {
    [name]() {
      const t = apply(timeValue, this, []);
      if (isNaNNumber(t)) return 'Invalid Date';
      return load().formatDate(t, arguments[0], arguments[1], required, defaults);
    },
  }[name];
  method(Date.prototype, name, fn);
}
dateMethod('toLocaleString', 'any', 'all');
dateMethod('toLocaleDateString', 'date', 'date');
dateMethod('toLocaleTimeString', 'time', 'time');

function thisString(value, name) {
  if (value === undefined || value === null) throw new TypeError(`String.prototype.${name} called on null or undefined`);
  return StringCtor(value);
}

method(String.prototype, 'localeCompare', function localeCompare(that) {
  const s = thisString(this, 'localeCompare');
  return load().compare(s, StringCtor(that), arguments[1], arguments[2]);
});

// Only Turkish, Azerbaijani and Lithuanian tailor case mapping (SpecialCasing.txt); any other locale
// maps as toUpperCase/toLowerCase do, without loading Intl unless a locale is given.
const DOTLESS = { tr: true, az: true };
function caseLanguage(locales) {
  return locales === undefined ? 'en' : load().caseLanguage(locales);
}

method(String.prototype, 'toLocaleUpperCase', function toLocaleUpperCase() {
  const s = thisString(this, 'toLocaleUpperCase');
  const language = caseLanguage(arguments[0]);
  if (DOTLESS[language] === true) return apply(toUpperCase, apply(stringReplace, s, [/i/g, '\u0130']), []);
  if (language === 'lt') return apply(toUpperCase, apply(stringReplace, s, [/([iIjJ\u012f\u012e])\u0307/g, '$1']), []);
  return apply(toUpperCase, s, []);
});

method(String.prototype, 'toLocaleLowerCase', function toLocaleLowerCase() {
  const s = thisString(this, 'toLocaleLowerCase');
  const language = caseLanguage(arguments[0]);
  if (DOTLESS[language] === true) {
    const dotted = apply(stringReplace, s, [/\u0130/g, 'i']);
    const dotless = apply(stringReplace, dotted, [/I(?!\u0307)/g, '\u0131']);
    return apply(toLowerCase, apply(stringReplace, dotless, [/I\u0307/g, 'i']), []);
  }
  return apply(toLowerCase, s, []);
});

// https://tc39.es/ecma402/#sup-array.prototype.tolocalestring: each element's toLocaleString gets
// the locales and options; the separator is ",", as in V8.
function joinLocale(o, length, locales, options) {
  let r = '';
  for (let k = 0; k < length; k++) {
    if (k > 0) r += ',';
    const element = o[k];
    if (element !== undefined && element !== null) r += StringCtor(ObjectCtor(element).toLocaleString(locales, options));
  }
  return r;
}

method(Array.prototype, 'toLocaleString', function toLocaleString() {
  const o = ObjectCtor(this);
  const length = min(max(trunc(+o.length) || 0, 0), MAX_SAFE_INTEGER);
  return joinLocale(o, length, arguments[0], arguments[1]);
});

method(TypedArrayPrototype, 'toLocaleString', function toLocaleString() {
  const length = apply(typedArrayLength, this, []);
  return joinLocale(this, length, arguments[0], arguments[1]);
});
