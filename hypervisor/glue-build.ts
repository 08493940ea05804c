// Bundles the guest web platform (hypervisor/guest/web/, and any npm polyfills it imports) into the
// one script a VM evaluates at boot. Runs at build time (`npm run build`), never on a node: the
// bundle is then read as a file, and travels in the boot config like the guest's own code.

import { buildSync } from 'esbuild';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

/** Where the built glue lives, next to the compiled hypervisor. */
export const BUILT_WEB_GLUE = new URL('./guest/web.js', import.meta.url);
const WEB_ENTRY = new URL('../../hypervisor/guest/web/index.js', import.meta.url);

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
    logLevel: 'silent',
    // navigator.userAgent names the ftjs version the glue was built from (hypervisor/guest/web/navigator.js).
    define: { __FTJS_VERSION__: JSON.stringify(packageVersion()), ...lazyScriptDefines() },
  });
  return result.outputFiles[0]!.text;
}

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
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
      stdin: { contents, resolveDir: fileURLToPath(new URL('../../', import.meta.url)), loader: 'js' },
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
}
