// The WHATWG Encoding Standard's legacy decoders that are not in the boot glue (a lazy glue chunk,
// hypervisor/vm/lazy-glue-build.ts): the single-byte encodings from their index tables, and the
// multi-byte ones (gb18030/gbk, big5, euc-jp, iso-2022-jp, shift_jis, euc-kr) with the standard's
// indexes. Both come from @exodus/bytes, whose decoders follow the standard's algorithms and pass
// the WPT encoding suite; its multi-byte indexes (150 KB) are why this is lazy: web/encoding.js loads
// it on the first TextDecoder of one of these encodings. It runs as a global script: the builtins it
// uses are the guest's at that moment (as for Intl's chunks).
//
// @exodus/bytes looks for a native TextDecoder/Buffer (by "[native code]" in their source text); the
// guest's TextDecoder is ours, a class, so it always takes its pure JavaScript paths here.
import { createMultibyteDecoder } from '@exodus/bytes/multi-byte.js';
import { createSinglebyteDecoder } from '@exodus/bytes/single-byte.js';

const MULTI_BYTE = ['gbk', 'gb18030', 'big5', 'euc-jp', 'iso-2022-jp', 'shift_jis', 'euc-kr'];

/** A decoder for encoding `name` in web/encoding.js's shape: { name, bom, newState, decode }. */
export function decoderFor(name) {
  if (MULTI_BYTE.includes(name)) {
    return {
      name,
      bom: false,
      newState() {
        return { decode: null, fatal: false };
      },
      // A streaming state holds @exodus/bytes's decoder, whose closure keeps the lead bytes.
      decode(bytes, fatal, st, flush) {
        if (st === null) return createMultibyteDecoder(name, !fatal)(bytes, false);
        if (st.decode === null || st.fatal !== fatal) {
          st.decode = createMultibyteDecoder(name, !fatal);
          st.fatal = fatal;
        }
        return st.decode(bytes, !flush);
      },
    };
  }
  const strict = createSinglebyteDecoder(name, false);
  const loose = createSinglebyteDecoder(name, true);
  // Single-byte: every byte is a whole character, so nothing carries over between chunks.
  return {
    name,
    bom: false,
    newState() {
      return null;
    },
    decode(bytes, fatal) {
      return bytes.length === 0 ? '' : fatal ? strict(bytes) : loose(bytes);
    },
  };
}
