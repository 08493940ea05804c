// Bundles the `ftjs` command and the VM worker (issue 19, cold start): Node's ESM loader costs about a
// millisecond per module (resolve, read, compile, link), and `ftjs run` loaded ~100 modules on its main
// thread and ~60 in its worker before doing anything. `npm run build` runs this after tsc: it bundles
// both entries from the TypeScript sources into dist/bundle/ (shared code and each command's modules in
// chunks that load when that command runs, as the lazy imports of cli/ftjs.ts ask), and replaces tsc's
// dist/cli/ftjs.js and dist/hypervisor/worker/vm-worker.js with two-line stubs that load the bundles, so
// that every user of those paths (the bin, tests, benches, child nodes) runs the bundled code.
//
// Kept as they were: `import.meta.url` in a bundled module still names that module's file under dist/
// (the glue, the tracked wasm and the boot-image code hash are found next to it), and packages that
// find files next to themselves or match their own source text stay outside the bundle (EXTERNAL).

import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build, type Plugin } from 'esbuild';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DIST = path.join(ROOT, 'dist');
export const BUNDLE_DIR = path.join(DIST, 'bundle');

/**
 * Entry → the tsc output it replaces with a stub. The command's stub spawns the VM worker of a VM
 * command before it loads the command's bundle (5–11 ms of CPU). Its first module's state is one (a
 * chunk shared with the bundle).
 */
const ENTRIES = [{ name: 'ftjs', source: 'cli/ftjs.ts', stub: 'cli/ftjs.js', shebang: true, first: 'worker-spawn' }] as const;
/** Entries loaded only by a stub, ahead of its bundle, and what the stub calls of each. */
const FIRST = {
  'worker-spawn': { source: 'hypervisor/worker/worker-spawn.ts', call: 'prestartForArgv', comment: 'A command that runs a VM starts its worker before its own modules load.', onError: '' },
} as const;

/**
 * The VM worker is one CommonJS script (dist/bundle/vm-worker.cjs), not ES modules: Node 20 keeps no
 * compiled code of ES modules between processes, while a script compiled through vm.Script can be
 * compiled from V8's code cache (hypervisor/worker/code-cache.ts). Its loader is the worker's first
 * file (dist/hypervisor/worker/vm-worker.cjs, started by worker-spawn.ts); dist/hypervisor/worker/
 * vm-worker.js becomes a stub that runs the loader, for those who start the worker by that name.
 * In the script, `import.meta.url` is the loader's `__ftjsBundleUrl` (a file of dist/bundle/), and the
 * packages left outside (ES modules) load through its `__ftjsImport`.
 */
const WORKER = {
  entry: 'hypervisor/worker/vm-worker-entry.ts',
  bundle: 'vm-worker.cjs',
  loader: 'hypervisor/worker/vm-worker-loader.ts',
  loaderOut: 'hypervisor/worker/vm-worker.cjs',
  stub: 'hypervisor/worker/vm-worker.js',
} as const;

/**
 * Packages left to Node's loader: the engine (engine.ts recognises its emscripten imports by their
 * source text, which a bundler reprints), esbuild and pino-pretty (loaded on demand), and packages that
 * read files beside their own (etcd3's grpc protos) or are large and loaded only at first use (undici).
 * Everything else a command or the VM worker loads at start (commander, pino, the guest module lexer,
 * the source-map decoder) is bundled: left to Node's ESM loader, es-module-lexer and trace-mapping cost
 * ~4–5 ms of CPU each in every VM worker's start. ws is loaded by a require at the first dial or listen
 * (logging-channel/ws-transport.ts), so `ftjs run` never loads it.
 */
const EXTERNAL = ['@jitl/*', 'quickjs-emscripten-core', 'esbuild', 'pino-pretty', 'etcd3', '@grpc/*', 'undici', 'tr46', '@formatjs/*', 'fflate', '@exodus/*'];
/**
 * The worker's script keeps outside only the engine's emscripten glue (whose source text engine.ts
 * checks): quickjs-emscripten-core and the variant's own modules are plain code, and inside the script
 * they compile from its code cache too, where Node's ES module loader took ~5 ms of CPU for them.
 */
const WORKER_EXTERNAL = [...EXTERNAL.filter((e) => e !== '@jitl/*' && e !== 'quickjs-emscripten-core'), '@jitl/quickjs-wasmfile-release-sync/emscripten-module'];

/**
 * `import.meta.url` in a project module → the URL of its tsc output, so that relative lookups find the
 * same files; `base` is the URL of a file of dist/bundle/ in the output.
 */
