// JSON inside the task budget. QuickJS's JSON.stringify and JSON.parse run in native code, where the
// interrupt handler is never polled: a value or a text as large as the guest's memory allows was
// bounded by nothing else (about 5 s for 3x10^6 numbers on a loaded host). Replaced at boot:
//   - stringify goes through a replacer function, a JS call per value, where the handler is polled.
//     Without one of the guest's it is the identity (the spec's result is the same); a property-list
//     replacer becomes a function that presents each object as a proxy listing just those keys, in
//     that order (so it is polled too). A replacer function of the guest's is polled already.
//   - parse: texts up to JSON_PARSE_NATIVE_MAX_CHARS go to the native parser (its cost is bounded by
//     their length: a few tens of ms); longer ones are parsed here in JS, polled on every value, with
//     strings and numbers still decoded natively one token at a time. A reviver is applied as the
//     spec's InternalizeJSONProperty says.
// Imported before platform.js, so Response.json() and body.json() use these too. The runtime glue
// keeps the native ones (primordials.js captured them first): its own messages are small.
// Every method it uses was captured at boot: the guest may patch anything afterwards.

import {
  ArrayIsArray,
  ArrayPush,
  JSONParse,
  JSONStringify,
  ObjectDefineProperty,
  ObjectKeys,
  RegExpExec,
  SetAdd,
  SetCtor,
  SetHas,
  ReflectApply,
  StringCharCodeAt,
  StringIndexOf,
  StringSlice,
  uncurryThis,
} from './primordials.js';

/** Texts up to this many code units are parsed natively at once (tens of ms at most). */
export const JSON_PARSE_NATIVE_MAX_CHARS = 1 << 22;

const SyntaxErrorCtor = SyntaxError;
const ProxyCtor = Proxy;
const WeakMapCtor = WeakMap;
const WeakMapGet = uncurryThis(WeakMap.prototype.get);
const WeakMapSet = uncurryThis(WeakMap.prototype.set);
const NumberValueOf = uncurryThis(Number.prototype.valueOf);
const StringValueOf = uncurryThis(String.prototype.valueOf);
const BooleanValueOf = uncurryThis(Boolean.prototype.valueOf);
const BigIntValueOf = typeof BigInt === 'function' ? uncurryThis(BigInt.prototype.valueOf) : null;
const StringCtor = String;
const ReflectGet = Reflect.get;
const ReflectDeleteProperty = Reflect.deleteProperty;

// ---------------------------------------------------------------------------------------------
// stringify

function identity(_key, value) {
  return value;
}

/** `valueOf` accepts `value`: it is a wrapper object of that kind. */
function is(valueOf, value) {
  if (valueOf === null) return false;
  try {
    valueOf(value);
    return true;
  } catch {
    return false;
  }
}

/** A Number, String, Boolean or BigInt object: the spec unwraps these, so they must reach it as they are. */
function isWrapper(value) {
  return is(NumberValueOf, value) || is(StringValueOf, value) || is(BooleanValueOf, value) || is(BigIntValueOf, value);
}

/** The spec's PropertyList from an array replacer: strings and numbers (and their wrappers), each once, in order. */
function propertyList(replacer) {
  const list = [];
  const seen = new SetCtor();
  const length = replacer.length;
  for (let i = 0; i < length; i++) {
    const v = replacer[i];
    let item;
    if (typeof v === 'string') item = v;
    else if (typeof v === 'number') item = StringCtor(v);
    else if (typeof v === 'object' && v !== null && (is(StringValueOf, v) || is(NumberValueOf, v))) item = StringCtor(v);
    if (item !== undefined && !SetHas(seen, item)) {
      SetAdd(seen, item);
      ArrayPush(list, item);
    }
  }
  return list;
}

/**
 * A replacer function that serializes objects with only the keys of `list`, in its order (arrays and
 * wrapper objects as they are): each object is shown as a proxy whose own keys are the list. One proxy
 * per object, so a cycle is still one object seen twice (the native TypeError).
 */
function listReplacer(list) {
  const proxies = new WeakMapCtor();
  const originals = new WeakMapCtor();
  const handler = {
    ownKeys: () => copyOf(list),
    getOwnPropertyDescriptor: () => ({ value: undefined, writable: true, enumerable: true, configurable: true }),
    get: (target, key) => ReflectGet(WeakMapGet(originals, target), key),
  };
  return (_key, value) => {
    if (typeof value !== 'object' || value === null || ArrayIsArray(value) || isWrapper(value)) return value;
    let proxy = WeakMapGet(proxies, value);
    if (proxy === undefined) {
      const target = {};
      WeakMapSet(originals, target, value);
      proxy = new ProxyCtor(target, handler);
      WeakMapSet(proxies, value, proxy);
    }
    return proxy;
  };
}

function copyOf(list) {
  const out = [];
  for (let i = 0; i < list.length; i++) out[i] = list[i];
  return out;
}

function stringify(value, replacer = undefined, space = undefined) {
  if (typeof replacer === 'function') return JSONStringify(value, replacer, space);
  if (ArrayIsArray(replacer)) return JSONStringify(value, listReplacer(propertyList(replacer)), space);
  return JSONStringify(value, identity, space);
}

// ---------------------------------------------------------------------------------------------
// parse

function syntaxError(text, at, what) {
  return new SyntaxErrorCtor(`JSON.parse: ${what} at position ${at} (of ${text.length})`);
}

/**
 * One descriptor for every property the parser defines: no allocation per value, and no prototype, so
 * a `get` or `set` a guest put on Object.prototype is not read as part of it (which made every
 * definition a TypeError).
 */
const DATA = { __proto__: null, value: undefined, writable: true, enumerable: true, configurable: true };

