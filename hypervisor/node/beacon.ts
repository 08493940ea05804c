// The witness beacon (SWIM's indirect probe, with the shared directory as the witness): every node
// runs a small thread that rewrites `<beat>:<main>` in `<shared dir>/beacons/<node>` every heartbeat
// period: its own counter, and the one the node's main thread advances on every tick (shared
// memory). That thread shares nothing else with the main thread, so a node busy there (booting a
// joined snapshot, a flood of frames) keeps its beat moving while its main count stands still: busy,
// not dead. A dead or stopped process's beacon stands still altogether; a node that runs normally
// but cannot be heard (a partition) moves both. A node whose peer falls silent reads the peer's beacon
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
  /** The node's main thread ran (call on every tick): its count in the beacon moves. */
  tick(): void;
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
const { file, periodMs, start, main } = workerData;
const mainCount = new Int32Array(main);
let fd = null;
let n = start;
function beat() {
  try {
    if (fd === null) {
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fd = fs.openSync(file, 'w');
    }
    fs.writeSync(fd, String(n++).padStart(16, '0') + ':' + String(Atomics.load(mainCount, 0) >>> 0).padStart(10, '0'), 0);
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
  /** The main thread's count, read by the beacon thread. */
  private readonly mainCount = new Int32Array(new SharedArrayBuffer(4));
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
    const start = Math.floor(Math.random() * 1e14);
    const worker = new Worker(BEACON_THREAD, {
      eval: true,
      workerData: { file: beaconFile(this.dir, this.nodeId), periodMs: this.periodMs, start, main: this.mainCount.buffer },
      stdout: false,
      stderr: false,
    });
    worker.unref();
    worker.on('error', () => undefined); // a beacon that dies is a beacon that stands still
    this.worker = worker;
  }

  tick(): void {
    Atomics.add(this.mainCount, 0, 1);
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
