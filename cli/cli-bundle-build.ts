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
 * Entry → the tsc output it replaces with a stub. The worker's stub loads the engine's module first and
 * starts compiling the engine (prepareEngine, on V8's background threads) before it loads the rest of
 * the worker: the compile then overlaps the worker's module loading instead of following it (the boot
 * request otherwise waited ~10 ms for it). The command's stub likewise spawns the VM worker of a VM
 * command before it loads the command's bundle (5–11 ms of CPU). Each first module's state is one (a
 * chunk shared with the bundle).
 */
const ENTRIES = [
  { name: 'ftjs', source: 'cli/ftjs.ts', stub: 'cli/ftjs.js', shebang: true, first: 'worker-spawn' },
  { name: 'vm-worker', source: 'hypervisor/worker/vm-worker.ts', stub: 'hypervisor/worker/vm-worker.js', shebang: false, first: 'engine' },
] as const;
/** Entries loaded only by a stub, ahead of its bundle, and what the stub calls of each. */
const FIRST = {
  engine: {
    source: 'hypervisor/vm/engine.ts',
    call: 'prepareEngine',
    comment: 'The engine compiles while the rest of the worker loads (a failure is reported by the boot that needs it).',
    onError: '.catch(() => {})',
  },
  'worker-spawn': { source: 'hypervisor/worker/worker-spawn.ts', call: 'prestartForArgv', comment: 'A command that runs a VM starts its worker before its own modules load.', onError: '' },
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

/** `import.meta.url` in a project module → the URL of its tsc output, so that relative lookups find the same files. */
const moduleUrls: Plugin = {
  name: 'ftjs-module-urls',
  setup(b) {
    b.onLoad({ filter: /\.ts$/ }, (args) => {
      if (args.path.includes(`${path.sep}node_modules${path.sep}`)) return undefined;
      const text = readFileSync(args.path, 'utf8');
      if (!text.includes('import.meta.url')) return { contents: text, loader: 'ts' };
      const output = path.join(DIST, path.relative(ROOT, args.path)).replace(/\.ts$/, '.js');
      const relative = path.relative(BUNDLE_DIR, output).split(path.sep).join('/');
      return { contents: text.replaceAll('import.meta.url', `new URL(${JSON.stringify(relative)}, import.meta.url).href`), loader: 'ts' };
    });
  },
};

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
    plugins: [moduleUrls],
    logLevel: 'warning',
    legalComments: 'none',
    // For --enable-source-maps: stack traces name the TypeScript sources, as tsc's output does.
    sourcemap: true,
  });
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
    const first = FIRST[entry.first];
    const load = `import { ${first.call} } from '${relative(entry.first)}';\n// ${first.comment}\nvoid ${first.call}()${first.onError};\nawait import('${relative(entry.name)}');\n`;
    writeFileSync(stub, `${entry.shebang ? '#!/usr/bin/env node\n' : ''}// Built by cli/cli-bundle-build.ts: the bundle of ${entry.source}.\n${load}`);
    if (entry.shebang) chmodSync(stub, 0o755);
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  await buildCliBundle();
}
