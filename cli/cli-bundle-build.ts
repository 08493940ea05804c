// Bundles the `ftjs` command and the VM worker (issue 19, cold start): Node's ESM loader costs about a
// millisecond per module (resolve, read, compile, link), and `ftjs run` loaded ~100 modules on its main
// thread and ~60 in its worker before doing anything. `npm run build` runs this after tsc: it bundles
// the command from the TypeScript sources into dist/bundle/ (shared code and each command's modules in
// chunks that load when that command runs, as the lazy imports of cli/ftjs.ts ask), and the VM worker
// into one CommonJS script that compiles from V8's code cache (WORKER below). tsc's dist/cli/ftjs.js and
// dist/hypervisor/worker/vm-worker.js become stubs that load the bundles, so that every user of those
// paths (the bin, tests, benches, child nodes) runs the bundled code.
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
 * The command and the VM worker are each one CommonJS script in dist/bundle/, not ES modules: Node 20
 * keeps no compiled code of ES modules between processes, while a script compiled through vm.Script
 * can be compiled from V8's code cache (hypervisor/worker/code-cache.ts). Each script's loader, a small
 * CommonJS file, compiles and runs it (hypervisor/worker/cached-bundle.ts). In a script,
 * `import.meta.url` is the loader's `__ftjsBundleUrl` (a file of dist/bundle/), and the packages left
 * outside that are ES modules load through its `__ftjsImport`. tsc's outputs at the stub paths become
 * ES module stubs that run the loaders, for those who start them by those names.
 *
 * The command's loader spawns the VM worker of a VM command before its script loads (the worker is
 * the slower thread); the script then uses the loader's instances of the modules in SHARED (the
 * prestarted worker, the priority raised for it) instead of copies of its own.
 */
const COMMAND = {
  entry: 'cli/ftjs.ts',
  bundle: 'ftjs.cjs',
  loaderOut: 'cli/ftjs.cjs',
  stub: 'cli/ftjs.js',
} as const;
const WORKER = {
  entry: 'hypervisor/worker/vm-worker-entry.ts',
  bundle: 'vm-worker.cjs',
  loaderOut: 'hypervisor/worker/vm-worker.cjs',
  stub: 'hypervisor/worker/vm-worker.js',
} as const;
/** Modules whose state the command's script shares with its loader: name → source. */
const SHARED = { workerSpawn: 'hypervisor/worker/worker-spawn.ts', priority: 'hypervisor/worker/priority.ts' } as const;
/**
 * The command's script saves its code cache this long after it starts: by then a command's start has
 * compiled (a VM command's first boot), and the save (~2–5 ms) runs once per build and Node version.
 */