const moduleUrls = (base: string): Plugin => ({
  name: 'ftjs-module-urls',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return { contents: text, loader: 'ts' };
      const output = path.join(DIST, path.relative(ROOT, args.path)).replace(/\.ts$/, '.js');
      const relative = path.relative(BUNDLE_DIR, output).split(path.sep).join('/');
      return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(relative)}, ${base}).href`), loader: 'ts' };
    });
  },
});

/** The worker bundle's `import("pkg")` of each package left outside → `__ftjsImport("pkg")`; any other import() of one fails the build. */
function routeExternalImports(text: string): string {
  const out = text.replace(/\bimport\((["'])([^"']+)\1\)/g, (call, _quote: string, specifier: string) =>
    WORKER_EXTERNAL.some((e) => (e.endsWith('/*') ? specifier.startsWith(e.slice(0, -1)) : specifier === e || specifier.startsWith(`${e}/`))) ? `__ftjsImport(${JSON.stringify(specifier)})` : call,
  );
  const left = /\bimport\((["'])(@jitl|quickjs-emscripten)/.exec(out);
  if (left) throw new Error(`worker bundle: an import() of an engine package was left unrouted: ${out.slice(left.index, left.index + 80)}`);
  if (!out.includes('__ftjsImport(')) throw new Error('worker bundle: no engine package is imported through __ftjsImport; has engine.ts changed how it loads them?');
  return out;
}

export async function buildCliBundle(): Promise<void> {
  rmSync(BUNDLE_DIR, { recursive: true, force: true });
  await build({
    entryPoints: Object.fromEntries(
      [...ENTRIES.map((e) => [e.name, e.source] as const), ...Object.entries(FIRST).map(([name, first]) => [name, first.source] as const)].map(([name, source]) => [name, path.join(ROOT, source)]),
    ),
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    outdir: BUNDLE_DIR,
    chunkNames: 'chunk-[hash]',
    external: EXTERNAL,
    // Bundled CommonJS packages (pino, commander, ws) call require() for Node's own modules.
    banner: { js: "import { createRequire as __ftjsCreateRequire } from 'node:module';\nconst require = __ftjsCreateRequire(import.meta.url);" },
    // A bundled module is marked so that the boot-image code hash covers the bundle that runs (boot-image.ts).
    define: { FTJS_BUNDLED: 'true' },
    plugins: [moduleUrls('import.meta.url')],
    logLevel: 'warning',
    legalComments: 'none',
    // For --enable-source-maps: stack traces name the TypeScript sources, as tsc's output does.
    sourcemap: true,
  });
  await buildWorker();
  mkdirSync(BUNDLE_DIR, { recursive: true });
  for (const entry of ENTRIES) {
    const stub = path.join(DIST, entry.stub);
    const relative = (name: string) => {
      const target = path
        .relative(path.dirname(stub), path.join(BUNDLE_DIR, `${name}.js`))
        .split(path.sep)
        .join('/');
      return target.startsWith('.') ? target : `./${target}`;
    };
    const first = FIRST[entry.first] as { call: string; comment: string; onError: string };
    const load = `import { ${first.call} } from '${relative(entry.first)}';\n// ${first.comment}\nvoid ${first.call}()${first.onError};\nawait import('${relative(entry.name)}');\n`;
    writeFileSync(stub, `${entry.shebang ? '#!/usr/bin/env node\n' : ''}// Built by cli/cli-bundle-build.ts: the bundle of ${entry.source}.\n${load}`);
    if (entry.shebang) chmodSync(stub, 0o755);
  }
}

/** The VM worker's CommonJS bundle, its loader, and the ES module stub that runs the loader (WORKER). */
async function buildWorker(): Promise<void> {
  const bundle = path.join(BUNDLE_DIR, WORKER.bundle);
  await build({
    entryPoints: [path.join(ROOT, WORKER.entry)],
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    outfile: bundle,
    external: WORKER_EXTERNAL,
    define: { FTJS_BUNDLED: 'true' },
    plugins: [moduleUrls('__ftjsBundleUrl')],
    logLevel: 'warning',
    legalComments: 'none',
  });
  writeFileSync(bundle, routeExternalImports(readFileSync(bundle, 'utf8')));
  const loaderOut = path.join(DIST, WORKER.loaderOut);
  const toBundle = path.relative(path.dirname(loaderOut), bundle).split(path.sep).join('/');
  await build({
    stdin: {
      contents: `import path from 'node:path';\nimport { runWorkerBundle } from './vm-worker-loader.js';\nrunWorkerBundle(path.join(__dirname, ${JSON.stringify(toBundle)}), (specifier) => import(specifier));\n`,
      resolveDir: path.join(ROOT, path.dirname(WORKER.loader)),
      sourcefile: 'vm-worker-loader-main.ts',
      loader: 'ts',
    },
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    outfile: loaderOut,
    logLevel: 'warning',
    legalComments: 'none',
  });
  writeFileSync(path.join(DIST, WORKER.stub), `// Built by cli/cli-bundle-build.ts: runs the VM worker's loader (${WORKER.loaderOut}).\nimport './vm-worker.cjs';\n`);
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildCliBundle();
}
