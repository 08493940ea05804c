// The witness beacon (SWIM's indirect probe, with the shared directory as the witness): every node
// runs a small thread that rewrites a counter in `<shared dir>/beacons/<node>` every heartbeat
// period. That thread shares nothing with the node's main thread, so a node busy there (booting a
// joined snapshot, sending a long log, a guest's long task) keeps its beacon moving, while a dead
// or stopped process's beacon stands still. A node whose peer falls silent reads the peer's beacon
// and tells its role machine (hypervisor/node/suspicion.ts decides what a moving beacon is worth).
//
// No clocks are compared: the reader only looks at whether the counter changed between its own reads.
// Any failure (directory read-only, full, gone) leaves the beacon still: no evidence of life, so
// suspicion falls back to the timeout and the learned jitter. It never speeds up a claim.

import { createHash } from 'node:crypto';
import { promises as fs } from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Arbiter } from './arbiter.js';

export interface Witness {
  /** Starts this node's beacon thread (idempotent). */
  start(): void;
  /** The peer's beacon now: `peer`'s, or (null) the node's that claimed `epoch`. Null: none or unreadable. */
  read(peer: string | null, epoch: number): Promise<string | null>;
  stop(): Promise<void>;
}

export const BEACON_DIR = 'beacons';

/** The beacon file of `nodeId` (hashed: a nodeId is any string, a file name is not). */
export function beaconFile(dir: string, nodeId: string): string {
  return path.join(dir, BEACON_DIR, createHash('sha256').update(nodeId).digest('hex').slice(0, 32));
}

// The thread: CommonJS, evaluated (no file of its own to find next to the compiled module). The
// counter is fixed-width and rewritten in place by one write, so a reader never sees it shorter.
const BEACON_THREAD = `
const { workerData } = require('node:worker_threads');
const fs = require('node:fs');
const path = require('node:path');
const { file, periodMs, start } = workerData;
let fd = null;
let n = start;
function beat() {
  try {
    if (fd === null) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fd = fs.openSync(file, 'w');
    }
    fs.writeSync(fd, String(n++).padStart(20, '0'), 0);
  } catch {
    if (fd !== null) { try { fs.closeSync(fd); } catch {} }
    fd = null;
  }
}
beat();
setInterval(beat, periodMs);
`;

/** The witness on a shared directory: this node's beacon thread, and reads of the peer's. */
export class DirWitness implements Witness {
  private worker: Worker | null = null;
  private stopped = false;
  /** Who claimed each epoch (a backup learns its primary's nodeId from the epoch file). */
  private readonly owners = new Map<number, string>();
  private readonly arbiter: Arbiter;

  constructor(
    readonly dir: string,
    readonly nodeId: string,
    readonly periodMs: number,
  ) {
    this.arbiter = new Arbiter(dir, nodeId);
  }

  start(): void {
    if (this.worker || this.stopped) return;
    // A random start: a restarted node with the same id never repeats the value its reader last saw.
    const start = Math.floor(Math.random() * 1e15);
    const worker = new Worker(BEACON_THREAD, { eval: true, workerData: { file: beaconFile(this.dir, this.nodeId), periodMs: this.periodMs, start }, stdout: false, stderr: false });
    worker.unref();
    worker.on('error', () => undefined); // a beacon that dies is a beacon that stands still
    this.worker = worker;
  }

  async read(peer: string | null, epoch: number): Promise<string | null> {
    try {
      const nodeId = peer ?? (await this.ownerOf(epoch));
      if (nodeId === null || nodeId === this.nodeId) return null;
      return await fs.readFile(beaconFile(this.dir, nodeId), 'utf8');
    } catch {
      return null;
    }
  }

  private async ownerOf(epoch: number): Promise<string | null> {
    if (!(epoch > 0)) return null;
    const known = this.owners.get(epoch);
    if (known !== undefined) return known;
    const claim = await this.arbiter.owner(epoch);
    if (claim === null) return null;
    this.owners.set(epoch, claim.nodeId);
    return claim.nodeId;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    const worker = this.worker;
    this.worker = null;
    if (worker) await worker.terminate();
  }
}
