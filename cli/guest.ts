// The guest code of a node started from an entry file: bundled with esbuild (the default) or, with
// --no-bundle, the ES modules as they are. Runs once, at boot, in the CLI process.

import type { Logger } from 'pino';
import { readCachedBundle, writeCachedBundle } from '../hypervisor/vm/bundle-cache.js';
import { type GuestCode, loadGuest } from '../hypervisor/vm/sources.js';

export interface GuestFlags {
  /** false with --no-bundle. */
  bundle: boolean;
}

export async function prepareGuest(entry: string, flags: GuestFlags, logger?: Logger): Promise<GuestCode> {
  // The bundle of the last boot, when nothing it was built from has changed (bundle-cache.ts).
  const cached = flags.bundle === false ? null : readCachedBundle(entry);
  if (cached) {
    for (const warning of cached.warnings) logger?.warn({ guest: cached.entry }, `bundler warning: ${warning}`);
    logger?.info(
      { guest: cached.entry, projectRoot: cached.projectRoot, inputFiles: cached.inputFiles, bundleBytes: cached.sources[0]!.text.length, bundleCache: true },
      `bundled ${entry} (${cached.inputFiles} files): unchanged since the cached bundle`,
    );
    return { entry: cached.entry, sources: cached.sources, hash: cached.hash };
  }
  // Loaded here, not at the top: commands that never bundle (replay, inspect) do not pay for esbuild.
  const { bundleGuest, checkModuleSyntax, stopBundler } = await import('../hypervisor/vm/bundle.js');
  if (flags.bundle === false) {
    const code = loadGuest(entry, { checkSyntax: checkModuleSyntax });
    logger?.info({ guest: code.entry, modules: code.sources.length }, `loaded ${entry} unbundled (--no-bundle)`);
    return code;
  }
  // Once per process: esbuild's service is not needed again while the node runs.
  const buildStartedMs = Date.now();
  const bundled = await bundleGuest(entry).finally(() => stopBundler());
  await writeCachedBundle(entry, bundled.inputs, bundled, buildStartedMs);
  for (const warning of bundled.warnings) logger?.warn({ guest: bundled.entry }, `bundler warning: ${warning}`);
  const [module, map] = bundled.sources;
  logger?.info(
    {
      guest: bundled.entry,
      projectRoot: bundled.projectRoot,
      inputFiles: bundled.inputFiles,
      bundleBytes: module!.text.length,
      sourceMapBytes: map!.text.length,
      bundleMs: Math.round(bundled.bundleMs),
    },
    `bundled ${entry} (${bundled.inputFiles} files) in ${Math.round(bundled.bundleMs)} ms`,
  );
  return { entry: bundled.entry, sources: bundled.sources, hash: bundled.hash };
}
