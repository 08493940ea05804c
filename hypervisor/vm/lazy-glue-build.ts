// Bundles the guest glue that is NOT evaluated at boot: chunks a VM compiles on first use (the Intl
// polyfill, its locale data and its time-zone data; the legacy text encodings). Each chunk travels in the boot config beside
// the boot glue (hypervisor/vm/glue.ts), so a replay loads exactly the chunks the recording loaded, and a
// VM that never touches Intl pays nothing for it at boot.
//
// A chunk is one expression, `(function (Intl) { ... })`: the guest glue calls it with its own Intl
// object, so the polyfills' and the locale data's free references to `Intl` bind to that object, never
// to whatever the guest has put in `globalThis.Intl`.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { brotliCompressSync, constants as zlibConstants } from 'node:zlib';
import { build, type Plugin } from 'esbuild';

const INTL_DIR = fileURLToPath(new URL('../../../hypervisor/guest/intl/', import.meta.url));
const require = createRequire(import.meta.url);

/**
 * The locales whose data ships, by chunk; a chunk is named for the language (or language-REGION) of the
 * tags that load it. `en` is in the core chunk: it is the default.
 */
export const INTL_LOCALE_CHUNKS: Record<string, string[]> = {
  'en-GB': ['en-GB'],
  de: ['de'],
  es: ['es'],
  fr: ['fr'],
  ja: ['ja'],
  pt: ['pt'],
  zh: ['zh'],
};
const CORE_LOCALES = ['en'];
/** Packages with per-locale data, in the order their data is added. */
const DATA_PACKAGES = ['intl-pluralrules', 'intl-numberformat', 'intl-datetimeformat', 'intl-relativetimeformat', 'intl-listformat'];

async function bundle(contents: string, name: string): Promise<string> {
  const result = await build({
    stdin: { contents, resolveDir: INTL_DIR, sourcefile: `${name}.js`, loader: 'js' },
    bundle: true,
    write: false,
    format: 'iife',
    globalName: '__chunk',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2023',
    charset: 'utf8',
    minify: true,
    legalComments: 'none',
    keepNames: true,
    logLevel: 'silent',
    plugins: [dataAsJson, patchDateTimeFormat],
  });
  // The chunk's exports (if any) are what calling it returns.
  return `(function (Intl) {${result.outputFiles[0]!.text}return __chunk;})`;
}

// Locale and tz data files are object literals handed to Intl.X.__addLocaleData (or __addTZData). QuickJS
// compiles a large literal several times slower than JSON.parse reads the same data, so each is turned
// into JSON at build time. Plural rules data holds functions and stays as it is.
const DATA_FILE = /[\\/]@formatjs[\\/]intl-(numberformat|datetimeformat|relativetimeformat|listformat)[\\/](locale-data[\\/][^\\/]+|add-all-tz)\.js$/;
const dataAsJson: Plugin = {
  name: 'ftjs-intl-data-as-json',
  setup(build) {
    build.onLoad({ filter: DATA_FILE }, (args) => {
      const calls: string[] = [];
      const fakeIntl = new Proxy(
        {},
        {
          has: () => true,
          get: (_, ctor) => new Proxy({}, { get: (__, method) => (data: unknown) => calls.push(jsonCall(String(ctor), String(method), data)) }),
        },
      );
      new Function('Intl', readFileSync(args.path, 'utf8'))(fakeIntl);
      if (calls.length === 0) throw new Error(`${args.path} added no data`);
      return { contents: calls.join('\n'), loader: 'js' };
    });
  },
};

function jsonCall(ctor: string, method: string, data: unknown): string {
  if (ctor === 'DateTimeFormat' && method === '__addLocaleData') dropPatternKeys(data as DateTimeLocaleData);
  assertJsonSafe(data, `Intl.${ctor}.${method} data`);
  let json = JSON.stringify(data);
  // CLDR puts a narrow no-break space before AM/PM ("12:00\u202fAM"); Node 20 and browsers print a
  // plain space (code that parses toLocaleString output broke on U+202F), and so does ftjs.
  if (ctor === 'DateTimeFormat') json = json.replaceAll('\u202f', ' ');
  return `Intl.${ctor}.${method}(JSON.parse(${JSON.stringify(json)}));`;
}

interface DateTimeLocaleData {
  data: { formats: Record<string, Record<string, string>> };
}

// Besides CLDR's skeletons ("yMd Hms"), FormatJS's data lists each style pattern under its own text
// as a key ("y年M月d日 H:mm:ss"). Parsed, such a key has the same fields as a skeleton, and being listed
// first it wins the format matcher's ties: Japanese toLocaleString() became "1970年1月1日 0:00:00" where
// ICU gives "1970/1/1 0:00:00". The style patterns themselves live in dateFormat/timeFormat; only the
// duplicate keys go (a third of the formats, which also makes a locale's first use cheaper).
function dropPatternKeys(locale: DateTimeLocaleData): void {
  for (const formats of Object.values(locale.data.formats)) {
    for (const key of Object.keys(formats)) if (/[^A-Za-z0-9 ,-]/.test(key)) delete formats[key];
  }
}

