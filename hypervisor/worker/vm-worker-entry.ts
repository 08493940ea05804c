// The entry of the VM worker's CommonJS bundle (cli/cli-bundle-build.ts; cached-bundle.ts runs it):
// the engine starts compiling (on V8's background threads) before the rest of the worker initialises,
// so that the compile overlaps it. A failure is reported by the boot that needs the engine.

import { prepareEngine } from '../vm/engine.js';

void prepareEngine().catch(() => {});
void import('./vm-worker.js');
