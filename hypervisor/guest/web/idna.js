// UTS #46 ToASCII for URL hosts, loaded lazily. The implementation (idna-impl.js and its Unicode
// table) arrives as source text from the build (__FTJS_IDNA_SOURCE__, defined in glue-build.ts), and is evaluated on the first domain that is not
// plain lower-case-able ASCII. First use is a guest action, so when it happens is deterministic.

// Captured at boot: the guest may replace or delete eval later.
const indirectEval = globalThis.eval;
let impl = null;
import { RegExpExec, StringToLowerCase } from './primordials.js';

function load() {
  if (impl === null) impl = indirectEval(__FTJS_IDNA_SOURCE__);
  return impl;
}

const NON_ASCII_RE = /[^\x00-\x7F]/;

// Returns the ASCII domain, or null on failure. An ASCII domain is only lower-cased, Punycode
// labels included, as the current URL Standard and browsers do (WPT toascii.json: "xn--a" stays
// "xn--a"), so plain hosts never load the table.
export function uts46ToASCII(domain) {
  if (RegExpExec(NON_ASCII_RE, domain) === null) return StringToLowerCase(domain);
  return load().domainToASCII(domain);
}
