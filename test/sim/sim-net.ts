// The simulated network between nodes (the logging channel) and between clients and nodes. A
// connection is a pair of ends carrying real encoded frames (logging-channel/frames.ts) — or, for a
// join, the snapshot object itself. The seed controls per-message delay, and during chaos windows
// loss, duplication and reordering (which the stream sessions must turn into a dropped connection and
// a resume, never into a wrong log); partitions cut a node pair for a while (messages vanish, and a
// close is never seen: the ends find out by silence, as with a dead host).

import type { Snapshot } from '../../hypervisor/vm/vm.js';
import type { Owner, World } from './world.js';

export type Message = { kind: 'frame'; bytes: Uint8Array } | { kind: 'snapshot'; seq: number; pos: number; snapshot: Snapshot } | { kind: 'close'; reason: string };

export interface End {
  readonly owner: Owner;
  readonly peer: Owner;
  open: boolean;
  onMessage: (m: Message) => void;
  onClose: (reason: string) => void;
  send(m: Message): void;
  close(reason: string): void;
}

export interface NetFaults {
  /** "a|b" (sorted) -> until when the pair is cut. */
  partitions: Map<string, number>;
  /** Until then: frame loss, duplication, reordering, extra delay. */
  chaos: { untilMs: number; loss: number; dup: number; reorder: number; maxDelayMs: number } | null;
}

export function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

export class Network {
  readonly faults: NetFaults = { partitions: new Map(), chaos: null };
  private conns = 0;

  constructor(private readonly world: World) {}

  cut(a: string, b: string): boolean {
    return (this.faults.partitions.get(pairKey(a, b)) ?? 0) > this.world.nowMs;
  }

  /** One-way latency of one message now (ms). */
  delayMs(): number {
    const c = this.faults.chaos && this.faults.chaos.untilMs > this.world.nowMs ? this.faults.chaos : null;
    const base = 0.1 + this.world.rand() * 0.9;
    return c ? base + this.world.rand() * c.maxDelayMs : base;
  }

  /**
   * Opens a connection from `from` to `to`; `accept` gives the listener's end (null: refused, e.g. a
   * crashed or non-listening node). Resolves through `done` with the dialler's end or null.
   */
  connect(from: Owner, to: Owner, accept: (end: End) => boolean, done: (end: End | null) => void): void {
    const id = ++this.conns;
    const rtt = this.delayMs() * 2;
    this.world.at(rtt / 2, to, () => {
      if (to.crashed || this.cut(from.id, to.id)) return void this.world.at(rtt / 2 + 100, from, () => done(null));
      const [a, b] = this.pair(id, from, to);
      if (!accept(b)) return void this.world.at(rtt / 2, from, () => done(null));
      this.world.at(rtt / 2, from, () => done(a));
    });
  }

  private pair(id: number, x: Owner, y: Owner): [End, End] {
    const net = this;
    const lastArrival = [0, 0];
    const make = (self: Owner, peer: Owner, side: 0 | 1): End => ({
      owner: self,
      peer,
      open: true,
      onMessage: () => {},
      onClose: () => {},
      send(m: Message) {
        if (!this.open) return;
        const other = side === 0 ? ends[1] : ends[0];
        net.deliver(id, self, peer, other, m, lastArrival, side === 0 ? 1 : 0);
      },
      close(reason: string) {
        if (!this.open) return;
        this.open = false;
        const other = side === 0 ? ends[1] : ends[0];
        net.deliver(id, self, peer, other, { kind: 'close', reason }, lastArrival, side === 0 ? 1 : 0);
      },
    });
    const ends: [End, End] = [make(x, y, 0), make(y, x, 1)];
    return ends;
  }

  private deliver(id: number, from: Owner, to: Owner, end: End, m: Message, lastArrival: number[], dir: number): void {
    const w = this.world;
    if (this.cut(from.id, to.id)) return;
    const c = this.faults.chaos && this.faults.chaos.untilMs > w.nowMs ? this.faults.chaos : null;
    const copies = m.kind === 'frame' && c && w.chance(c.dup) ? 2 : 1;
    if (m.kind === 'frame' && c && w.chance(c.loss)) return;
    for (let i = 0; i < copies; i++) {
      let at = w.nowMs + this.delayMs();
      // In order unless this message is picked to overtake (a reordering fault).
      if (!(m.kind === 'frame' && c && w.chance(c.reorder))) at = Math.max(at, lastArrival[dir]!);
      lastArrival[dir] = Math.max(lastArrival[dir]!, at);
      w.at(at - w.nowMs, to, () => {
        if (!end.open && m.kind !== 'close') return;
        if (this.cut(from.id, to.id)) return;
        if (m.kind === 'close') {
          if (!end.open) return;
          end.open = false;
          end.onClose(m.reason);
          return;
        }
        end.onMessage(m);
      });
    }
    void id;
  }
}
