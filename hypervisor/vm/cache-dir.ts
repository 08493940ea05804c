// Where ftjs keeps its caches (boot images, guest bundles, the VM worker's V8 code cache): one directory,
// so that one setting moves or disables them all. Its own module so that the VM worker's loader
// (hypervisor/worker/cached-bundle.ts) can find it without loading the engine.

import os from 'node:os';
import path from 'node:path';

/** The cache directory the environment asks for: FTJS_BOOT_CACHE_DIR (a path, or "off"), else ~/.cache/ftjs/boot-images. */
export function bootCacheDirFromEnv(env: NodeJS.ProcessEnv = process.env): string | null {
  const configured = env.FTJS_BOOT_CACHE_DIR;
  if (configured === 'off') return null;
  if (configured) return path.resolve(configured);
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'ftjs', 'boot-images');
}
