// What the primary and the backup shells share: pair settings and their defaults, the engine
// identity both ends of the logging channel must agree on, the tick that drives the role machine,
// and the node's HTTP face.

import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Logger } from 'pino';
import { ENGINE_NAME, ENGINE_VERSION, engineWasmSha256 } from './engine.js';
import type { RoleAction, RoleConfig, RoleInput, RoleMachine } from './role.js';

export interface PairSettings {
  heartbeatMs: number;
  heartbeatTimeoutMs: number;
  maxLagMs: number;
  /** Bound on the log a primary keeps for its backup (unacknowledged entries and history). */
  maxLogBufferBytes: number;
  claimRetryMs: number;
}

/** Why a node stopped for good, and the exit code its process ends with. */
export interface HaltEvent {
  reason: string;
  exitCode: number;
}

export const DEFAULT_HEARTBEAT_MS = 100;
export const DEFAULT_PAIR_SETTINGS: PairSettings = {
  heartbeatMs: DEFAULT_HEARTBEAT_MS,
  heartbeatTimeoutMs: 3 * DEFAULT_HEARTBEAT_MS,
  maxLagMs: 1000,
  maxLogBufferBytes: 256 * 1024 * 1024,
  claimRetryMs: 250,
};

export const TRACE_FORMAT_VERSION = 1;

export function engineIdentity(): string {
  return `${ENGINE_NAME}@${ENGINE_VERSION}+${engineWasmSha256().slice(0, 16)}`;
}

export function roleConfig(settings: PairSettings): RoleConfig {
  return {
    heartbeatMs: settings.heartbeatMs,
    heartbeatTimeoutMs: settings.heartbeatTimeoutMs,
    claimRetryMs: settings.claimRetryMs,
    maxLagMs: settings.maxLagMs,
    maxLagBytes: settings.maxLogBufferBytes,
  };
}

/** Monotonic milliseconds: the only clock the role machine is given. */
export function monotonicMs(): number {
  return performance.now();
}

/** The tick period: fine enough that a timeout is noticed within a quarter heartbeat. */
export function tickMs(settings: PairSettings): number {
  return Math.max(5, Math.min(25, Math.floor(settings.heartbeatMs / 4)));
}

/** Feeds one input to the machine and performs its actions, in order. */
export function drive(machine: RoleMachine, input: RoleInput, perform: (action: RoleAction) => void, logger: Logger): void {
  for (const action of machine.step(input)) {
    if (action.type === 'log') logger[action.level]({ role: machine.role, epoch: machine.epoch, ...(action.data ?? {}) }, action.msg);
    else perform(action);
  }
}

export async function listen(server: Server, port: number, host: string): Promise<string> {
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address() as AddressInfo;
  return `http://${address.family === 'IPv6' ? `[${address.address}]` : address.address}:${address.port}`;
}
