// Runs a bundle built as one CommonJS script (cli/cli-bundle-build.ts: the VM worker's, and the `ftjs`
// command's), compiled with V8's code cache (code-cache.ts): Node 20 compiles ES modules from source at
// every start, and the two threads of a cold start spent ~20–25 ms of CPU each doing it. The loaders
// that call this (built by cli-bundle-build.ts as dist/hypervisor/worker/vm-worker.cjs and
// dist/cli/ftjs.cjs) are small CommonJS files: a CommonJS worker also starts ~2–3 ms of CPU
// sooner than an ES module one.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bootCacheDirFromEnv } from '../vm/cache-dir.js';
import { type CachedScript, compileCached } from './code-cache.js';

/**
 * What a bundle's script gets from its loader: CommonJS's own five, the URL its `import.meta.url`s are
 * relative to (a file of dist/bundle/), an import() for the packages left outside it (ES modules), its
 * code cache (to save once the start's code has compiled), and modules it shares with the loader.
 */
export const BUNDLE_PARAMS = ['exports', 'require', 'module', '__filename', '__dirname', '__ftjsBundleUrl', '__ftjsImport', '__ftjsCodeCache', '__ftjsShared'] as const;

/** Wraps a CommonJS bundle's text as one function of BUNDLE_PARAMS (its first line stays line 1; a shebang becomes a comment). */
export function wrapBundle(text: string): string {
  return `(function (${BUNDLE_PARAMS.join(', ')}) {${text.startsWith('#!') ? `//${text}` : text}\n})`;
}

/**
 * Loads and runs the bundle at `file`; `importer` loads the packages left outside it, `shared` are the
 * loader's own modules that the bundle uses too (one instance of their state). Returns its code cache.
 */
export function runCachedBundle(file: string, importer: (specifier: string) => Promise<unknown>, shared: Record<string, unknown> = {}): CachedScript {
  const compiled = compileCached({ source: wrapBundle(readFileSync(file, 'utf8')), filename: file, dir: bootCacheDirFromEnv() });
  const run = compiled.script.runInThisContext() as (...args: unknown[]) => void;
  const module = { exports: {} };
  const bundleUrl = pathToFileURL(path.join(path.dirname(file), 'bundle.js')).href;
  run(module.exports, createRequire(file), module, file, path.dirname(file), bundleUrl, importer, compiled, shared);
  return compiled;
}
