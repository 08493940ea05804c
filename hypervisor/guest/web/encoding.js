// TextDecoder's encodings other than UTF-8 (WHATWG Encoding Standard), under every label the
// standard's table gives them. platform.js's TextDecoder asks lookup(label) for a decoder; a label
// not here (nor UTF-8's) is a RangeError naming it, as are the "replacement" labels (iso-2022-kr, ...),
// which the standard forbids TextDecoder.
//
// UTF-16LE, UTF-16BE and windows-1252 (what real Workers code decodes: UTF-16 from binary formats
// and BOM'd files, windows-1252 under its aliases "latin1", "ascii", "iso-8859-1") are here, at boot.
// The other legacy encodings (single-byte tables and the CJK multi-byte ones, 150 KB of indexes)
// are a lazy glue chunk (hypervisor/guest/lazy/encodings.js, built by hypervisor/vm/lazy-glue-build.ts,
// brotli-compressed in the boot config) that the host compiles for the first TextDecoder naming one.

import { latin1ToString, setTextDecoderHooks } from './platform.js';

const host = globalThis.__ftjs_host;
const OP_LAZY_GLUE = 14; // keep in sync with hypervisor/vm/vm.ts HostOp
const reflectApplyHost = Reflect.apply;

const CHUNK = 8192;
const fromCharCode = String.fromCharCode;
const reflectApply = Reflect.apply;

function invalid(name) {
  return new TypeError(`The encoded data was not valid for encoding ${name}`);
}

function unitsToString(units, n) {
  let s = '';
  for (let k = 0; k < n; k += CHUNK) s += reflectApply(fromCharCode, null, units.subarray(k, Math.min(n, k + CHUNK)));
  return s;
}

// windows-1252: bytes 0x80-0x9F map to the table below; every other byte is its own code point.
// Every byte decodes, so `fatal` never fires.
const W1252_HIGH = [
  0x20AC, 0x0081, 0x201A, 0x0192, 0x201E, 0x2026, 0x2020, 0x2021, 0x02C6, 0x2030, 0x0160, 0x2039, 0x0152, 0x008D, 0x017D, 0x008F,
  0x0090, 0x2018, 0x2019, 0x201C, 0x201D, 0x2022, 0x2013, 0x2014, 0x02DC, 0x2122, 0x0161, 0x203A, 0x0153, 0x009D, 0x017E, 0x0178,
];
const C1_RE = /[\x80-\x9F]/g;
const windows1252 = {
  name: 'windows-1252',
  bom: false,
  newState() {
    return null;
  },
  decode(bytes) {
    const s = latin1ToString(bytes, 0, bytes.length);
    return s.replace(C1_RE, (c) => fromCharCode(W1252_HIGH[c.charCodeAt(0) - 0x80]));
  },
};

// UTF-16: code units from byte pairs; a lone surrogate or an odd trailing byte is an error
// (U+FFFD, or a TypeError when fatal). Streaming keeps the odd byte and a pending lead surrogate.
function utf16(name, bigEndian) {
  return {
    name,
    bom: true,
    newState() {
      return { byte: -1, lead: 0 };
    },
    decode(bytes, fatal, st, flush) {
      let byte = st === null ? -1 : st.byte;
      let lead = st === null ? 0 : st.lead;
      const units = new Uint16Array(bytes.length / 2 + 3);
      let n = 0;
      for (let i = 0; i < bytes.length; i++) {
        if (byte < 0) {
          byte = bytes[i];
          continue;
        }
        const unit = bigEndian ? (byte << 8) | bytes[i] : byte | (bytes[i] << 8);
        byte = -1;
        if (lead !== 0) {
          if (unit >= 0xDC00 && unit <= 0xDFFF) {
            units[n++] = lead;
            units[n++] = unit;
            lead = 0;
            continue;
          }
          lead = 0;
          if (fatal) throw invalid(name);
          units[n++] = 0xFFFD;
          // the unit is processed afresh below
        }
        if (unit >= 0xD800 && unit <= 0xDBFF) lead = unit;
        else if (unit >= 0xDC00 && unit <= 0xDFFF) {
          if (fatal) throw invalid(name);
          units[n++] = 0xFFFD;
        } else units[n++] = unit;
      }
      if (flush) {
        if (byte >= 0 || lead !== 0) {
          if (fatal) throw invalid(name);
          units[n++] = 0xFFFD;
        }
        byte = -1;
        lead = 0;
      }
      if (st !== null) {
        st.byte = byte;
        st.lead = lead;
      }
      return unitsToString(units, n);
    },
  };
}

const ENCODINGS = new Map();
function label(decoder, names) {
  for (const n of names) ENCODINGS.set(n, decoder);
}
label(windows1252, [
  'ansi_x3.4-1968', 'ascii', 'cp1252', 'cp819', 'csisolatin1', 'ibm819', 'iso-8859-1', 'iso-ir-100', 'iso8859-1',
  'iso88591', 'iso_8859-1', 'iso_8859-1:1987', 'l1', 'latin1', 'us-ascii', 'windows-1252', 'x-cp1252',
]);
label(utf16('utf-16le', false), ['csunicode', 'iso-10646-ucs-2', 'ucs-2', 'unicode', 'unicodefeff', 'utf-16', 'utf-16le']);
label(utf16('utf-16be', true), ['unicodefffe', 'utf-16be']);

