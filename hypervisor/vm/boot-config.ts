// The boot config is everything a VM is booted from: guest sources, env, limits. It is the trace
// header's payload and what a backup receives from its primary, so a replay boots the very same VM.

import { STATE_HASH_SCHEME, type TraceHeader } from '../../logging-channel/trace-format.js';
import { BOOT_FORMAT } from './boot-image.js';
import { ENGINE_NAME, ENGINE_VERSION, engineWasmSha256 } from './engine.js';
import { type Glue, glueHash, localGlue } from './glue.js';
import { DEFAULT_LIMITS, type VmLimits } from './limits.js';
import { type GuestCode, guestHash, sha256Hex } from './sources.js';
import type { BootConfig } from './vm.js';

export class BootConfigError extends Error {
  override name = 'BootConfigError';
}

/**
 * The lazy web modules worth loading in the boot task for `sources`: streams (69 KB, ~40 ms of CPU on a
 * first use that runs on cold wasm) when the guest's code names a stream or a body, as Hono's does
 * (its Context copies a response with `new Response(res.body, res)`). In the boot task they end up in
 * the guest's boot image; a guest that names neither keeps its smaller boot (and memory) as it was.
 */
const STREAMS_HINT = /\bReadableStream\b|\.body\b/;
export const PRELOADABLE = ['streams'];

export function preloadFor(sources: Array<{ text: string }>): string[] {
  return sources.some((s) => STREAMS_HINT.test(s.text)) ? ['streams'] : [];
}

export function makeBootConfig(guest: GuestCode, env: Record<string, string>, limits: Partial<VmLimits> = {}, crons: string[] = []): BootConfig {
  const preload = preloadFor(guest.sources);
  return {
    entry: guest.entry,
    sources: guest.sources,
    guestHash: guest.hash,
    env,
    limits: { ...DEFAULT_LIMITS, ...limits },
    glue: localGlue(),
    bootFormat: BOOT_FORMAT,
    ...(crons.length > 0 ? { crons } : {}),
    ...(preload.length > 0 ? { preload } : {}),
  };
}

/**
 * The header of a trace of `config`. With `outputsMaxBytes` > 0 the trace also keeps what each task
 * emitted, up to that many bytes per task (format 2); otherwise it is a format-1 trace.
 */
export function traceHeaderFor(config: BootConfig, node?: string, opts: { outputsMaxBytes?: number } = {}): TraceHeader {
  const outputsMaxBytes = opts.outputsMaxBytes ?? 0;
  return {
    formatVersion: outputsMaxBytes > 0 ? 2 : 1,
    ...(outputsMaxBytes > 0 ? { outputs: { maxBytesPerTask: outputsMaxBytes } } : {}),
    stateHash: STATE_HASH_SCHEME,
    engine: { name: ENGINE_NAME, version: ENGINE_VERSION, wasmSha256: engineWasmSha256() },
    guest: { entry: config.entry, sources: config.sources, hash: config.guestHash },
    // The cron schedule travels with the boot config, so a backup fires it after go-live.
    boot: {
      env: config.env,
      limits: config.limits,
      glue: config.glue,
      ...(config.bootFormat !== undefined ? { format: config.bootFormat } : {}),
      ...(config.crons ? { crons: config.crons } : {}),
      ...(config.preload ? { preload: config.preload } : {}),
    },
    createdAt: new Date().toISOString(),
    ...(node ? { node } : {}),
  };
}

/** Checks that this build can replay what `header` describes, and rebuilds the boot config from it. */
export function bootConfigFromTrace(header: TraceHeader, where: string): BootConfig {
  const engine = `${header.engine.name}@${header.engine.version}`;
  if (header.engine.name !== ENGINE_NAME || header.engine.version !== ENGINE_VERSION) {
    throw new BootConfigError(`${where}: recorded with engine ${engine}; this ftjs runs ${ENGINE_NAME}@${ENGINE_VERSION} and cannot replay it exactly`);
  }
  if (header.engine.wasmSha256 !== engineWasmSha256()) {
    throw new BootConfigError(`${where}: recorded with a different build of ${engine} (wasm sha256 ${header.engine.wasmSha256.slice(0, 12)}…, this one ${engineWasmSha256().slice(0, 12)}…)`);
  }
  for (const source of header.guest.sources) {
    if (sha256Hex(source.text) !== source.sha256) throw new BootConfigError(`${where}: guest source "${source.name}" does not match its recorded hash`);
  }
  if (guestHash(header.guest.sources) !== header.guest.hash) throw new BootConfigError(`${where}: guest hash does not match its sources`);
  const boot = header.boot as { env?: Record<string, string>; limits?: Partial<VmLimits>; glue?: Glue; crons?: string[]; format?: number; preload?: unknown };
  if (boot.preload !== undefined && (!Array.isArray(boot.preload) || boot.preload.some((name) => !PRELOADABLE.includes(name as string)))) {
    throw new BootConfigError(`${where}: the boot config's preload ${JSON.stringify(boot.preload)} names a module this ftjs cannot load at boot (it knows ${PRELOADABLE.join(', ')})`);
  }
  const glue = boot.glue;
  if (!glue || typeof glue.web !== 'string' || typeof glue.runtime !== 'string') throw new BootConfigError(`${where}: no hypervisor glue in the boot config (written by an older ftjs?)`);
  if (glue.lazy !== undefined && (typeof glue.lazy !== 'object' || glue.lazy === null || Object.values(glue.lazy).some((text) => typeof text !== 'string'))) {
    throw new BootConfigError(`${where}: the hypervisor glue's lazy chunks are malformed`);
  }
  if (glueHash(glue.web, glue.runtime, glue.lazy) !== glue.sha256) throw new BootConfigError(`${where}: the hypervisor glue does not match its recorded hash`);
  return {
    glue,
    entry: header.guest.entry,
    sources: header.guest.sources,
    guestHash: header.guest.hash,
    env: boot.env ?? {},
    limits: { ...DEFAULT_LIMITS, ...(boot.limits ?? {}) },
    ...(Array.isArray(boot.crons) && boot.crons.length > 0 ? { crons: boot.crons.map(String) } : {}),
    // Absent in traces written before boot formats: the original sequence.
    ...(boot.format !== undefined ? { bootFormat: boot.format } : {}),
    ...(Array.isArray(boot.preload) && boot.preload.length > 0 ? { preload: boot.preload.map(String) } : {}),
  };
}
