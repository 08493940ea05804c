// Intrinsics captured when the glue boots, before any guest code runs (as Node's primordials): the
// guest may replace any builtin afterwards (Promise.prototype.then, Map.prototype.set, Array methods,
// JSON, Function.prototype.call), and the glue that serves its other requests must not notice.
// A method is "uncurried": uncurryThis(Map.prototype.get)(map, key) calls the original on `map`
// through a bound Function.prototype.call, so neither the method nor `call` is looked up again.
//
// Only what the glue's hot paths use is here. Add to it rather than reading a builtin off a global or
// a prototype at call time. Exported to runtime.js through __ftjs_web.primordials.

const FunctionCall = Function.prototype.call;
const FunctionBind = Function.prototype.bind;
/** uncurryThis(f)(self, ...args) is f.call(self, ...args), immune to later patches of either. */
export const uncurryThis = FunctionCall.call(FunctionBind, FunctionBind, FunctionCall);
export const FunctionApply = uncurryThis(Function.prototype.apply);
export const ReflectApply = Reflect.apply;

export const ObjectDefineProperty = Object.defineProperty;
export const ObjectFreeze = Object.freeze;
export const ObjectKeys = Object.keys;
export const ObjectGetPrototypeOf = Object.getPrototypeOf;
export const ObjectGetOwnPropertyDescriptor = Object.getOwnPropertyDescriptor;
export const ObjectCtor = Object;
export const ArrayIsArray = Array.isArray;
export const JSONParse = JSON.parse;
export const JSONStringify = JSON.stringify;
export const MathMax = Math.max;
export const MathFloor = Math.floor;
export const NumberCtor = Number;
export const StringCtor = String;

export const PromiseCtor = Promise;
export const PromiseThen = uncurryThis(Promise.prototype.then);
/**
 * Promise.resolve(value) of the boot-time Promise (the guest may replace Promise.resolve): the static
 * bound to Promise at boot, one call deep (an arrow over an uncurried static was three, on every
 * async request's path and every body read).
 */
export const PromiseResolve = FunctionCall.call(FunctionBind, Promise.resolve, PromiseCtor);
export const PromiseReject = FunctionCall.call(FunctionBind, Promise.reject, PromiseCtor);
/** promise.catch(onRejected) without reading `then` off the promise (Promise.prototype.catch does). */
export const PromiseCatch = (promise, onRejected) => PromiseThen(promise, undefined, onRejected);
export const MapCtor = Map;
export const MapGet = uncurryThis(Map.prototype.get);
export const MapSet = uncurryThis(Map.prototype.set);
export const MapHas = uncurryThis(Map.prototype.has);
export const MapDelete = uncurryThis(Map.prototype.delete);
export const MapEntries = uncurryThis(Map.prototype.entries);
export const MapSize = uncurryThis(ObjectGetOwnPropertyDescriptor(Map.prototype, 'size').get);
const MapIteratorNextMethod = ObjectGetPrototypeOf(new Map().entries()).next;
export const MapIteratorNext = uncurryThis(MapIteratorNextMethod);
export const SetCtor = Set;
export const SetAdd = uncurryThis(Set.prototype.add);
export const SetHas = uncurryThis(Set.prototype.has);
export const SetDelete = uncurryThis(Set.prototype.delete);

export const ArraySlice = uncurryThis(Array.prototype.slice);
export const ArrayPush = uncurryThis(Array.prototype.push);
export const ArrayMap = uncurryThis(Array.prototype.map);
export const ArraySort = uncurryThis(Array.prototype.sort);
export const ArrayJoin = uncurryThis(Array.prototype.join);
export const ArrayConcat = uncurryThis(Array.prototype.concat);
export const StringSlice = uncurryThis(String.prototype.slice);
export const StringReplace = uncurryThis(String.prototype.replace);
export const StringIndexOf = uncurryThis(String.prototype.indexOf);
export const StringCharCodeAt = uncurryThis(String.prototype.charCodeAt);
export const StringCodePointAt = uncurryThis(String.prototype.codePointAt);
export const ArrayIndexOf = uncurryThis(Array.prototype.indexOf);
export const StringToLowerCase = uncurryThis(String.prototype.toLowerCase);
export const StringToUpperCase = uncurryThis(String.prototype.toUpperCase);
export const RegExpExec = uncurryThis(RegExp.prototype.exec);
export const ArrayIterator = uncurryThis(Array.prototype[Symbol.iterator]);
export const SymbolToString = uncurryThis(Symbol.prototype.toString);
export const NumberToFixed = uncurryThis(Number.prototype.toFixed);
export const NumberToString = uncurryThis(Number.prototype.toString);
export const DateNow = Date.now;
export const DateToISOString = uncurryThis(Date.prototype.toISOString);
export const ArrayBufferSlice = uncurryThis(ArrayBuffer.prototype.slice);
export const ArrayBufferIsView = ArrayBuffer.isView;
export const Uint8ArrayCtor = Uint8Array;
export const TypedArrayPrototype = ObjectGetPrototypeOf(Uint8Array.prototype);
export const TypedArraySet = uncurryThis(TypedArrayPrototype.set);
export const TypedArraySlice = uncurryThis(TypedArrayPrototype.slice);
export const TypedArraySort = uncurryThis(TypedArrayPrototype.sort);
export const TypedArrayLength = uncurryThis(ObjectGetOwnPropertyDescriptor(TypedArrayPrototype, 'length').get);
export const TypedArrayByteLength = uncurryThis(ObjectGetOwnPropertyDescriptor(TypedArrayPrototype, 'byteLength').get);
export const TypedArrayByteOffset = uncurryThis(ObjectGetOwnPropertyDescriptor(TypedArrayPrototype, 'byteOffset').get);
export const TypedArrayBuffer = uncurryThis(ObjectGetOwnPropertyDescriptor(TypedArrayPrototype, 'buffer').get);
/** The [[TypedArrayName]] of a typed array ('Uint8Array', ...), undefined for anything else. */
export const TypedArrayName = uncurryThis(ObjectGetOwnPropertyDescriptor(TypedArrayPrototype, Symbol.toStringTag).get);
