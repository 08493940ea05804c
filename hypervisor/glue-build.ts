// Bundles the guest web platform (hypervisor/guest/web/, and any npm polyfills it imports) into the
// one script a VM evaluates at boot. Runs at build time (`npm run build`), never on a node: the
// bundle is then read as a file, and travels in the boot config like the guest's own code.

import { buildSync } from 'esbuild';
import { compactIdnaRegexes, compactIdnaTable } from './idna-data.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Where the built glue lives, next to the compiled hypervisor. */
export const BUILT_WEB_GLUE = new URL('./guest/web.js', import.meta.url);
const WEB_ENTRY = new URL('../../hypervisor/guest/web/index.js', import.meta.url);

const IDNA_ENTRY = new URL('../../hypervisor/guest/web/idna-impl.js', import.meta.url);

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
  const result = buildSync({
    entryPoints: [fileURLToPath(WEB_ENTRY)],
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
    // idna.js's __FTJS_IDNA_SOURCE__: the UTS #46 implementation as source text.
    define: { __FTJS_IDNA_SOURCE__: JSON.stringify(bundleIdnaSource()) },
    logLevel: 'silent',
  });
  return result.outputFiles[0]!.text;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const out = fileURLToPath(BUILT_WEB_GLUE);
  mkdirSync(path.dirname(out), { recursive: true });
  writeFileSync(out, bundleWebGlue());
}
