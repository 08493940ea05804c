// Bundles the guest web platform (hypervisor/guest/web/, and any npm polyfills it imports) into the
// one script a VM evaluates at boot. Runs at build time (`npm run build`), never on a node: the
// bundle is then read as a file, and travels in the boot config like the guest's own code.
//
// Big, rarely used parts (hypervisor/guest/lazy/: streams, compression) are bundled separately and
// appended after a marker (hypervisor/vm/glue.ts, splitWebGlue): the VM evaluates only what precedes the
// marker at boot, and hands a lazy module's code to the guest when the guest first touches one of its
// globals. Parsing them at every boot would cost more than the rest of the platform together.

import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { type BuildOptions, buildSync } from 'esbuild';
import { LAZY_INTRINSICS, LAZY_MODULES_MARKER } from './glue.js';
import { compactIdnaRegexes, compactIdnaTable } from './idna-data.js';
import { bundleLazyGlue } from './lazy-glue-build.js';

/** Where the built glue lives, next to the compiled hypervisor. */
export const BUILT_WEB_GLUE = new URL('./guest/web.js', import.meta.url);
/** The lazy chunks (hypervisor/vm/lazy-glue-build.ts), by name, as JSON. */
export const BUILT_LAZY_GLUE = new URL('./guest/lazy.json', import.meta.url);
const WEB_ENTRY = new URL('../../../hypervisor/guest/web/index.js', import.meta.url);
/** Lazy modules, by the name the guest asks for (hypervisor/guest/web/lazy.js). Order is part of the glue. */
const LAZY_ENTRIES: ReadonlyArray<[name: string, entry: URL]> = [
  ['streams', new URL('../../../hypervisor/guest/lazy/streams.js', import.meta.url)],
  ['compression', new URL('../../../hypervisor/guest/lazy/compression.js', import.meta.url)],
];
/** The name a lazy bundle's exports get inside its wrapper function. */
const LAZY_EXPORTS = '__ftjs_lazy_exports';

const COMMON: BuildOptions = {
  bundle: true,
  write: false,
  format: 'iife',
  platform: 'neutral',
  mainFields: ['module', 'main'],
  // QuickJS 2025-09 implements ES2023; nothing is lowered.
  target: 'es2023',
  charset: 'utf8',
  legalComments: 'inline',
  // The bundler renames classes it moves (class Request → _Request); the guest sees the spec names.
  keepNames: true,
  logLevel: 'silent',
};

function bundleEager(): string {
  return buildSync({
    ...COMMON,
    entryPoints: [fileURLToPath(WEB_ENTRY)],
    // navigator.userAgent names the ftjs version the glue was built from (hypervisor/guest/web/navigator.js).
    // idna.js's __FTJS_IDNA_SOURCE__: the UTS #46 implementation as source text.
    define: { __FTJS_VERSION__: JSON.stringify(packageVersion()), __FTJS_IDNA_SOURCE__: JSON.stringify(bundleIdnaSource()), ...lazyScriptDefines() },
  }).outputFiles![0]!.text;
}

/**
 * A lazy module is the source of one function expression: it takes the imports the eager platform
 * hands it (`__ftjs_imports`) and the intrinsics captured at boot (shadowing the globals of those
 * names, which the guest may have replaced by the time it first uses the module), and returns the
 * module's exports. Minified: it is parsed inside a guest task, on the guest's CPU budget.
 */
function bundleLazy(entry: URL): string {
  const code = buildSync({ ...COMMON, entryPoints: [fileURLToPath(entry)], globalName: LAZY_EXPORTS, minify: true, legalComments: 'none' }).outputFiles![0]!.text;
  return `(function (__ftjs_imports, ${LAZY_INTRINSICS.join(', ')}) {\n${code}\nreturn ${LAZY_EXPORTS};\n})`;
}

const IDNA_ENTRY = new URL('../../../hypervisor/guest/web/idna-impl.js', import.meta.url);

// The UTS #46 implementation as one expression whose value is idna-impl.js's exports. It travels
// in the glue as a string that idna.js evaluates on first use (see there for why).
function bundleIdnaSource(): string {
  const result = buildSync({
    entryPoints: [fileURLToPath(IDNA_ENTRY)],
    bundle: true,
    write: false,
    format: 'iife',
    globalName: '__idna',
    platform: 'neutral',
    mainFields: ['module', 'main'],
    target: 'es2023',
    charset: 'utf8',
    minify: true,
    legalComments: 'inline',
    logLevel: 'silent',
    define: {
      __FTJS_IDNA_TABLE__: JSON.stringify(compactIdnaTable()),
      __FTJS_IDNA_REGEXES__: JSON.stringify(compactIdnaRegexes()),
    },
  });
  // The function scope keeps `var __idna` out of the guest's globals.
  return `(function () {\n${result.outputFiles[0]!.text}\nreturn __idna;\n})()`;
}

export function bundleWebGlue(): string {
  const lazy: Record<string, string> = {};
  for (const [name, entry] of LAZY_ENTRIES) lazy[name] = bundleLazy(entry);
  return `${bundleEager()}${LAZY_MODULES_MARKER}${JSON.stringify(lazy)}`;
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

// Big, rarely used polyfills are only strings at boot: each becomes the text of a script whose
// completion value is its exports, handed to the glue as a constant (`define`), and a web module
// evaluates it (indirect eval) when the guest first uses it. First use is a guest action, so replay
// evaluates it at the same point.
const LAZY_SCRIPTS: Record<string, string> = {
  __FTJS_LAZY_URLPATTERN__: "export { URLPattern } from 'urlpattern-polyfill/urlpattern';",
};
function lazyScriptDefines(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, contents] of Object.entries(LAZY_SCRIPTS)) {
    const inner = buildSync({
      stdin: { contents, resolveDir: fileURLToPath(new URL('../../../', import.meta.url)), loader: 'js' },
      bundle: true,
      write: false,
      format: 'iife',
      globalName: '__ftjs_lazy',
      // Only evaluated on first use, never read: minified, it costs less to carry in every boot.
      minify: true,
      platform: 'neutral',
      mainFields: ['module', 'main'],
      target: 'es2023',
      charset: 'utf8',
      legalComments: 'inline',
      keepNames: true,
      logLevel: 'silent',
    });
    // The IIFE's `var` becomes a local of the wrapper, so evaluating the text defines no global.
    out[name] = JSON.stringify(`(function () {\n${inner.outputFiles[0]!.text}\nreturn __ftjs_lazy;\n})()`);
  }
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = fileURLToPath(BUILT_WEB_GLUE);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, bundleWebGlue());
  writeFileSync(fileURLToPath(BUILT_LAZY_GLUE), JSON.stringify(await bundleLazyGlue()));
}
