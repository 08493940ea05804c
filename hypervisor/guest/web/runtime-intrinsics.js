// Hands the boot-time intrinsics (primordials.js) to the runtime glue (hypervisor/guest/runtime.js),
// a separate script evaluated after this bundle and before any guest code.
import * as primordials from './primordials.js';

globalThis.__ftjs_web.primordials = primordials;
