// Intl.getCanonicalLocales and Intl.supportedValuesOf, from the packages' indexes (which intl-locale
// imports anyway: their polyfill-force entries would bundle a second copy of the same code and data).
// First of the chunk's modules: every other polyfill canonicalizes through Intl.getCanonicalLocales.
import { getCanonicalLocales } from '@formatjs/intl-getcanonicallocales';
import { supportedValuesOf } from '@formatjs/intl-supportedvaluesof';

define('getCanonicalLocales', getCanonicalLocales);
define('supportedValuesOf', supportedValuesOf);

function define(name, value) {
  Object.defineProperty(Intl, name, { value, writable: true, enumerable: false, configurable: true });
}
