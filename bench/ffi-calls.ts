// Crossings into the engine per request: every QuickJS FFI call (quickjs-emscripten's QTS_* functions)
// made while a VM serves kv.js requests (50% PUT, 50% GET) in process, by function. Counts are exact,
// not timed. Since hypervisor/vm/engine-calls.ts the VM makes these calls on the FFI directly, without
// the handle API's Lifetimes, Scopes and generators; it keeps every call that can write the engine's
// memory (any wasm call may leave locals on the wasm stack), so the count barely moved (27 -> 26) while
// their host-side cost fell. bench/vm-request.ts times it.
//
//   npm run build && node dist/bench/ffi-calls.js [--requests N]

import { makeBootConfig } from '../hypervisor/vm/boot-config.js';
import { loadGuest } from '../hypervisor/vm/sources.js';
import { Vm } from '../hypervisor/vm/vm.js';
import { LivePort } from '../recorder/live-port.js';
import { argNumber, projectPath } from './util.js';

const requests = argNumber('--requests', 200);
const config = makeBootConfig(loadGuest(projectPath('guest-apps/kv.js')), {});
let vm: Vm | null = null;
const port = new LivePort({ push: (e) => vm!.sink.push(e) }, { taskBudgetMs: 10_000 });
vm = await Vm.create(config, port);
vm.bootLive();

// The FFI object is the context's own (private to quickjs-emscripten): wrap each function in place.
const ffi = (vm as unknown as { context: { ffi: Record<string, unknown> } }).context.ffi;
const counts = new Map<string, number>();
for (const name of Object.keys(ffi)) {
  const f = ffi[name];
  if (typeof f !== 'function') continue;
  ffi[name] = (...args: unknown[]) => {
    counts.set(name, (counts.get(name) ?? 0) + 1);
    return (f as (...a: unknown[]) => unknown)(...args);
  };
}

const encoder = new TextEncoder();
const serve = (i: number) => {
  const key = `k${i % 50}`;
  vm!.runLive(
    i % 2 === 0
      ? { kind: 'request', method: 'PUT', url: `http://bench/kv/${key}`, headers: [['content-type', 'text/plain']], body: encoder.encode(`value-${i}`) }
      : { kind: 'request', method: 'GET', url: `http://bench/kv/${key}`, headers: [], body: new Uint8Array(0) },
  );
};
for (let i = 0; i < requests; i++) serve(i); // warm: lazy glue, first-use paths
counts.clear();
for (let i = requests; i < 2 * requests; i++) serve(i);

const total = [...counts.values()].reduce((a, b) => a + b, 0);
const perRequest = (n: number) => Number((n / requests).toFixed(2));
console.log(
  JSON.stringify(
    {
      benchmark: 'ffi-calls',
      guest: 'kv.js',
      requests,
      ffiCallsPerRequest: perRequest(total),
      byFunction: Object.fromEntries([...counts.entries()].sort((a, b) => b[1] - a[1]).map(([name, n]) => [name, perRequest(n)])),
    },
    null,
    2,
  ),
);
