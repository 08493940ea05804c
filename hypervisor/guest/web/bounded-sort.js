// Sorting inside the task budget. QuickJS polls its interrupt handler only in bytecode, so a native
// sort of a guest-sized array runs to its end whatever the budget: Array.prototype.sort over 3x10^6
// numbers took 4.3 s against a 1,000 ms budget, and starved the node's heartbeats. Here the sorts are
// replaced, at boot, by a merge sort written in JS: small inputs still go to the native sort (its cost
// is bounded by their size), large ones are cut into runs the native sort orders one by one and that
// JS code merges, so the interrupt handler is polled between runs and on every merge step. The
// preemption position is then exact and replay agrees, as for any guest code.
//
// Semantics as the spec's SortCompare: stable, undefined last and holes removed (arrays), NaN last and
// -0 before +0 (typed arrays), a comparator's result through ToNumber with NaN as 0. Every method it
// uses was captured at boot (primordials.js): the guest may patch anything afterwards.

import {
  ArrayIsArray,
  ArraySort,
  ObjectCtor,
  ObjectDefineProperty,
  TypedArrayBuffer,
  TypedArrayByteOffset,
  TypedArrayLength,
  TypedArrayName,
  TypedArrayPrototype,
  TypedArraySort,
  StringIndexOf,
  uncurryThis,
} from './primordials.js';

const FunctionToString = uncurryThis(Function.prototype.toString);

/** Arrays up to this length are sorted natively in one go (about 30 ms for 16,384 numbers, compared as strings). */
export const NATIVE_SORT_MAX_LENGTH = 16384;
/** Length of the runs the native sort orders before the JS merge. */
const RUN_LENGTH = 16384;
/** Typed arrays sort natively faster (numbers, no strings): about 30 ms for 65,536 doubles. */
const TYPED_NATIVE_SORT_MAX_LENGTH = 65536;
const TYPED_RUN_LENGTH = 65536;

const TypeErrorCtor = TypeError;
const RangeErrorCtor = RangeError;
const MAX_ARRAY_LENGTH = 4294967295;
const TYPED_ARRAY_CTORS = {
  Int8Array, Uint8Array, Uint8ClampedArray, Int16Array, Uint16Array, Int32Array, Uint32Array,
  Float32Array, Float64Array, BigInt64Array, BigUint64Array,
};
if (typeof Float16Array === 'function') TYPED_ARRAY_CTORS.Float16Array = Float16Array;

const ArrayProto = Array.prototype;
const nativeArraySort = ArrayProto.sort;
const nativeArrayToSorted = ArrayProto.toSorted;
const nativeTypedArrayToSorted = TypedArrayPrototype.toSorted;

/**
 * A comparator the native sort may call without the interrupt handler being polled: a native function
 * (Math.min, a bound function, a proxy). A JS comparator is polled on every call: the native sort with
 * it is interruptible as it is, and calling it through a wrapper would cost 2-6x on every comparison.
 */
function unpolled(comparefn) {
  try {
    return StringIndexOf(FunctionToString(comparefn), '[native code]') >= 0;
  } catch {
    return true;
  }
}
/** The comparator the native sort is given: a native one is called through a JS function. */
function polled(comparefn) {
  return unpolled(comparefn) ? (x, y) => comparefn(x, y) : comparefn;
}

function checkComparator(comparefn, method) {
  if (comparefn !== undefined && typeof comparefn !== 'function') {
    throw new TypeErrorCtor('The comparison function must be either a function or undefined (' + method + ')');
  }
}

function lengthOf(obj) {
  const len = +obj.length;
  if (!(len > 0)) return 0;
  return len >= 9007199254740991 ? 9007199254740991 : len - (len % 1);
}

