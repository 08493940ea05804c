// URLPattern, from the urlpattern-polyfill package (the WICG reference polyfill, well kept). It is
// 18 KB that most services never touch, so the bundle holds it as text (glue-build.ts, LAZY_SCRIPTS)
// and evaluates it on the first read of `globalThis.URLPattern`; the getter then replaces itself with
// an ordinary data property. The first read is a guest action, so replay evaluates it at the same point.

/* global __FTJS_LAZY_URLPATTERN__ */
const source = __FTJS_LAZY_URLPATTERN__;

const indirectEval = globalThis.eval; // captured: the guest may replace the global
const defineProperty = Object.defineProperty;

function install(value) {
  defineProperty(globalThis, 'URLPattern', { value, writable: true, enumerable: false, configurable: true });
}

defineProperty(globalThis, 'URLPattern', {
  get() {
    const { URLPattern } = indirectEval(source);
    install(URLPattern);
    return URLPattern;
  },
  set(value) {
    install(value);
  },
  enumerable: false,
  configurable: true,
});
