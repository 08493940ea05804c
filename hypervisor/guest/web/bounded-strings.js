// Long strings inside the task budget. QuickJS builds the result of String.prototype.repeat, padStart
// and padEnd one copy of the piece at a time in native code, where the interrupt handler is never
// polled: 'ab'.repeat(1e8) ran 1.6 s, ''.padStart(2e8, 'ab') 1.2 s, past a 1,000 ms budget. Here they
// build by doubling in JS (about 27 native concatenations for 10^8 pieces, each a copy at memory
// speed, polled in between), and Array.prototype.join of a long array joins natively in slices and
// then concatenates the slices' strings. Small inputs go straight to the native methods.
// Results as the spec's: the same strings, the same RangeErrors, ToString and ToLength as it says.

import { ArrayIsArray, ArrayJoin, ArraySlice, MathFloor, ObjectDefineProperty, StringSlice, uncurryThis } from './primordials.js';

/** Results up to this many code units come from the native methods (about 1 ms of copying). */
const NATIVE_RESULT_MAX = 1 << 16;
/** Arrays up to this length are joined natively at once; longer ones in slices of it. */
const JOIN_SLICE_LENGTH = 1 << 14;
/** QuickJS's longest string: past it the native methods throw their own RangeError at once. */
const MAX_STRING_LENGTH = (1 << 30) - 1;

const StringProto = String.prototype;
const nativeRepeat = uncurryThis(StringProto.repeat);
const nativePadStart = uncurryThis(StringProto.padStart);
const nativePadEnd = uncurryThis(StringProto.padEnd);
const ArrayProto = Array.prototype;
const TypeErrorCtor = TypeError;

function thisString(value, method) {
  if (value === null || value === undefined) throw new TypeErrorCtor('String.prototype.' + method + ' called on null or undefined');
  return `${value}`;
}

function toIntegerOrInfinity(value) {
  const n = +value;
  if (n !== n) return 0;
  if (n === Infinity || n === -Infinity) return n;
  return n < 0 ? -MathFloor(-n) : MathFloor(n);
}

/** `piece` repeated `count` times (count > 0): by doubling, so each native step is one concatenation. */
function repeatByDoubling(piece, count) {
  let result = '';
  for (;;) {
    if (count % 2 === 1) result += piece;
    count = MathFloor(count / 2);
    if (count === 0) return result;
    piece += piece;
  }
}

function pad(self, maxLength, fillString, atStart, method) {
  const s = thisString(self, method);
  const length = toIntegerOrInfinity(maxLength);
  const filler = fillString === undefined ? ' ' : `${fillString}`;
  if (length <= s.length || filler === '' || length <= NATIVE_RESULT_MAX || length > MAX_STRING_LENGTH) {
    return atStart ? nativePadStart(s, length, filler) : nativePadEnd(s, length, filler);
  }
  const fillLength = length - s.length;
  const fill = StringSlice(repeatByDoubling(filler, MathFloor((fillLength + filler.length - 1) / filler.length)), 0, fillLength);
  return atStart ? fill + s : s + fill;
}

const methods = {
  repeat(count) {
    const s = thisString(this, 'repeat');
    const n = toIntegerOrInfinity(count);
    if (n < 0 || n === Infinity || s.length * n <= NATIVE_RESULT_MAX || s.length * n > MAX_STRING_LENGTH) return nativeRepeat(s, count);
    return repeatByDoubling(s, n);
  },
  padStart(maxLength, fillString = undefined) {
    return pad(this, maxLength, fillString, true, 'padStart');
  },
  padEnd(maxLength, fillString = undefined) {
    return pad(this, maxLength, fillString, false, 'padEnd');
  },
  join(separator) {
    if (!ArrayIsArray(this) || this.length <= JOIN_SLICE_LENGTH) return ArrayJoin(this, separator);
    const sep = separator === undefined ? ',' : `${separator}`;
    const len = this.length;
    // The engine concatenates long strings as ropes: no copy of the result so far at each step.
    let out = ArrayJoin(ArraySlice(this, 0, JOIN_SLICE_LENGTH), sep);
    for (let lo = JOIN_SLICE_LENGTH; lo < len; lo += JOIN_SLICE_LENGTH) out += sep + ArrayJoin(ArraySlice(this, lo, lo + JOIN_SLICE_LENGTH), sep);
    return out;
  },
};

function install(proto, name) {
  ObjectDefineProperty(proto, name, { value: methods[name], writable: true, enumerable: false, configurable: true });
}
install(StringProto, 'repeat');
install(StringProto, 'padStart');
install(StringProto, 'padEnd');
install(ArrayProto, 'join');
