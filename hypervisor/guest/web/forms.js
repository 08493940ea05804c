// File, FormData, and the bodies they make and come from (XHR / Fetch / File API standards):
// `new Request(url, { body: formData })` gives a multipart/form-data body, and `formData()` on a
// Request or Response parses multipart/form-data or application/x-www-form-urlencoded.
//
// Determinism: a multipart boundary must be unguessable by whoever fills the form, so it is random,
// but it is drawn from the guest's entropy input (recorded, replayed) through the one host function,
// never from the host. File's default lastModified reads the guest clock, which is recorded too.

import {
  Blob, blobBytes, makeBlob, DOMException, defineGlobal, setTag, isObjectLike, toUSVString, requireArgs,
  utf8Encode, utf8DecodeNoBOM, formParse, setFormBodyHooks,
} from './platform.js';

const host = globalThis.__ftjs_host; // deleted by runtime.js after the bundle runs
const OP_ENTROPY = 6; // hypervisor/vm/vm.ts HostOp.Entropy
const dateNow = Date.now;
const atobNative = globalThis.atob; // platform.js's, captured before the guest can replace it
const reflectApply = Reflect.apply;

// ---------------------------------------------------------------------------------------------
// File
// ---------------------------------------------------------------------------------------------

class File extends Blob {
  #name;
  #lastModified;
  constructor(fileBits, fileName, options = undefined) {
    requireArgs(arguments.length, 2, "Failed to construct 'File'");
    super(fileBits, options);
    this.#name = toUSVString(fileName);
    let lm;
    if (options !== undefined && options !== null && options.lastModified !== undefined) {
      const n = Number(options.lastModified); // WebIDL long long
      lm = Number.isFinite(n) ? Math.trunc(n) : 0;
    } else {
      lm = reflectApply(dateNow, Date, []); // the guest clock: recorded
    }
    this.#lastModified = lm;
  }
  get name() { return this.#name; }
  get lastModified() { return this.#lastModified; }
  get webkitRelativePath() { return ''; }
}
setTag(File, 'File');

// A File over `bytes` without a copy: a lone Blob part's bytes are shared (Blob bytes are never mutated).
function makeFile(bytes, name, type) {
  return new File([makeBlob(bytes, '')], name, { type });
}

// ---------------------------------------------------------------------------------------------
// FormData
// ---------------------------------------------------------------------------------------------

let formEntries; // (fd) => [[name, string|File]] (the live list)

// "Create an entry": a Blob value becomes a File (named "blob" unless a filename is given).
function makeEntry(name, value, filename, argc, what) {
  name = toUSVString(name);
  if (value instanceof Blob) {
    const fname = argc > 2 ? toUSVString(filename) : value instanceof File ? value.name : 'blob';
    if (!(value instanceof File) || argc > 2) {
      value = new File([value], fname, { type: value.type, lastModified: value instanceof File ? value.lastModified : undefined });
    }
    return [name, value];
  }
  if (argc > 2) throw new TypeError(`Failed to execute '${what}' on 'FormData': parameter 2 is not of type 'Blob'.`);
  return [name, toUSVString(value)];
}

class FormData {
  #list = [];
  constructor(form = undefined, submitter = undefined) {
    if (form !== undefined) throw new TypeError("Failed to construct 'FormData': parameter 1 is not of type 'HTMLFormElement'.");
  }
  append(name, value, filename = undefined) {
    requireArgs(arguments.length, 2, "Failed to execute 'append' on 'FormData'");
    this.#list.push(makeEntry(name, value, filename, arguments.length, 'append'));
  }
  delete(name) {
    requireArgs(arguments.length, 1, "Failed to execute 'delete' on 'FormData'");
    name = toUSVString(name);
    this.#list = this.#list.filter((e) => e[0] !== name);
  }
  get(name) {
    requireArgs(arguments.length, 1, "Failed to execute 'get' on 'FormData'");
    name = toUSVString(name);
    for (const e of this.#list) if (e[0] === name) return e[1];
    return null;
  }
  getAll(name) {
    requireArgs(arguments.length, 1, "Failed to execute 'getAll' on 'FormData'");
    name = toUSVString(name);
    const out = [];
    for (const e of this.#list) if (e[0] === name) out.push(e[1]);
    return out;
  }
  has(name) {
    requireArgs(arguments.length, 1, "Failed to execute 'has' on 'FormData'");
    name = toUSVString(name);
    for (const e of this.#list) if (e[0] === name) return true;
    return false;
  }
  set(name, value, filename = undefined) {
    requireArgs(arguments.length, 2, "Failed to execute 'set' on 'FormData'");
    const entry = makeEntry(name, value, filename, arguments.length, 'set');
    const list = this.#list;
    const i = list.findIndex((e) => e[0] === entry[0]);
    if (i < 0) {
      list.push(entry);
      return;
    }
    list[i] = entry;
    this.#list = list.filter((e, j) => j <= i || e[0] !== entry[0]);
  }
  forEach(callback, thisArg = undefined) {
    if (typeof callback !== 'function') throw new TypeError("Failed to execute 'forEach' on 'FormData': The callback provided as parameter 1 is not a function.");
    for (let i = 0; i < this.#list.length; i++) {
      const [k, v] = this.#list[i];
      callback.call(thisArg, v, k, this);
    }
  }
  entries() {
    return new FormDataIterator(this, ITER_ENTRIES);
  }
  keys() {
    return new FormDataIterator(this, ITER_KEYS);
  }
  values() {
    return new FormDataIterator(this, ITER_VALUES);
  }
  [Symbol.iterator]() {
    return this.entries();
  }

  static {
    formEntries = (fd) => fd.#list;
  }
}
setTag(FormData, 'FormData');

// The spec's iterator: live (entries appended while iterating are visited), tagged "FormData Iterator".
const ITER_ENTRIES = 0, ITER_KEYS = 1, ITER_VALUES = 2;
const IteratorPrototype = Object.getPrototypeOf(Object.getPrototypeOf([][Symbol.iterator]()));
class FormDataIterator {
  #form;
  #kind;
  #index = 0;
  constructor(form, kind) {
    this.#form = form;
    this.#kind = kind;
  }
  next() {
    const list = formEntries(this.#form);
    if (this.#index >= list.length) return { value: undefined, done: true };
    const [k, v] = list[this.#index++];
    return { value: this.#kind === ITER_ENTRIES ? [k, v] : this.#kind === ITER_KEYS ? k : v, done: false };
  }
}
Object.setPrototypeOf(FormDataIterator.prototype, IteratorPrototype);
Object.defineProperty(FormDataIterator.prototype, Symbol.toStringTag, { value: 'FormData Iterator', configurable: true });

// ---------------------------------------------------------------------------------------------
// multipart/form-data: serialize (RFC 7578, as the HTML standard and undici write it)
// ---------------------------------------------------------------------------------------------

const HEX = '0123456789abcdef';
const CRLF = new Uint8Array([13, 10]);
function newBoundary() {
  if (typeof host !== 'function') throw new DOMException('a multipart body needs the runtime\'s entropy input', 'NotSupportedError');
  const bytes = new Uint8Array(host(OP_ENTROPY, 12));
  let s = '----formdata-ftjs-';
  for (let i = 0; i < bytes.length; i++) s += HEX[bytes[i] >> 4] + HEX[bytes[i] & 15];
  return s;
}

const escapeName = (s) => s.replace(/\n/g, '%0A').replace(/\r/g, '%0D').replace(/"/g, '%22');
const normalizeNewlines = (s) => s.replace(/\r(?!\n)|(?<!\r)\n/g, '\r\n');

function serializeMultipart(fd) {
  const boundary = newBoundary();
  const chunks = [];
  let total = 0;
  const push = (bytes) => {
    chunks.push(bytes);
    total += bytes.length;
  };
  for (const [name, value] of formEntries(fd)) {
    let head = `--${boundary}\r\nContent-Disposition: form-data; name="${escapeName(normalizeNewlines(name))}"`;
    if (typeof value === 'string') {
      push(utf8Encode(`${head}\r\n\r\n${normalizeNewlines(value)}\r\n`));
    } else {
      head += `; filename="${escapeName(value.name)}"\r\nContent-Type: ${value.type || 'application/octet-stream'}\r\n\r\n`;
      push(utf8Encode(head));
      push(blobBytes(value));
      push(CRLF);
    }
  }
  push(utf8Encode(`--${boundary}--\r\n`));
  const body = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    body.set(c, off);
    off += c.length;
  }
  return { body, type: `multipart/form-data; boundary=${boundary}` };
}

// ---------------------------------------------------------------------------------------------
// formData(): parse
// ---------------------------------------------------------------------------------------------

function parseFailure(why) {
  return new TypeError(`Could not parse content as FormData${why ? ` (${why})` : ''}.`);
}

// The essence and parameters of a Content-Type value (enough of the MIME sniffing standard's parser
// for form bodies: quoted parameter values with backslash escapes).
function parseMime(value) {
  const semi = value.indexOf(';');
  const essence = (semi < 0 ? value : value.slice(0, semi)).trim().toLowerCase();
  const params = new Map();
  if (semi >= 0) {
    const re = /;\s*([^=;\s]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)/g;
    re.lastIndex = semi;
    let m;
    while ((m = re.exec(value)) !== null) {
      const key = m[1].toLowerCase();
      let v = m[2];
      if (v.startsWith('"')) v = v.slice(1, -1).replace(/\\(.)/g, '$1');
      else v = v.trim();
      if (!params.has(key)) params.set(key, v);
    }
  }
  return { essence, params };
}

function indexOfBytes(hay, needle, from) {
  const first = needle[0];
  const last = hay.length - needle.length;
  outer: for (let i = hay.indexOf(first, from); i >= 0 && i <= last; i = hay.indexOf(first, i + 1)) {
    for (let j = 1; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

// A part's header block (ASCII, or UTF-8 in filenames as browsers send them).
function parsePartHeaders(bytes) {
  const text = utf8DecodeNoBOM(bytes);
  let name = null, filename = null, type = '', base64 = false;
  for (const line of text.split('\r\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const key = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    if (key === 'content-disposition') {
      const { essence, params } = parseMime(value);
      if (essence !== 'form-data') throw parseFailure('a part is not form-data');
      name = params.has('name') ? params.get('name') : null;
      if (params.has('filename*')) filename = decodeExtValue(params.get('filename*'));
      else if (params.has('filename')) filename = params.get('filename');
    } else if (key === 'content-type') {
      type = value;
    } else if (key === 'content-transfer-encoding') {
      base64 = value.toLowerCase() === 'base64';
    }
  }
  if (name === null) throw parseFailure('a part has no name');
  return { name: unescapeName(name), filename: filename === null ? null : unescapeName(filename), type, base64 };
}
// The Fetch standard's multipart parser undoes the serializer's escapes (Node accepts either case).
const unescapeName = (s) => (s.indexOf('%') < 0 ? s : s.replace(/%0A/gi, '\n').replace(/%0D/gi, '\r').replace(/%22/g, '"'));
// RFC 5987 ext-value (charset'lang'pct-encoded), UTF-8 only.
function decodeExtValue(v) {
  const m = /^utf-8'[^']*'(.*)$/i.exec(v);
  if (m === null) return v;
  try {
    return decodeURIComponent(m[1]);
  } catch {
    return m[1];
  }
}

function parseMultipart(bytes, boundary) {
  const fd = new FormData();
  const list = formEntries(fd);
  const delim = utf8Encode(`--${boundary}`);
  const crlfDelim = new Uint8Array(delim.length + 2);
  crlfDelim.set(CRLF, 0);
  crlfDelim.set(delim, 2);
  let at = indexOfBytes(bytes, delim, 0);
  if (at < 0) throw parseFailure('no boundary in the body');
  at += delim.length;
  for (;;) {
    // After a delimiter: "--" closes the body; otherwise CRLF starts a part.
    if (bytes[at] === 45 && bytes[at + 1] === 45) return fd;
    while (bytes[at] === 32 || bytes[at] === 9) at++; // transport padding
    if (bytes[at] !== 13 || bytes[at + 1] !== 10) throw parseFailure('malformed boundary line');
    at += 2;
    const headEnd = indexOfBytes(bytes, HEADER_END, at);
    if (headEnd < 0) throw parseFailure('a part has no end of headers');
    const { name, filename, type, base64 } = parsePartHeaders(bytes.subarray(at, headEnd));
    const start = headEnd + 4;
    const next = indexOfBytes(bytes, crlfDelim, start - 2);
    if (next < 0) throw parseFailure('the body ends before its closing boundary');
    let content = bytes.slice(start, Math.max(start, next));
    if (base64) content = decodeBase64Part(content);
    // A file part without a Content-Type is text/plain, as busboy (Node's parser) has it.
    if (filename !== null) list.push([name, makeFile(content, filename, type || 'text/plain')]);
    else list.push([name, utf8DecodeNoBOM(content)]);
    at = next + 2 + delim.length;
  }
}
const HEADER_END = new Uint8Array([13, 10, 13, 10]);
// Content-Transfer-Encoding: base64 (RFC 7578 deprecates it; Node still decodes it).
function decodeBase64Part(bytes) {
  let bin;
  try {
    bin = atobNative(utf8DecodeNoBOM(bytes).replace(/[\t\n\f\r ]/g, ''));
  } catch {
    throw parseFailure('a base64 part does not decode');
  }
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function parseFormBody(bytes, contentType) {
  try {
    const { essence, params } = parseMime(contentType === null ? '' : contentType);
    if (essence === 'multipart/form-data') {
      const boundary = params.get('boundary');
      if (!boundary) throw parseFailure('multipart/form-data without a boundary');
      return Promise.resolve(parseMultipart(bytes, boundary));
    }
    if (essence === 'application/x-www-form-urlencoded') {
      const fd = new FormData();
      const list = formEntries(fd);
      // UTF-8 decoding before percent-decoding gives what the spec's byte-level parser gives:
      // raw non-ASCII bytes decode the same either way, escapes are decoded by formParse.
      for (const e of formParse(utf8DecodeNoBOM(bytes))) list.push(e);
      return Promise.resolve(fd);
    }
    return Promise.reject(parseFailure(''));
  } catch (e) {
    return Promise.reject(e);
  }
}

setFormBodyHooks({
  isFormData: (v) => isObjectLike(v) && v instanceof FormData,
  serialize: serializeMultipart,
  parse: parseFormBody,
});

defineGlobal('File', File);
defineGlobal('FormData', FormData);

export { File, FormData };
