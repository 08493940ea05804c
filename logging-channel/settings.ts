// The settings both ends of the logging channel share, validated once: each must be a positive
// integer, the heartbeat timeout must exceed the period, and frames must fit the handshake.

import { DEFAULT_HANDSHAKE_TIMEOUT_MS } from './auth.js';
import { DEFAULT_HEARTBEAT_MS, DEFAULT_HEARTBEAT_TIMEOUT_MS, DEFAULT_MAX_FRAME_BYTES, MIN_MAX_FRAME_BYTES } from './frames.js';

export interface ChannelSettings {
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** Bound on one WebSocket message in either direction, in bytes. */
  maxFrameBytes: number;
}

/** Throws a RangeError naming `who` (the channel class) and the setting. */
export function positiveInt(who: string, name: string, value: number): number {
  if (!Number.isSafeInteger(value) || value < 1) throw new RangeError(`${who}: ${name} must be a positive integer, got ${value}`);
  return value;
}

export function channelSettings(who: string, opts: Partial<ChannelSettings>): ChannelSettings {
  const heartbeatMs = positiveInt(who, 'heartbeatMs', opts.heartbeatMs ?? DEFAULT_HEARTBEAT_MS);
  const heartbeatTimeoutMs = positiveInt(who, 'heartbeatTimeoutMs', opts.heartbeatTimeoutMs ?? DEFAULT_HEARTBEAT_TIMEOUT_MS);
  if (heartbeatTimeoutMs <= heartbeatMs) throw new RangeError(`${who}: heartbeatTimeoutMs (${heartbeatTimeoutMs}) must exceed heartbeatMs (${heartbeatMs})`);
  const handshakeTimeoutMs = positiveInt(who, 'handshakeTimeoutMs', opts.handshakeTimeoutMs ?? DEFAULT_HANDSHAKE_TIMEOUT_MS);
  const maxFrameBytes = positiveInt(who, 'maxFrameBytes', opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES);
  if (maxFrameBytes < MIN_MAX_FRAME_BYTES) throw new RangeError(`${who}: maxFrameBytes must be at least ${MIN_MAX_FRAME_BYTES}, got ${maxFrameBytes}`);
  return { heartbeatMs, heartbeatTimeoutMs, handshakeTimeoutMs, maxFrameBytes };
}
