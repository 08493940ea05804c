// Run once the polyfills and the default (en) locale data are in: ties the loaded Intl to ftjs's
// rules and hands the boot glue (hypervisor/guest/web/intl.js) what its toLocale* methods need.
//   * Default locale en-US, default time zone UTC, whatever the host's: nothing here reads the host.
//   * Other languages' data is compiled on first use of a tag in that language (every constructor and
//     supportedLocalesOf canonicalizes its locales through Intl.getCanonicalLocales, hooked here).
//   * IANA time-zone data is compiled on first use of a zone other than UTC, and each zone's
//     transitions are unpacked only when that zone is first formatted.

const DEFAULT_LOCALE = 'en-US';
const POLYFILLED = ['DateTimeFormat', 'ListFormat', 'NumberFormat', 'PluralRules', 'RelativeTimeFormat'];

/**
 * @param {object} Intl the Intl object the chunks populate
 * @param {(chunk: string, after: () => void) => unknown} load compiles and runs a lazy chunk on that
 *   object, then `after`; the guest's CPU budget starts again once both are done
 * @param {Record<string, string>} localeChunks language or language-REGION -> chunk name
 * @param {string[]} zoneNames names in the bundled tz data
 */
export function setup(Intl, load, localeChunks, zoneNames) {
  for (const name of POLYFILLED) Intl[name].__defaultLocale = DEFAULT_LOCALE;
  const warm = (tag) => warmDateTimeFormats(Intl.DateTimeFormat, tag);
  hookLocaleLoading(Intl, load, localeChunks, warm);
  Intl.DateTimeFormat.tzData = lazyTimeZones(Intl.DateTimeFormat, load, zoneNames);
  hookSupportedTimeZones(Intl, zoneNames);
  warm('en');

  const { NumberFormat, DateTimeFormat, Collator, getCanonicalLocales } = Intl;
  const defaults = new Map();
  const cached = (key, make) => {
    let value = defaults.get(key);
    if (value === undefined) defaults.set(key, (value = make()));
    return value;
  };
  return {
    formatNumber(x, locales, options) {
      if (locales === undefined && options === undefined) return cached('number', () => new NumberFormat()).format(x);
      return new NumberFormat(locales, options).format(x);
    },
    /** Date.prototype.toLocale{,Date,Time}String for a valid time value `t`. */
    formatDate(t, locales, options, required, defaults) {
      if (locales === undefined && options === undefined) {
        return cached(`date-${required}`, () => new DateTimeFormat(undefined, toDateTimeOptions(undefined, required, defaults))).format(t);
      }
      return new DateTimeFormat(locales, toDateTimeOptions(options, required, defaults)).format(t);
    },
    compare(a, b, locales, options) {
      if (locales === undefined && options === undefined) return cached('collator', () => new Collator()).compare(a, b);
      return new Collator(locales, options).compare(a, b);
    },
    /** The language subtag String.prototype.toLocale{Upper,Lower}Case tailors for. */
    caseLanguage(locales) {
      const list = getCanonicalLocales(locales);
      return list.length ? list[0].split('-')[0] : 'en';
    },
  };
}

/**
 * Parses a locale's date-time formats now, as part of loading it: it is the one large first-use cost
 * (~0.1 s) that would otherwise land in the guest's CPU budget at its first DateTimeFormat.
 */
function warmDateTimeFormats(DateTimeFormat, tag) {
  const data = DateTimeFormat.localeData[tag];
  if (data !== undefined) void data.formats.gregory;
}

function hookLocaleLoading(Intl, load, localeChunks, warm) {
  const canonicalize = Intl.getCanonicalLocales;
  const loaded = new Set();
  const loadChunk = (key) => {
    const chunk = localeChunks[key];
    if (chunk === undefined || loaded.has(chunk)) return;
    load(chunk, () => warm(key));
    loaded.add(chunk); // only once it ran to the end: a preempted load runs again next time
  };
  const ensure = (tag) => {
    const [language, ...subtags] = tag.split('-');
    loadChunk(language);
    const region = subtags.find((s, i) => (i === 0 && s.length === 4 ? false : /^([A-Z]{2}|\d{3})$/.test(s)));
    if (region !== undefined) loadChunk(`${language}-${region}`);
  };
  const hooked = {
    getCanonicalLocales(locales) {
      const list = canonicalize(locales);
      for (const tag of list) ensure(tag);
      return list;
    },
  }.getCanonicalLocales;
  Object.defineProperty(Intl, 'getCanonicalLocales', { value: hooked, writable: true, enumerable: false, configurable: true });
}

