// The matrix test/intl.test.ts evaluates both in the guest and in Node 20 (ICU): expressions as text.
// A case's `node` expression, when given, is what Node evaluates instead: the guest's default locale
// is en-US whatever the host's, while Node's follows LANG, so default-locale cases name en-US for Node.

export interface IntlCase {
  expr: string;
  node?: string;
}

const LOCALES = ['en-US', 'en-GB', 'de', 'fr', 'es', 'ja', 'zh', 'pt-BR'];
const q = (v: unknown) => JSON.stringify(v);

const NUMBERS = ['0', '1', '-1', '1234.5', '1234567.891', '0.000123', '1e21', 'NaN', '123456789012345678901234567890n'];
const NUMBER_OPTIONS: object[] = [
  {},
  { style: 'currency', currency: 'EUR' },
  { style: 'currency', currency: 'USD', currencyDisplay: 'name' },
  { style: 'currency', currency: 'JPY' },
  { style: 'percent' },
  { notation: 'compact' },
  { notation: 'compact', compactDisplay: 'long' },
  { notation: 'scientific' },
  { notation: 'engineering' },
  { style: 'unit', unit: 'kilometer-per-hour' },
  { style: 'unit', unit: 'byte', unitDisplay: 'long' },
  { minimumFractionDigits: 2 },
  { maximumSignificantDigits: 3 },
  { signDisplay: 'always' },
  { useGrouping: false },
];

const DATES = ['0', 'Date.UTC(2024, 1, 29, 13, 5, 9, 123)', '-1e12'];
const DATE_OPTIONS: object[] = [
  {},
  { timeZone: 'UTC' },
  { dateStyle: 'full' },
  { dateStyle: 'long', timeStyle: 'short' },
  { dateStyle: 'medium', timeStyle: 'medium' },
  { dateStyle: 'short' },
  { timeStyle: 'long' },
  { weekday: 'long', year: 'numeric', month: 'long', day: 'numeric' },
  { hour: '2-digit', minute: '2-digit', hour12: false },
  { hour: 'numeric', minute: 'numeric', hourCycle: 'h12' },
  { month: 'short', day: 'numeric' },
  { year: 'numeric', month: '2-digit', day: '2-digit' },
  { era: 'short', year: 'numeric' },
  { second: 'numeric', fractionalSecondDigits: 3 },
  { timeZone: 'America/New_York', timeZoneName: 'short' },
  { timeZone: 'Asia/Tokyo', dateStyle: 'medium', timeStyle: 'medium' },
  { timeZone: 'Europe/Berlin', hour: 'numeric', minute: 'numeric' },
  { timeZone: 'Asia/Kolkata', timeStyle: 'short' },
  { timeZone: 'Pacific/Chatham', dateStyle: 'short', timeStyle: 'short' },
  { timeZone: 'Australia/Sydney', timeZoneName: 'long' },
];

const COLLATION_LISTS = [
  ['b', 'a', 'B', 'A', 'á', 'Á', 'ä', 'z', 'Z', 'ß', 'ss', 'st', 'æ', 'ae', 'af', 'ø', 'o', 'p'],
  ['item10', 'item2', 'item1', 'Item1', 'item02', 'item 3', 'item-3', 'item_3'],
  ['résumé', 'resume', 'Résumé', 'Resume', 'résume', 'resumé', 'rèsume'],
  ['côte', 'cote', 'coté', 'côté', 'Cote'],
  ['ñandú', 'nube', 'oso', 'Ñu', 'nana', 'nzz'],
  ['Zebra', 'apple', 'Äpfel', 'Apfel', 'zoo', 'éclair', 'Eclair', 'eclair'],
  ['a b', 'ab', 'a-b', 'a_b', 'a.b', 'a,b', 'a!b', '$1', '1', '€2', '@', '#', ' '],
  ['Ωmega', 'alpha', 'Бета', 'бета', 'γάμμα', 'zeta', '1', '٣'],
];
const COLLATOR_OPTIONS: object[] = [{}, { sensitivity: 'base' }, { sensitivity: 'accent' }, { sensitivity: 'case' }, { numeric: true }, { caseFirst: 'upper' }, { ignorePunctuation: true }];

const PLURAL_NUMBERS = ['0', '1', '2', '3', '5', '11', '21', '22', '101', '1.5', '1000000'];