function stringCompare(a, b) {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Typed arrays' default order: numeric, -0 before +0, NaN last. */
function numericCompare(x, y) {
  if (x < y) return -1;
  if (x > y) return 1;
  if (x !== x) return y !== y ? 0 : 1;
  if (y !== y) return -1;
  if (x === 0 && y === 0) {
    const xNegative = 1 / x < 0;
    return xNegative === 1 / y < 0 ? 0 : xNegative ? -1 : 1;
  }
  return 0;
}

/**
 * Merges sorted runs of `values[0..n)` of length `width` and up, in passes, until one run is left
 * (stable: on a tie the left run goes first). With `keys` (default array order: the values' strings,
 * computed once) keys are compared and moved along with the values. Returns the sorted array.
 */
function mergeRuns(values, keys, n, width, compare) {
  let src = values;
  let srcKeys = keys;
  let dst = new Array(n);
  let dstKeys = keys === null ? null : new Array(n);
  for (; width < n; width *= 2) {
    for (let lo = 0; lo < n; lo += 2 * width) {
      const mid = lo + width < n ? lo + width : n;
      const hi = lo + 2 * width < n ? lo + 2 * width : n;
      let i = lo;
      let j = mid;
      let k = lo;
      while (i < mid && j < hi) {
        const takeRight = keys === null ? compare(src[i], src[j]) > 0 : srcKeys[i] > srcKeys[j];
        if (takeRight) {
          if (dstKeys !== null) dstKeys[k] = srcKeys[j];
          dst[k++] = src[j++];
        } else {
          if (dstKeys !== null) dstKeys[k] = srcKeys[i];
          dst[k++] = src[i++];
        }
      }
      for (; i < mid; i++, k++) {
        if (dstKeys !== null) dstKeys[k] = srcKeys[i];
        dst[k] = src[i];
      }
      for (; j < hi; j++, k++) {
        if (dstKeys !== null) dstKeys[k] = srcKeys[j];
        dst[k] = src[j];
      }
    }
    const t = src;
    src = dst;
    dst = t;
    const tk = srcKeys;
    srcKeys = dstKeys;
    dstKeys = tk;
  }
  return src;
}

/** Sorts the dense list `values[0..n)` (no undefined in it) in default order: native runs, then the JS merge. */
function sortValues(values, n) {
  const run = new Array(RUN_LENGTH);
  for (let lo = 0; lo < n; lo += RUN_LENGTH) {
    const hi = lo + RUN_LENGTH < n ? lo + RUN_LENGTH : n;
    run.length = hi - lo;
    for (let i = lo; i < hi; i++) run[i - lo] = values[i];
    ArraySort(run);
    for (let i = lo; i < hi; i++) values[i] = run[i - lo];
  }
  const keys = new Array(n);
  for (let i = 0; i < n; i++) keys[i] = `${values[i]}`; // ToString, as SortCompare (throws on a Symbol)
  return mergeRuns(values, keys, n, RUN_LENGTH, stringCompare);
}

/** SortIndexedProperties + write-back of Array.prototype.sort, for `obj` of length `len`. */
function sortArrayLike(obj, len) {
  const values = [];
  let n = 0;
  let undefinedCount = 0;
  for (let i = 0; i < len; i++) {
    if (!(i in obj)) continue;
    const v = obj[i];
    if (v === undefined) undefinedCount++;
    else values[n++] = v;
  }
  const sorted = sortValues(values, n);
  let i = 0;
  for (; i < n; i++) obj[i] = sorted[i];
  for (let u = 0; u < undefinedCount; u++, i++) obj[i] = undefined;
  for (; i < len; i++) delete obj[i]; // strict mode: throws on a non-configurable hole, as the spec
  return obj;
}

const methods = {
  sort(comparefn) {
    checkComparator(comparefn, 'Array.prototype.sort');
    // A comparator written in JS is polled on every call: the native sort is then interruptible.
    if (comparefn !== undefined) return ArraySort(this, polled(comparefn));
    if (ArrayIsArray(this) && this.length <= NATIVE_SORT_MAX_LENGTH) return ArraySort(this, comparefn);
    if (this === null || this === undefined) return ArraySort(this, comparefn); // its TypeError
    const obj = ObjectCtor(this);
    return sortArrayLike(obj, lengthOf(obj));
  },
  toSorted(comparefn) {
    checkComparator(comparefn, 'Array.prototype.toSorted');
    if (this === null || this === undefined) throw new TypeErrorCtor('Array.prototype.toSorted called on null or undefined');
    const obj = ObjectCtor(this);
    const len = lengthOf(obj);
    if (len > MAX_ARRAY_LENGTH) throw new RangeErrorCtor('Invalid array length');
    const copy = new Array(len);
    for (let i = 0; i < len; i++) copy[i] = obj[i];
    if (comparefn !== undefined) return ArraySort(copy, polled(comparefn));
    return len <= NATIVE_SORT_MAX_LENGTH ? ArraySort(copy) : sortArrayLike(copy, len);
  },
};

/** A view of the same type on elements [lo, hi) of `ta` (no species lookup, unlike subarray). */
function runView(Ctor, ta, lo, hi) {
  return new Ctor(TypedArrayBuffer(ta), TypedArrayByteOffset(ta) + lo * Ctor.BYTES_PER_ELEMENT, hi - lo);
}

function sortTypedArray(ta, comparefn) {
  const name = TypedArrayName(ta);
  const Ctor = name === undefined ? undefined : TYPED_ARRAY_CTORS[name];
  if (Ctor === undefined) throw new TypeErrorCtor('this is not a typed array');
  const len = TypedArrayLength(ta);
  if (comparefn !== undefined) return TypedArraySort(ta, polled(comparefn)); // polled, as above
  if (len <= TYPED_NATIVE_SORT_MAX_LENGTH) return TypedArraySort(ta);
  for (let lo = 0; lo < len; lo += TYPED_RUN_LENGTH) TypedArraySort(runView(Ctor, ta, lo, lo + TYPED_RUN_LENGTH < len ? lo + TYPED_RUN_LENGTH : len));
  const values = new Array(len);
  for (let i = 0; i < len; i++) values[i] = ta[i];
  const sorted = mergeRuns(values, null, len, TYPED_RUN_LENGTH, numericCompare);
  for (let i = 0; i < len; i++) ta[i] = sorted[i];
  return ta;
}

const typedMethods = {
  sort(comparefn) {
    checkComparator(comparefn, '%TypedArray%.prototype.sort');
    return sortTypedArray(this, comparefn);
  },
  toSorted(comparefn) {
    checkComparator(comparefn, '%TypedArray%.prototype.toSorted');
    const name = TypedArrayName(this);
    const Ctor = name === undefined ? undefined : TYPED_ARRAY_CTORS[name];
    if (Ctor === undefined) throw new TypeErrorCtor('this is not a typed array');
    const len = TypedArrayLength(this);
    const copy = new Ctor(len);
    for (let i = 0; i < len; i++) copy[i] = this[i];
    return sortTypedArray(copy, comparefn);
  },
};

function install(proto, name, fn, native) {
  if (typeof native !== 'function' && name === 'toSorted') return; // an engine without it
  ObjectDefineProperty(proto, name, { value: fn, writable: true, enumerable: false, configurable: true });
}
install(ArrayProto, 'sort', methods.sort, nativeArraySort);
install(ArrayProto, 'toSorted', methods.toSorted, nativeArrayToSorted);
install(TypedArrayPrototype, 'sort', typedMethods.sort, TypedArraySort);
install(TypedArrayPrototype, 'toSorted', typedMethods.toSorted, nativeTypedArrayToSorted);