// The legacy encodings of the lazy module, by name: their other labels (the standard's table).
const LAZY_LABELS = {
  'iso-8859-2': 'iso-ir-101 iso_8859-2:1987 iso8859-2 iso88592 iso_8859-2 csisolatin2 l2 latin2',
  'iso-8859-3': 'iso-ir-109 iso_8859-3:1988 iso8859-3 iso88593 iso_8859-3 csisolatin3 l3 latin3',
  'iso-8859-4': 'iso-ir-110 iso_8859-4:1988 iso8859-4 iso88594 iso_8859-4 csisolatin4 l4 latin4',
  'iso-8859-5': 'csisolatincyrillic cyrillic iso-ir-144 iso_8859-5:1988 iso8859-5 iso88595 iso_8859-5',
  'iso-8859-6': 'arabic asmo-708 csiso88596e csiso88596i csisolatinarabic ecma-114 iso-8859-6-e iso-8859-6-i iso-ir-127 iso_8859-6:1987 iso8859-6 iso88596 iso_8859-6',
  'iso-8859-7': 'csisolatingreek ecma-118 elot_928 greek greek8 iso-ir-126 sun_eu_greek iso_8859-7:1987 iso8859-7 iso88597 iso_8859-7',
  'iso-8859-8': 'csiso88598e csisolatinhebrew hebrew iso-8859-8-e iso-ir-138 visual iso_8859-8:1988 iso8859-8 iso88598 iso_8859-8',
  'iso-8859-8-i': 'csiso88598i logical',
  'iso-8859-10': 'iso8859-10 iso885910 csisolatin6 iso-ir-157 l6 latin6',
  'iso-8859-13': 'iso8859-13 iso885913',
  'iso-8859-14': 'iso8859-14 iso885914',
  'iso-8859-15': 'iso8859-15 iso885915 csisolatin9 iso_8859-15 l9',
  'iso-8859-16': '',
  'koi8-r': 'cskoi8r koi koi8 koi8_r',
  'koi8-u': 'koi8-ru',
  'macintosh': 'csmacintosh mac x-mac-roman',
  'windows-874': 'dos-874 iso-8859-11 iso8859-11 iso885911 tis-620',
  'windows-1250': 'cp1250 x-cp1250',
  'windows-1251': 'cp1251 x-cp1251',
  'windows-1253': 'cp1253 x-cp1253',
  'windows-1254': 'cp1254 x-cp1254 csisolatin5 iso-8859-9 iso-ir-148 iso8859-9 iso88599 iso_8859-9 iso_8859-9:1989 l5 latin5',
  'windows-1255': 'cp1255 x-cp1255',
  'windows-1256': 'cp1256 x-cp1256',
  'windows-1257': 'cp1257 x-cp1257',
  'windows-1258': 'cp1258 x-cp1258',
  'x-mac-cyrillic': 'x-mac-ukrainian',
  'ibm866': '866 cp866 csibm866',
  'x-user-defined': '',
  'gbk': 'chinese csgb2312 csiso58gb231280 gb2312 gb_2312 gb_2312-80 iso-ir-58 x-gbk',
  'gb18030': '',
  'big5': 'big5-hkscs cn-big5 csbig5 x-x-big5',
  'euc-jp': 'cseucpkdfmtjapanese x-euc-jp',
  'iso-2022-jp': 'csiso2022jp',
  'shift_jis': 'csshiftjis ms932 ms_kanji shift-jis sjis windows-31j x-sjis',
  'euc-kr': 'cseuckr csksc56011987 iso-ir-149 korean ks_c_5601-1987 ks_c_5601-1989 ksc5601 ksc_5601 windows-949',
};
const LAZY_NAMES = new Map();
for (const name of Object.keys(LAZY_LABELS)) {
  LAZY_NAMES.set(name, name);
  for (const l of LAZY_LABELS[name].split(' ')) if (l !== '') LAZY_NAMES.set(l, name);
}
/**
 * The chunk's exports, compiled and run once. Loading is the hypervisor's work (its own CPU grace,
 * like Intl's: hypervisor/vm/vm.ts compileLazyGlue) until the empty-name call says it is done; a load
 * preempted anyway leaves `chunk` null, and the next use tries again.
 */
let chunk = null;
function encodingsChunk() {
  if (chunk !== null) return chunk;
  if (typeof host !== 'function') throw new RangeError('The legacy text encodings are unavailable: no host to load them from');
  const f = reflectApplyHost(host, undefined, [OP_LAZY_GLUE, 'encodings']);
  if (typeof f !== 'function') throw f === undefined ? new RangeError('The legacy text encodings are unavailable: the boot config has no "encodings" chunk') : f;
  const exports = f(undefined);
  reflectApplyHost(host, undefined, [OP_LAZY_GLUE, '']);
  chunk = exports;
  return chunk;
}
/** Decoders of the chunk, made once per encoding (they hold no per-TextDecoder state). */
const lazyDecoders = new Map();
function lazyDecoder(name) {
  let decoder = lazyDecoders.get(name);
  if (decoder === undefined) {
    decoder = encodingsChunk().decoderFor(name);
    lazyDecoders.set(name, decoder);
  }
  return decoder;
}

setTextDecoderHooks({
  lookup(l) {
    const decoder = ENCODINGS.get(l);
    if (decoder !== undefined) return decoder;
    const name = LAZY_NAMES.get(l);
    return name === undefined ? null : lazyDecoder(name);
  },
});
