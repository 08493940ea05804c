// Patches builtins the runtime glue might use, then answers requests normally.
let patched = false;
function patch() {
  const boom = (what) => function () { throw new Error('patched ' + what); };
  Promise.prototype.then = boom('Promise.prototype.then');
  Promise.prototype.catch = boom('Promise.prototype.catch');
  Promise.prototype.finally = boom('Promise.prototype.finally');
  Promise.resolve = boom('Promise.resolve');
  Promise.reject = boom('Promise.reject');
  Map.prototype.set = function (k, v) { globalThis.leaked = (globalThis.leaked || 0) + 1; throw new Error('patched Map.set'); };
  Map.prototype.get = boom('Map.prototype.get');
  Map.prototype.has = boom('Map.prototype.has');
  Map.prototype.delete = boom('Map.prototype.delete');
  Map.prototype[Symbol.iterator] = boom('Map iterator');
  Set.prototype.add = boom('Set.prototype.add');
  Set.prototype.has = boom('Set.prototype.has');
  Array.prototype.push = boom('Array.prototype.push');
  Array.prototype.map = boom('Array.prototype.map');
  Array.prototype.forEach = boom('Array.prototype.forEach');
  Array.prototype.join = boom('Array.prototype.join');
  Array.prototype.concat = boom('Array.prototype.concat');
  Array.prototype.slice = boom('Array.prototype.slice');
  Array.prototype[Symbol.iterator] = boom('Array iterator');
  Object.defineProperty = boom('Object.defineProperty');
  Object.keys = boom('Object.keys');
  Object.freeze = boom('Object.freeze');
  JSON.parse = boom('JSON.parse');
  JSON.stringify = boom('JSON.stringify');
  String.prototype.slice = boom('String.prototype.slice');
  String.prototype.charCodeAt = boom('String.prototype.charCodeAt');
  String.prototype.indexOf = boom('String.prototype.indexOf');
  String.prototype.toLowerCase = boom('String.prototype.toLowerCase');
  RegExp.prototype.exec = boom('RegExp.prototype.exec');
  Uint8Array.prototype.set = boom('Uint8Array.prototype.set');
  Object.getPrototypeOf(Uint8Array.prototype).slice = boom('TypedArray slice');
  Object.getPrototypeOf(Uint8Array.prototype).subarray = boom('TypedArray subarray');
  globalThis.Response = boom('Response');
  globalThis.Promise = boom('Promise');
  globalThis.Uint8Array = boom('Uint8Array');
  Function.prototype.call = boom('Function.prototype.call');
  Function.prototype.apply = boom('Function.prototype.apply');
  Function.prototype.bind = boom('Function.prototype.bind');
}
const OriginalResponse = Response;
const sampleMap = new Map([[1, 2]]);
let counter = 0;
const timerFired = [];
export default {
  async fetch(request) {
    const url = new URL(request.url);
    if (url.pathname === '/patch') {
      patch();
      patched = true;
      return new OriginalResponse('patched');
    }
    counter++;
    if (url.pathname === '/sleep') {
      await { then(resolve) { setTimeout(() => resolve(), 5); } };
    }
    if (url.pathname === '/echo') {
      const text = await request.text();
      return new OriginalResponse('echo ' + text + ' ' + request.headers.get('x-a') + ' #' + counter, { status: 201, headers: { 'x-b': 'b' } });
    }
    if (url.pathname === '/json') {
      const data = await request.json();
      return OriginalResponse.json({ got: data, n: counter });
    }
    console.log('request', counter, { patched, path: url.pathname }, [1, 2], sampleMap);
    return new OriginalResponse('ok #' + counter + ' patched=' + patched + ' leaked=' + (globalThis.leaked || 0));
  },
};