/**
 * Intl.supportedValuesOf('timeZone') is the bundled tz data's zone names and UTC. The polyfill's own answer
 * builds a DateTimeFormat per candidate zone (2 s in QuickJS) and finds fewer.
 */
function hookSupportedTimeZones(Intl, zoneNames) {
  const supportedValuesOf = Intl.supportedValuesOf;
  // UTC is no zone of the data (the polyfill knows it without), but it is a supported value.
  const zones = [...new Set([...zoneNames, 'UTC'])].sort();
  const hooked = {
    supportedValuesOf(key) {
      return String(key) === 'timeZone' ? [...zones] : supportedValuesOf(key);
    },
  }.supportedValuesOf;
  Object.defineProperty(Intl, 'supportedValuesOf', { value: hooked, writable: true, enumerable: false, configurable: true });
}

// https://tc39.es/ecma402/#sec-todatetimeoptions
function toDateTimeOptions(options, required, defaults) {
  options = Object.create(options === undefined ? null : Object(options));
  let needDefaults = true;
  if (required === 'date' || required === 'any') {
    for (const prop of ['weekday', 'year', 'month', 'day']) if (options[prop] !== undefined) needDefaults = false;
  }
  if (required === 'time' || required === 'any') {
    for (const prop of ['dayPeriod', 'hour', 'minute', 'second', 'fractionalSecondDigits']) if (options[prop] !== undefined) needDefaults = false;
  }
  const dateStyle = options.dateStyle;
  const timeStyle = options.timeStyle;
  if (dateStyle !== undefined || timeStyle !== undefined) needDefaults = false;
  if (required === 'date' && timeStyle !== undefined) throw new TypeError('toLocaleDateString does not accept a timeStyle');
  if (required === 'time' && dateStyle !== undefined) throw new TypeError('toLocaleTimeString does not accept a dateStyle');
  if (needDefaults && (defaults === 'date' || defaults === 'all')) for (const prop of ['year', 'month', 'day']) options[prop] = 'numeric';
  if (needDefaults && (defaults === 'time' || defaults === 'all')) for (const prop of ['hour', 'minute', 'second']) options[prop] = 'numeric';
  return options;
}

const UTC_ZONE = [[-Infinity, 'UTC', 0, false]];

/**
 * DateTimeFormat.tzData as the polyfill reads it (names by Object.keys, transitions by zone), backed by
 * the tz chunk only once a zone other than UTC is formatted, one zone unpacked at a time.
 */
function lazyTimeZones(DateTimeFormat, load, zoneNames) {
  let packed;
  const loadPacked = () => {
    if (packed) return packed;
    let data;
    const add = DateTimeFormat.__addTZData;
    DateTimeFormat.__addTZData = (d) => void (data = d);
    try {
      load('intl-tz', () => undefined);
    } finally {
      DateTimeFormat.__addTZData = add;
    }
    const zones = new Map();
    for (const z of data.zones) zones.set(z.slice(0, z.indexOf('|')), z);
    packed = { abbrvs: data.abbrvs.split('|'), offsets: data.offsets.split('|').map((n) => parseInt(n, 36)), zones };
    return packed;
  };
  // The polyfill's own unpack(), for one zone.
  const unpack = (name) => {
    const { abbrvs, offsets, zones } = loadPacked();
    const [, ...rows] = zones.get(name).split('|');
    return rows.map((row) => {
      const [ts, abbrvIndex, offsetIndex, dst] = row.split(',');
      return [ts === '' ? -Infinity : parseInt(ts, 36), abbrvs[+abbrvIndex], offsets[+offsetIndex], dst === '1'];
    });
  };
  // An accessor per zone: naming zones (Object.keys, which the polyfill runs at every construction
  // with a timeZone) stays native-fast, and a zone's transitions are unpacked on its first use.
  const tzData = {};
  for (const name of zoneNames) {
    Object.defineProperty(tzData, name, {
      enumerable: true,
      configurable: true,
      get() {
        const rows = name === 'UTC' ? UTC_ZONE : unpack(name);
        Object.defineProperty(tzData, name, { value: rows, enumerable: true, configurable: true, writable: false });
        return rows;
      },
    });
  }
  return tzData;
}
