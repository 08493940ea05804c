// Intl.Collator for the guest (FormatJS has no Collator polyfill). A compact multi-level collation:
// strings are NFD-normalized, every character maps to primary/secondary/tertiary weights read off
// the CLDR root collation (collation-data.js, generated from ICU), combining marks weigh only at the
// secondary level, and comparison goes level by level as in the Unicode Collation Algorithm.
// Covered: sensitivity, numeric, caseFirst, ignorePunctuation, usage, the -u-kn/-u-kf extensions, and
// the Spanish ñ tailoring. Not covered (documented in the README): other locale tailorings (Han
// ideographs sort by code point, not by pinyin or JIS), contractions other than Spanish ñ, and
// characters outside the generated repertoire (they sort after it, by code point).

import { ResolveLocale, LookupSupportedLocales } from '@formatjs/intl-localematcher';
import { BASE, MARKS, EXPANSIONS } from './collation-data.js';

// As in ICU, a collation is named for the language whose rules it uses ("pt-BR" resolves to "pt"),
// except the default en-US.
const AVAILABLE_LOCALES = ['en', 'en-US', 'de', 'es', 'fr', 'ja', 'pt', 'zh'];
const LOCALE_DATA = { kn: ['false', 'true'], kf: ['false', 'lower', 'upper'] };
const UNKNOWN_PRIMARY = 1e6; // characters outside the table sort after it, by code point
const EXPANSION_SECONDARY = 50; // an expansion (ß) is secondary-greater than what it expands to (ss), as in ICU
const MAX_CACHED_KEYS = 2048;

let digitPrimary;
/** code point -> [primary, secondary, tertiary, variable]; marks -> [0, secondary, 0, 0]. */
function table() {
  if (table.weights) return table.weights;
  // Built in a local and published at the end: a preempted build is started again, not left half done.
  const weights = new Map();
  for (const row of BASE.split(';')) {
    const [cp, p, s, t, v] = row.split(',').map((n) => parseInt(n, 36));
    weights.set(cp, [p, s, t, v]);
  }
  for (const row of MARKS.split(';')) {
    const [cp, s] = row.split(',').map((n) => parseInt(n, 36));
    weights.set(cp, [0, 100 + s, 0, 0]);
  }
  for (const entry of EXPANSIONS) {
    const [c, x, y] = [...entry];
    const [wx, wy] = [weights.get(x.codePointAt(0)), weights.get(y.codePointAt(0))];
    weights.set(c.codePointAt(0), [wx, [wy[0], wy[1] + EXPANSION_SECONDARY, wy[2], wy[3]]]);
  }
  digitPrimary = weights.get(0x30)[0];
  table.weights = weights;
  return weights;
}

/** The collation elements of `s` as three weight arrays (one per level) plus a case array. */
function sortKey(s, cfg) {
  const w = table();
  const text = s.normalize('NFD');
  const P = [], S = [], T = [], C = [];
  const push = (p, sec, t, upper) => {
    if (p !== 0) P.push(p);
    if (sec !== 0) S.push(sec);
    if (t !== 0) {
      T.push(cfg.upperFirst ? (upper ? 0 : 512) + t : t);
      C.push(cfg.upperFirst ? (upper ? 0 : 1) : upper ? 1 : 0);
    }
  };
  const chars = [...text];
  for (let i = 0; i < chars.length; i++) {
    const c = chars[i];
    if (cfg.numeric && c >= '0' && c <= '9') {
      let j = i;
      while (j < chars.length && chars[j] >= '0' && chars[j] <= '9') j++;
      const digits = chars.slice(i, j).join('').replace(/^0+(?=.)/, '');
      P.push(digitPrimary, digits.length, ...[...digits].map((d) => d.charCodeAt(0) - 47));
      S.push(1);
      T.push(1);
      C.push(0);
      i = j - 1;
      continue;
    }
    if (cfg.spanish && (c === 'n' || c === 'N') && chars[i + 1] === '\u0303') {
      push(w.get(0x6e)[0] + 0.5, 1, c === 'N' ? 2 : 1, c === 'N');
      i++;
      continue;
    }
    const cp = c.codePointAt(0);
    const upper = c !== c.toLowerCase();
    let weight = w.get(cp);
    if (weight === undefined) {
      if (/\p{Cc}|\p{Cf}|\p{Mn}/u.test(c)) continue; // ignorable: controls, format characters, other marks
      const digit = digitValue(cp);
      // Decimal digits of every script sort with the ASCII digit of the same value.
      weight = digit === undefined ? [UNKNOWN_PRIMARY + cp, 1, 1, 0] : [w.get(0x30 + digit)[0], 1, 2, 0];
    }
    if (Array.isArray(weight[0])) {
      for (const [p, sec, t, v] of weight) if (!(v && cfg.ignorePunctuation)) push(p, sec, t, upper);
      continue;
    }
    const [p, sec, t, v] = weight;
    if (v && cfg.ignorePunctuation) continue;
    push(p, sec, t, upper);
  }
  return [P, S, T, C];
}

/** The value of a decimal digit (\p{Nd}): Unicode encodes each script's digits 0-9 contiguously. */
function digitValue(cp) {
  const isDigit = (x) => /\p{Nd}/u.test(String.fromCodePoint(x));
  if (!isDigit(cp)) return undefined;
  let start = cp;
  while (start > 0 && cp - start < 100 && isDigit(start - 1)) start--; // adjacent runs (math digits) stay aligned
  return (cp - start) % 10;
}