function defineData(obj, key, value) {
  DATA.value = value;
  ObjectDefineProperty(obj, key, DATA);
  DATA.value = undefined;
}

/** Whitespace code units skipped by one native call (tens of µs): a budget poll comes between strides. */
const WS_STRIDE = 1 << 16;
const WS_RUN = new RegExp(`[ \\t\\n\\r]{1,${WS_STRIDE}}`, 'y');

/** A recursive-descent parser over one long text; every string and number token goes to the native parser. */
class Parser {
  constructor(text) {
    this.text = text;
    this.at = 0;
  }

  ws() {
    const text = this.text;
    let c = StringCharCodeAt(text, this.at);
    // Short runs (indentation) one code unit at a time; a long one in native strides of at most
    // WS_STRIDE code units, so a text padded with megabytes of whitespace costs little and every
    // stride still ends at a poll of the budget.
    for (let n = 0; c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; n++) {
      if (n < 16) c = StringCharCodeAt(text, ++this.at);
      else {
        WS_RUN.lastIndex = this.at;
        RegExpExec(WS_RUN, text);
        this.at = WS_RUN.lastIndex;
        c = StringCharCodeAt(text, this.at);
      }
    }
    return c;
  }

  value() {
    const c = this.ws();
    if (c === 0x7b) return this.object();
    if (c === 0x5b) return this.array();
    if (c === 0x22) return this.string();
    if (c === 0x2d || (c >= 0x30 && c <= 0x39)) return this.number();
    if (this.word('true')) return true;
    if (this.word('false')) return false;
    if (this.word('null')) return null;
    throw syntaxError(this.text, this.at, this.at >= this.text.length ? 'unexpected end of input' : 'unexpected character');
  }

  word(w) {
    if (StringSlice(this.text, this.at, this.at + w.length) !== w) return false;
    this.at += w.length;
    return true;
  }

  object() {
    const obj = {};
    this.at++; // {
    if (this.ws() === 0x7d) {
      this.at++;
      return obj;
    }
    for (;;) {
      if (this.ws() !== 0x22) throw syntaxError(this.text, this.at, 'expected a property name');
      const key = this.string();
      if (this.ws() !== 0x3a) throw syntaxError(this.text, this.at, "expected ':'");
      this.at++;
      defineData(obj, key, this.value());
      const c = this.ws();
      this.at++;
      if (c === 0x7d) return obj;
      if (c !== 0x2c) throw syntaxError(this.text, this.at - 1, "expected ',' or '}'");
    }
  }

  array() {
    const arr = [];
    this.at++; // [
    if (this.ws() === 0x5d) {
      this.at++;
      return arr;
    }
    for (let i = 0; ; i++) {
      defineData(arr, i, this.value());
      const c = this.ws();
      this.at++;
      if (c === 0x5d) return arr;
      if (c !== 0x2c) throw syntaxError(this.text, this.at - 1, "expected ',' or ']'");
    }
  }

  string() {
    const text = this.text;
    const start = this.at;
    let end = StringIndexOf(text, '"', start + 1);
    for (;;) {
      if (end < 0) throw syntaxError(text, start, 'unterminated string');
      let backslashes = 0;
      while (StringCharCodeAt(text, end - 1 - backslashes) === 0x5c) backslashes++;
      if (backslashes % 2 === 0) break;
      end = StringIndexOf(text, '"', end + 1);
    }
    this.at = end + 1;
    try {
      return JSONParse(StringSlice(text, start, end + 1));
    } catch {
      throw syntaxError(text, start, 'bad string');
    }
  }

  number() {
    const text = this.text;
    const start = this.at;
    let c = StringCharCodeAt(text, this.at);
    while (c === 0x2d || c === 0x2b || c === 0x2e || c === 0x65 || c === 0x45 || (c >= 0x30 && c <= 0x39)) c = StringCharCodeAt(text, ++this.at);
    try {
      return JSONParse(StringSlice(text, start, this.at));
    } catch {
      throw syntaxError(text, start, 'bad number');
    }
  }
}

/** The spec's InternalizeJSONProperty: the reviver sees every value, children first. */
function internalize(holder, name, reviver) {
  const val = ReflectGet(holder, name);
  if (typeof val === 'object' && val !== null) {
    if (ArrayIsArray(val)) {
      const length = val.length;
      for (let i = 0; i < length; i++) revive(val, StringCtor(i), reviver);
    } else {
      const keys = ObjectKeys(val);
      for (let i = 0; i < keys.length; i++) revive(val, keys[i], reviver);
    }
  }
  return ReflectApply(reviver, holder, [name, val]);
}

function revive(holder, key, reviver) {
  const v = internalize(holder, key, reviver);
  if (v === undefined) ReflectDeleteProperty(holder, key);
  else defineData(holder, key, v);
}

function parse(text, reviver = undefined) {
  const s = StringCtor(text);
  if (s.length <= JSON_PARSE_NATIVE_MAX_CHARS) return JSONParse(s, reviver);
  const p = new Parser(s);
  const value = p.value();
  p.ws();
  if (p.at < s.length) throw syntaxError(s, p.at, 'unexpected text after the value');
  if (typeof reviver !== 'function') return value;
  const root = {};
  defineData(root, '', value);
  return internalize(root, '', reviver);
}

function install(name, fn, length) {
  ObjectDefineProperty(fn, 'name', { value: name, configurable: true });
  ObjectDefineProperty(fn, 'length', { value: length, configurable: true });
  ObjectDefineProperty(JSON, name, { value: fn, writable: true, enumerable: false, configurable: true });
}
install('stringify', stringify, 3);
install('parse', parse, 2);
