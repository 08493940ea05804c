// Runs one WPT file under Node (the version running this process: the baseline is Node 20) in a
// fresh worker thread, so tests that patch globals cannot leak into the next file.
import { Worker } from 'node:worker_threads';
import { type FileResult, loadTest, missingFile, readResource, SHIM_SOURCE, summarize } from './files.js';

/** Wall-clock budget for one file under Node. */
export const NODE_FILE_TIMEOUT_MS = Number(process.env.FTJS_WPT_FILE_TIMEOUT_MS) || 20_000;

// Every .json the test or its scripts name, relative to the test's directory or the root, is handed
// to the worker up front (the shim reads resources synchronously).
function resourcesFor(root: string, base: string, sources: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const src of sources) {
    for (const m of src.matchAll(/["'`]([^"'`\s]+\.json)["'`]/g)) {
      const ref = m[1]!;
      const rel = ref.startsWith('/') ? ref.slice(1) : new URL(ref, `http://x/${base}`).pathname.slice(1);
      const text = readResource(root, rel);
      if (text !== undefined) out[rel] = text;
    }
  }
  return out;
}

export function runInNode(root: string, file: string): Promise<FileResult> {
  const test = loadTest(root, file);
  if (test === null) return Promise.resolve(missingFile(file));
  const resources = resourcesFor(
    root,
    test.base,
    test.scripts.map((s) => s.source),
  );
  return new Promise((resolve, reject) => {
    const worker = new Worker(new URL('./node-worker.mjs', import.meta.url), {
      workerData: { shim: SHIM_SOURCE, scripts: test.scripts, base: test.base, resources, timeoutMs: NODE_FILE_TIMEOUT_MS },
    });
    let settled = false;
    worker.once('message', (json: string) => {
      settled = true;
      resolve(summarize(file, json));
      void worker.terminate();
    });
    worker.once('error', (e) => {
      if (!settled) {
        settled = true;
        reject(e);
      }
    });
    worker.once('exit', (code) => {
      if (!settled) {
        settled = true;
        reject(new Error(`WPT ${file}: Node worker exited with ${code} before reporting`));
      }
    });
  });
}
