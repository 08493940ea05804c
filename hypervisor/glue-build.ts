// Bundles the guest web platform (hypervisor/guest/web/, and any npm polyfills it imports) into the
// one script a VM evaluates at boot. Runs at build time (`npm run build`), never on a node: the
// bundle is then read as a file, and travels in the boot config like the guest's own code.
//
// Big, rarely used parts (hypervisor/guest/lazy/: streams, compression) are bundled separately and
// appended after a marker (hypervisor/glue.ts, splitWebGlue): the VM evaluates only what precedes the
// marker at boot, and hands a lazy module's code to the guest when the guest first touches one of its
// globals. Parsing them at every boot would cost more than the rest of the platform together.

import { buildSync, type BuildOptions } from 'esbuild';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { LAZY_INTRINSICS, LAZY_MODULES_MARKER } from './glue.js';

/** Where the built glue lives, next to the compiled hypervisor. */
export const BUILT_WEB_GLUE = new URL('./guest/web.js', import.meta.url);
const WEB_ENTRY = new URL('../../hypervisor/guest/web/index.js', import.meta.url);
/** Lazy modules, by the name the guest asks for (hypervisor/guest/web/lazy.js). Order is part of the glue. */
const LAZY_ENTRIES: ReadonlyArray<[name: string, entry: URL]> = [
  ['streams', new URL('../../hypervisor/guest/lazy/streams.js', import.meta.url)],
  ['compression', new URL('../../hypervisor/guest/lazy/compression.js', import.meta.url)],
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
  return buildSync({ ...COMMON, entryPoints: [fileURLToPath(WEB_ENTRY)] }).outputFiles![0]!.text;
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

export function bundleWebGlue(): string {
  const lazy: Record<string, string> = {};
  for (const [name, entry] of LAZY_ENTRIES) lazy[name] = bundleLazy(entry);
  return `${bundleEager()}${LAZY_MODULES_MARKER}${JSON.stringify(lazy)}`;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = fileURLToPath(BUILT_WEB_GLUE);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, bundleWebGlue());
}
