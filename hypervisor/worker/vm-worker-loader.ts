// The VM worker's first module when built (cli/cli-bundle-build.ts makes it the CommonJS file
// dist/hypervisor/worker/vm-worker.cjs, which worker-spawn.ts starts): it compiles the worker's bundle,
// one CommonJS script (dist/bundle/vm-worker.cjs), with V8's code cache (code-cache.ts), and runs it.
// A CommonJS worker also starts ~2–3 ms of CPU sooner than an ES module one.

import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { bootCacheDirFromEnv } from '../vm/cache-dir.js';
import { compileCached } from './code-cache.js';

/** What the worker's bundle gets from its loader (see `CodeCacheHook` in vm-worker.ts). */
export const BUNDLE_PARAMS = ['exports', 'require', 'module', '__filename', '__dirname', '__ftjsBundleUrl', '__ftjsImport', '__ftjsCodeCache'] as const;

/** Wraps a CommonJS bundle's text as one function of BUNDLE_PARAMS (its first line stays line 1). */
export function wrapBundle(text: string): string {
  return `(function (${BUNDLE_PARAMS.join(', ')}) {${text}\n})`;
}

/** Loads and runs the bundle at `file`: `importer` loads the packages left outside it (ES modules). */
export function runWorkerBundle(file: string, importer: (specifier: string) => Promise<unknown>): void {
  const compiled = compileCached({ source: wrapBundle(readFileSync(file, 'utf8')), filename: file, dir: bootCacheDirFromEnv() });
  const run = compiled.script.runInThisContext() as (...args: unknown[]) => void;
  const module = { exports: {} };
  // import.meta.url of the bundle's modules is taken relative to the bundle directory (cli-bundle-build.ts).
  const bundleUrl = pathToFileURL(path.join(path.dirname(file), 'vm-worker.js')).href;
  run(module.exports, createRequire(file), module, file, path.dirname(file), bundleUrl, importer, { problems: compiled.problems, cache: compiled.cache, save: compiled.save });
}