/** Throws unless JSON holds `value` exactly (no functions, undefined, non-finite numbers or prototypes). */
function assertJsonSafe(value: unknown, where: string): void {
  if (value === null || typeof value === 'string' || typeof value === 'boolean') return;
  if (typeof value === 'number' && Number.isFinite(value)) return;
  if (Array.isArray(value)) return value.forEach((v, i) => assertJsonSafe(v, `${where}[${i}]`));
  if (typeof value === 'object' && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [k, v] of Object.entries(value as object)) assertJsonSafe(v, `${where}.${k}`);
    return;
  }
  throw new Error(`${where} cannot travel as JSON (${typeof value})`);
}

// Two patches to intl-datetimeformat make a locale's first use affordable in QuickJS. Each is a pair of
// files in hypervisor/guest/intl/patches/ (the original text and its replacement); the build fails if
// the original is no longer found, so an upgrade of the package cannot skip one silently.
//  * interval-match: each of a locale's ~500 skeletons looked for its interval format by parsing every
//    interval key again (500 x 700 parses); the parse of a key is pure, so it is memoized;
//  * parse-skeleton: every skeleton's range patterns were parsed up front, for formatRange; they are
//    parsed on first use.
const PATCHES_DIR = new URL('../../../hypervisor/guest/intl/patches/', import.meta.url);
const DATETIMEFORMAT_PATCHES = ['interval-match', 'parse-skeleton'];
const patchDateTimeFormat: Plugin = {
  name: 'ftjs-intl-patch-datetimeformat',
  setup(build) {
    build.onLoad({ filter: /[\\/]@formatjs[\\/]intl-datetimeformat[\\/]polyfill-force\.js$/ }, (args) => {
      let text = readFileSync(args.path, 'utf8');
      for (const patch of DATETIMEFORMAT_PATCHES) {
        const from = readFileSync(new URL(`${patch}.original.js`, PATCHES_DIR), 'utf8');
        const to = readFileSync(new URL(`${patch}.patched.js`, PATCHES_DIR), 'utf8');
        if (text.split(from).length !== 2) throw new Error(`${args.path}: the code patched by ${patch} has changed; review hypervisor/guest/intl/patches/${patch}.*`);
        text = text.replace(from, () => to);
      }
      return { contents: text, loader: 'js' };
    });
  },
};

function localeImports(locales: string[]): string {
  return locales.flatMap((locale) => DATA_PACKAGES.filter((pkg) => hasLocaleData(pkg, locale)).map((pkg) => `import '@formatjs/${pkg}/locale-data/${locale}.js';`)).join('\n');
}

function hasLocaleData(pkg: string, locale: string): boolean {
  try {
    require.resolve(`@formatjs/${pkg}/locale-data/${locale}.js`);
    return true;
  } catch {
    return false;
  }
}

/** Zone names of the bundled tz data, so that naming a zone (even UTC) does not load the whole data. */
function timeZoneNames(): string[] {
  const text = readFileSync(require.resolve('@formatjs/intl-datetimeformat/add-all-tz.js'), 'utf8');
  let packed: { zones: string[] } | undefined;
  const fakeIntl = { DateTimeFormat: { __addTZData: (d: { zones: string[] }) => void (packed = d) } };
  new Function('Intl', text)(fakeIntl);
  if (!packed) throw new Error('add-all-tz.js did not hand over its data');
  return packed.zones.map((z) => z.slice(0, z.indexOf('|'))).sort();
}

export async function bundleLazyGlue(): Promise<Record<string, string>> {
  const chunks: Record<string, string> = {};
  const localeChunks = Object.fromEntries(Object.keys(INTL_LOCALE_CHUNKS).map((language) => [language, `intl-${language}`]));
  chunks['intl'] = await bundle(
    [
      `import './core.js';`,
      localeImports(CORE_LOCALES),
      `import { setup } from './finish.js';`,
      `export const finish = (load) => setup(Intl, load, ${JSON.stringify(localeChunks)}, ${JSON.stringify(timeZoneNames())});`,
    ].join('\n'),
    'intl',
  );
  for (const [chunk, locales] of Object.entries(INTL_LOCALE_CHUNKS)) chunks[`intl-${chunk}`] = await bundle(localeImports(locales), `intl-${chunk}`);
  chunks['intl-tz'] = await bundle(`import '@formatjs/intl-datetimeformat/add-all-tz.js';`, 'intl-tz');
  // The legacy text encodings (hypervisor/guest/web/encoding.js loads it): 150 KB of index tables,
  // which compress to two thirds. Its `Intl` parameter is unused.
  chunks['encodings'] = await bundle(`export { decoderFor } from '../lazy/encodings.js';`, 'encodings');
  return Object.fromEntries(Object.entries(chunks).map(([name, text]) => [name, compressChunk(text)]));
}

/**
 * Chunks travel compressed (brotli, base64): 3.5 MB of code and data become about 0.5 MB in every
 * boot config, trace header and welcome frame. hypervisor/vm/glue.ts (lazyGlueSource) reverses it.
 */
function compressChunk(text: string): string {
  const bytes = Buffer.from(text, 'utf8');
  const packed = brotliCompressSync(bytes, {
    params: { [zlibConstants.BROTLI_PARAM_QUALITY]: 9, [zlibConstants.BROTLI_PARAM_LGWIN]: 22, [zlibConstants.BROTLI_PARAM_SIZE_HINT]: bytes.length },
  });
  return `${BROTLI_PREFIX}${packed.toString('base64')}`;
}
const BROTLI_PREFIX = 'br64:';
