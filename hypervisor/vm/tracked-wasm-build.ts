// Build step (`npm run build`): writes the engine's wasm with write tracking next to the compiled
// hypervisor (tracked-wasm.ts), so that no VM worker spends ~300 ms rewriting it at start.

import { prepareEngine } from './engine.js';

await prepareEngine();