function compareArrays(a, b) {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
  return a.length === b.length ? 0 : a.length < b.length ? -1 : 1;
}

const slots = new WeakMap();
function getSlots(collator, method) {
  const s = typeof collator === 'object' && collator !== null ? slots.get(collator) : undefined;
  if (s === undefined) throw new TypeError(`Method Intl.Collator.prototype.${method} called on incompatible receiver ${String(collator)}`);
  return s;
}

function getOption(options, name, allowed, fallback) {
  let value = options[name];
  if (value === undefined) return fallback;
  value = String(value);
  if (allowed && !allowed.includes(value)) throw new RangeError(`Value ${value} out of range for Intl.Collator options property ${name}`);
  return value;
}

function getBooleanOption(options, name) {
  const value = options[name];
  return value === undefined ? undefined : Boolean(value);
}

export function Collator(locales, options) {
  if (!new.target) return new Collator(locales, options);
  const requested = Intl.getCanonicalLocales(locales);
  options = options === undefined ? Object.create(null) : Object(options);
  const usage = getOption(options, 'usage', ['sort', 'search'], 'sort');
  const localeMatcher = getOption(options, 'localeMatcher', ['lookup', 'best fit'], 'best fit');
  const collation = options.collation;
  if (collation !== undefined && !/^[a-z0-9]{3,8}(-[a-z0-9]{3,8})*$/i.test(String(collation))) throw new RangeError(`Invalid collation ${String(collation)}`);
  const numericOption = getBooleanOption(options, 'numeric');
  const caseFirstOption = getOption(options, 'caseFirst', ['upper', 'lower', 'false'], undefined);
  // "best fit" may be any algorithm (ECMA-402 9.2.4); lookup is exact for these locales and avoids the
  // matcher's ~0.3 s first-use cost in QuickJS. The option is still read and validated above.
  void localeMatcher;
  const r = ResolveLocale(
    AVAILABLE_LOCALES,
    requested,
    { localeMatcher: 'lookup', kn: numericOption === undefined ? undefined : String(numericOption), kf: caseFirstOption },
    ['kf', 'kn'],
    new Proxy({}, { get: () => LOCALE_DATA }),
    () => 'en-US',
  );
  const sensitivity = getOption(options, 'sensitivity', ['base', 'accent', 'case', 'variant'], 'variant');
  const ignorePunctuation = getBooleanOption(options, 'ignorePunctuation') ?? false;
  const numeric = r.kn === 'true' || r.kn === '';
  const caseFirst = r.kf ?? 'false';
  slots.set(this, {
    locale: r.locale,
    usage,
    sensitivity,
    ignorePunctuation,
    numeric,
    caseFirst,
    cfg: { numeric, ignorePunctuation, upperFirst: caseFirst === 'upper', spanish: r.dataLocale.split('-')[0] === 'es' },
    keys: new Map(),
    boundCompare: undefined,
  });
}

function keyOf(s, str) {
  let key = s.keys.get(str);
  if (key === undefined) {
    if (s.keys.size >= MAX_CACHED_KEYS) s.keys.clear();
    key = sortKey(str, s.cfg);
    s.keys.set(str, key);
  }
  return key;
}

function compareWith(s, x, y) {
  x = String(x);
  y = String(y);
  if (x === y) return 0;
  const [P1, S1, T1, C1] = keyOf(s, x);
  const [P2, S2, T2, C2] = keyOf(s, y);
  const primary = compareArrays(P1, P2);
  if (primary !== 0 || s.sensitivity === 'base') return primary;
  if (s.sensitivity === 'case') return compareArrays(C1, C2);
  const secondary = compareArrays(S1, S2);
  if (secondary !== 0 || s.sensitivity === 'accent') return secondary;
  return compareArrays(T1, T2);
}

Object.defineProperty(Collator.prototype, 'compare', {
  configurable: true,
  enumerable: false,
  get: function () {
    const s = getSlots(this, 'compare');
    if (s.boundCompare === undefined) {
      const bound = (x, y) => compareWith(s, x, y);
      Object.defineProperty(bound, 'name', { value: '' });
      s.boundCompare = bound;
    }
    return s.boundCompare;
  },
});
Object.defineProperty(Collator.prototype, 'resolvedOptions', {
  configurable: true,
  enumerable: false,
  writable: true,
  value: function resolvedOptions() {
    const s = getSlots(this, 'resolvedOptions');
    return {
      locale: s.locale,
      usage: s.usage,
      sensitivity: s.sensitivity,
      ignorePunctuation: s.ignorePunctuation,
      collation: 'default',
      numeric: s.numeric,
      caseFirst: s.caseFirst,
    };
  },
});
Object.defineProperty(Collator.prototype, Symbol.toStringTag, { value: 'Intl.Collator', configurable: true });
Object.defineProperty(Collator.prototype, 'constructor', { value: Collator, writable: true, configurable: true });
Object.defineProperty(Collator, 'prototype', { writable: false });
Object.defineProperty(Collator, 'supportedLocalesOf', {
  configurable: true,
  enumerable: false,
  writable: true,
  value: function supportedLocalesOf(locales, options) {
    if (options !== undefined) getOption(Object(options), 'localeMatcher', ['lookup', 'best fit'], 'best fit');
    return LookupSupportedLocales(AVAILABLE_LOCALES, Intl.getCanonicalLocales(locales));
  },
});
Object.defineProperty(Intl, 'Collator', { value: Collator, writable: true, enumerable: false, configurable: true });