export function intlCases(): IntlCase[] {
  const cases: IntlCase[] = [];
  // The acceptance examples.
  cases.push({ expr: '(1234.5).toLocaleString()', node: "(1234.5).toLocaleString('en-US')" });
  cases.push({ expr: "new Date(0).toLocaleString('en-US', {timeZone:'UTC'})" });
  cases.push({ expr: 'new Date(0).toLocaleString()', node: "new Date(0).toLocaleString('en-US', {timeZone:'UTC'})" });
  cases.push({ expr: 'new Date(0).toLocaleDateString()', node: "new Date(0).toLocaleDateString('en-US', {timeZone:'UTC'})" });
  cases.push({ expr: 'new Date(0).toLocaleTimeString()', node: "new Date(0).toLocaleTimeString('en-US', {timeZone:'UTC'})" });
  cases.push({ expr: 'new Intl.NumberFormat().resolvedOptions().locale', node: "new Intl.NumberFormat('en-US').resolvedOptions().locale" });
  cases.push({ expr: 'new Intl.DateTimeFormat().resolvedOptions().timeZone', node: "'UTC'" });
  cases.push({ expr: '[1234.5, new Date(0), 12345678901234567890n].toLocaleString("de", {timeZone: "UTC"})' });
  cases.push({ expr: 'new Uint16Array([1000, 2000]).toLocaleString("de")' });
  cases.push({ expr: 'new Date(NaN).toLocaleString()' });
  cases.push({ expr: '"a".localeCompare("B")' });
  cases.push({ expr: '"ä".localeCompare("a", "de", {sensitivity: "base"})' });
  cases.push({ expr: '"istanbul".toLocaleUpperCase("tr")' });
  cases.push({ expr: '"İSTANBUL DIŞ".toLocaleLowerCase("tr")' });
  cases.push({ expr: '"istanbul".toLocaleUpperCase()' });
  cases.push({ expr: 'Intl.getCanonicalLocales(["EN-us", "zh-hant-tw", "de-DE-u-co-phonebk"]).join()' });
  cases.push({ expr: 'new Intl.Locale("en-Latn-US-u-ca-gregory").maximize().toString()' });
  cases.push({ expr: 'new Intl.Locale("zh").maximize().toString()' });
  for (const locale of LOCALES) {
    for (const n of NUMBERS) {
      for (const options of NUMBER_OPTIONS) cases.push({ expr: `new Intl.NumberFormat(${q(locale)}, ${q(options)}).format(${n})` });
    }
    cases.push({ expr: `JSON.stringify(new Intl.NumberFormat(${q(locale)}, {style: 'currency', currency: 'EUR'}).formatToParts(-1234.56))` });
    cases.push({ expr: `(1234.5).toLocaleString(${q(locale)})` });
    for (const d of DATES) {
      for (const options of DATE_OPTIONS) {
        const withUtc = 'timeZone' in options ? options : { ...options, timeZone: 'UTC' };
        cases.push({ expr: `new Intl.DateTimeFormat(${q(locale)}, ${q(options)}).format(${d})`, node: `new Intl.DateTimeFormat(${q(locale)}, ${q(withUtc)}).format(${d})` });
      }
      cases.push({ expr: `new Date(${d}).toLocaleString(${q(locale)}, {timeZone: 'UTC'})` });
      cases.push({ expr: `new Date(${d}).toLocaleDateString(${q(locale)}, {timeZone: 'UTC'})` });
      cases.push({ expr: `new Date(${d}).toLocaleTimeString(${q(locale)}, {timeZone: 'UTC'})` });
    }
    cases.push({ expr: `JSON.stringify(new Intl.DateTimeFormat(${q(locale)}, {dateStyle: 'medium', timeStyle: 'short', timeZone: 'UTC'}).formatToParts(0))` });
    cases.push({ expr: `new Intl.DateTimeFormat(${q(locale)}, {timeZone: 'UTC'}).formatRange(0, 86400000 * 40)` });
    for (const type of ['cardinal', 'ordinal']) {
      cases.push({ expr: `[${PLURAL_NUMBERS}].map((n) => new Intl.PluralRules(${q(locale)}, {type: ${q(type)}}).select(n)).join()` });
    }
    for (const unit of ['second', 'minute', 'hour', 'day', 'week', 'month', 'quarter', 'year']) {
      for (const numeric of ['always', 'auto']) {
        cases.push({ expr: `[-2, -1, 0, 1, 2, 1.5].map((n) => new Intl.RelativeTimeFormat(${q(locale)}, {numeric: ${q(numeric)}}).format(n, ${q(unit)})).join('|')` });
      }
      cases.push({ expr: `new Intl.RelativeTimeFormat(${q(locale)}, {style: 'short'}).format(-3, ${q(unit)})` });
    }
    for (const type of ['conjunction', 'disjunction', 'unit']) {
      cases.push({ expr: `new Intl.ListFormat(${q(locale)}, {type: ${q(type)}}).format(['a', 'b', 'c'])` });
    }
    for (const list of COLLATION_LISTS) {
      for (const options of COLLATOR_OPTIONS) {
        cases.push({ expr: `${q(list)}.sort(new Intl.Collator(${q(locale)}, ${q(options)}).compare).join(' | ')` });
      }
    }
    for (const key of ['locale', 'sensitivity', 'numeric', 'caseFirst']) {
      cases.push({ expr: `String(new Intl.Collator(${q(locale)}).resolvedOptions()[${q(key)}])` });
    }
    cases.push({ expr: `new Intl.DateTimeFormat(${q(locale)}).resolvedOptions().locale` });
    cases.push({ expr: `new Intl.NumberFormat(${q(locale)}).resolvedOptions().locale` });
  }
  return cases;
}
