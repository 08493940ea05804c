// TextDecoder's encodings other than UTF-8 (WHATWG Encoding Standard): UTF-16LE, UTF-16BE and
// windows-1252, under every label the standard's table gives them. platform.js's TextDecoder asks
// lookup(label) for a decoder; a label not here (nor UTF-8's) is a RangeError naming it.
//
// Why only these: they are what real Workers code decodes (UTF-16 from binary formats and BOM'd
// files, windows-1252 under its many aliases "latin1", "ascii", "iso-8859-1" for legacy text).
// The legacy CJK and single-byte tables would add tens of KB to every boot for code that almost
// never runs in a service.

import { latin1ToString, setTextDecoderHooks } from './platform.js';

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

setTextDecoderHooks({
  lookup(l) {
    return ENCODINGS.get(l) ?? null;
  },
});
