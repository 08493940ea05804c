// The Node 20 baseline: runs one WPT file in this worker thread's realm (Node's own URL, Headers,
// streams, crypto.subtle, ...) with the same harness shim and the same virtual timers as the guest.
// Node's native async work (Blob reads, crypto) completes on real time, so when no virtual timer is
// due the driver yields to the real event loop for a moment.
import { workerData, parentPort } from 'node:worker_threads';
import { runInThisContext } from 'node:vm';

const { shim, scripts, base, resources, timeoutMs } = workerData;

globalThis.__wpt_read = (rel) => resources[rel];
globalThis.__wpt_base = base;
const realSetImmediate = setImmediate;
const realSetTimeout = setTimeout;
runInThisContext(shim, { filename: 'wpt-shim.js' });
for (const script of scripts) {
  try {
    runInThisContext(script.source, { filename: script.name });
  } catch (e) {
    globalThis.__wpt.harnessError(`${script.name}: ${e && e.name}: ${e && e.message}`);
    break;
  }
}
process.on('unhandledRejection', () => {});
process.on('uncaughtException', (e) => globalThis.__wpt.harnessError(`uncaught: ${e && e.message}`));
// A file whose open subtests make no progress for QUIET_MS of real time (no virtual timer left,
// no result coming from native work) is finished, and those subtests time out.
const QUIET_MS = 5000;
const deadline = Date.now() + timeoutMs;
let lastProgress = Date.now();
let lastCount = -1;
while (Date.now() <= deadline) {
  await new Promise((resolve) => realSetImmediate(resolve));
  if (!globalThis.__wpt.pending()) break;
  const count = globalThis.__wpt.progress();
  if (count !== lastCount) { lastCount = count; lastProgress = Date.now(); }
  if (globalThis.__wpt.fireNextTimer()) continue;
  if (Date.now() - lastProgress > QUIET_MS) break;
  await new Promise((resolve) => realSetTimeout(resolve, 2));
}
parentPort.postMessage(globalThis.__wpt.finish());