const COMMAND_CODE_CACHE_DELAY_MS = 300;
/** Node's flags for the `ftjs` command started as the package's bin (see buildLoader). */
const BIN_NODE_FLAGS = '--v8-pool-size=1';

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
const ENGINE_GLUE = '@jitl/quickjs-wasmfile-release-sync/emscripten-module';
const WORKER_EXTERNAL = [...EXTERNAL.filter((e) => e !== '@jitl/*' && e !== 'quickjs-emscripten-core'), ENGINE_GLUE];

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
function routeExternalImports(text: string, external: string[]): string {
  const out = text.replace(/\bimport\((["'])([^"']+)\1\)/g, (call, _quote: string, specifier: string) =>
    external.some((e) => (e.endsWith('/*') ? specifier.startsWith(e.slice(0, -1)) : specifier === e || specifier.startsWith(`${e}/`))) ? `__ftjsImport(${JSON.stringify(specifier)})` : call,
  );
  const left = /\bimport\((["'])(@jitl|quickjs-emscripten)/.exec(out);
  if (left) throw new Error(`bundle: an import() of an engine package was left unrouted: ${out.slice(left.index, left.index + 80)}`);
  return out;
}

/** Imports of a SHARED module → the loader's instance (`__ftjsShared`). */
const sharedModules: Plugin = {
  name: 'ftjs-shared-modules',
  setup(b) {
    const bySource = new Map(Object.entries(SHARED).map(([name, source]) => [path.join(ROOT, source), name]));
    b.onResolve({ filter: /\.js$/ }, (args) => {
      if (args.namespace !== 'file' || !args.path.startsWith('.')) return undefined;
      const name = bySource.get(path.resolve(args.resolveDir, args.path).replace(/\.js$/, '.ts'));
      return name ? { path: name, namespace: 'ftjs-shared' } : undefined;
    });
    b.onLoad({ filter: /.*/, namespace: 'ftjs-shared' }, (args) => ({ contents: `module.exports = __ftjsShared[${JSON.stringify(args.path)}];`, loader: 'js' }));
  },
};

/** One CommonJS script of `entry` at dist/bundle/`bundle`, its ES module imports of `external` routed to `__ftjsImport`. */
async function buildScript(entry: string, bundle: string, external: string[], plugins: Plugin[] = []): Promise<string> {
  const file = path.join(BUNDLE_DIR, bundle);
  await build({
    entryPoints: [path.join(ROOT, entry)],
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    outfile: file,
    external,
    // A bundled module is marked so that the boot-image code hash covers the bundle that runs (boot-image.ts).
    define: { FTJS_BUNDLED: 'true' },
    plugins: [...plugins, moduleUrls('__ftjsBundleUrl')],
    logLevel: 'warning',
    legalComments: 'none',
  });
  writeFileSync(file, routeExternalImports(readFileSync(file, 'utf8'), external));
  return file;
}

/** A loader (CommonJS, `main` with cached-bundle.ts and what it imports bundled in) at dist/`out`, and the stub at dist/`stub` that runs it. */
async function buildLoader(main: string, out: string, stub: string, shebang: boolean): Promise<void> {
  const file = path.join(DIST, out);
  await build({
    stdin: { contents: main, resolveDir: path.join(ROOT, path.dirname(out)), sourcefile: `${path.basename(out, '.cjs')}-main.ts`, loader: 'ts' },
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    outfile: file,
    define: { FTJS_BUNDLED: 'true' },
    // The loader's own modules (worker-spawn.ts) find files as from dist/bundle/, as in the scripts.
    // The command's loader is the package's bin: a CommonJS entry spares Node's ES module loader
    // (~5 ms of the start to the worker's spawn, measured against the ES module stub). One V8 platform
    // thread: on a cold start the VM worker competed with V8's background compile threads (wasm
    // tier-up) for the cores; hono-60k's first 200 came 21% sooner (181.6 against 231.3 ms, kv.js
    // 131.9 against 135.1, medians of 7 alternating starts), and `ftjs run`'s throughput was the same
    // (1.00 mix, 0.99 GET, 3 alternating rounds). A flag of Node's own start, so it rides the shebang.
    banner: {
      js: `${shebang ? `#!/usr/bin/env -S node ${BIN_NODE_FLAGS}\n` : ''}const __ftjsBundleUrl = require('node:url').pathToFileURL(require('node:path').join(__dirname, ${JSON.stringify(path.relative(path.dirname(file), path.join(BUNDLE_DIR, 'bundle.js')).split(path.sep).join('/'))})).href;`,
    },
    plugins: [moduleUrls('__ftjsBundleUrl')],
    logLevel: 'warning',
    legalComments: 'none',
  });
  const stubFile = path.join(DIST, stub);
  // A require, not an import: Node's ES module loader would parse the CommonJS file for its exports first (~2 ms of CPU).
  writeFileSync(
    stubFile,
    `${shebang ? '#!/usr/bin/env node\n' : ''}// Built by cli/cli-bundle-build.ts: runs the loader ${out}.\nimport { createRequire } from 'node:module';\ncreateRequire(import.meta.url)('./${path.basename(out)}');\n`,
  );
  if (shebang) {
    chmodSync(stubFile, 0o755);
    chmodSync(file, 0o755);
  }
}

const relativeTo = (from: string, to: string) =>
  path
    .relative(path.dirname(path.join(DIST, from)), to)
    .split(path.sep)
    .join('/');

export async function buildCliBundle(): Promise<void> {
  rmSync(BUNDLE_DIR, { recursive: true, force: true });
  mkdirSync(BUNDLE_DIR, { recursive: true });
  const worker = await buildScript(WORKER.entry, WORKER.bundle, WORKER_EXTERNAL);
  if (!readFileSync(worker, 'utf8').includes(`__ftjsImport(${JSON.stringify(ENGINE_GLUE)})`)) {
    throw new Error("worker bundle: the engine's glue is not imported through __ftjsImport; has engine.ts changed how it loads it?");
  }
  await buildLoader(
    // The engine's glue as CommonJS (the package's `require` build of it): an ES module import would
    // start Node's ES module loader in the worker for this one file, ~4 ms of its CPU before the boot.
    `import path from 'node:path';\nimport { runCachedBundle } from '../../hypervisor/worker/cached-bundle.js';\nconst glue = ${JSON.stringify(ENGINE_GLUE)};\nrunCachedBundle(path.join(__dirname, ${JSON.stringify(relativeTo(WORKER.loaderOut, worker))}), (specifier) => (specifier === glue ? Promise.resolve(require(glue)) : import(specifier)));\n`,
    WORKER.loaderOut,
    WORKER.stub,
    false,
  );
  const command = await buildScript(COMMAND.entry, COMMAND.bundle, EXTERNAL, [sharedModules]);
  const shared = Object.entries(SHARED).map(([name, source]) => `import * as ${name} from '../${source.replace(/\.ts$/, '.js')}';`);
  await buildLoader(
    [
      "import path from 'node:path';",
      "import { runCachedBundle } from '../hypervisor/worker/cached-bundle.js';",
      ...shared,
      '// A command that runs a VM starts its worker before its own script loads.',
      'workerSpawn.prestartForArgv();',
      `const cache = runCachedBundle(path.join(__dirname, ${JSON.stringify(relativeTo(COMMAND.loaderOut, command))}), (specifier) => import(specifier), { ${Object.keys(SHARED).join(', ')} });`,
      "for (const problem of cache.problems) process.stderr.write('ftjs: ' + problem + '\\n');",
      `setTimeout(cache.save, ${COMMAND_CODE_CACHE_DELAY_MS}).unref();`,
    ].join('\n'),
    COMMAND.loaderOut,
    COMMAND.stub,
    true,
  );
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildCliBundle();
}
