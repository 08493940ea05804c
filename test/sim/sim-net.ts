// The simulated network: the logging channel's Transport (logging-channel/transport.ts) on the world's
// queue. A connection carries the real sealed frames the production shells send, each delivered as an
// event of the receiving node after a seeded delay. During chaos windows connections are reset, and
// frames duplicated or reordered (the shells' MAC turns that into a closed connection and a resume,
// never a wrong log);
// a partition cuts a node pair for a while (frames vanish, and a close is never seen: the ends find
// out by silence, as with a dead host). A dial to the channel's service address reaches whichever
// node serves now (the operator's --primary, found by asking health).

import type { NodeTransport } from '../../hypervisor/node/env.js';
import type { Connection, ConnectionHandlers, Listener, ListenOptions } from '../../logging-channel/transport.js';
import type { Owner, World } from './world.js';

export interface NetFaults {
  /** "a|b" (sorted) -> until when the pair is cut. */
  partitions: Map<string, number>;
  /** Until then: frame loss, duplication, reordering, extra delay. */
  chaos: { untilMs: number; loss: number; dup: number; reorder: number; maxDelayMs: number } | null;
}

export function pairKey(a: string, b: string): string {
  return a < b ? `${a}|${b}` : `${b}|${a}`;
}

/** A listener as the network knows it: whose it is, and what it hands new connections to. */
export interface SimListener {
  readonly owner: Owner;
  readonly id: number;
  closed: boolean;
  onConnection: (connection: Connection) => void;
  readonly ends: Set<SimEnd>;
}

/** What the network asks of the simulation: where a dial goes, and a look at frames on the wire. */
export interface NetHooks {
  /** The listener a dial from `from` to `url` reaches now, or null (nobody serves: refused). */
  route(from: Owner, url: string): SimListener | null;
  /** A frame leaves `from` on a connection to `listener` (the checker's view of acks). */
  onWire?(from: Owner, listener: SimListener, frame: Uint8Array): void;
}

export class SimEnd implements Connection {
  open = false;
  /** The other end; null while the dial is in flight. */
  peer: SimEnd | null = null;
  private handlers: ConnectionHandlers | null = null;
  private ended = false;
  private lastArrivalMs = 0;
  /** When the upgrade's answer reaches this (dialling) end: nothing sent after it may arrive sooner. */
  notBeforeMs = 0;

  constructor(
    private readonly net: Network,
    readonly owner: Owner,
    readonly remote: string,
    readonly listener: SimListener,
  ) {}

  get bufferedBytes(): number {
    return 0;
  }

  on(handlers: ConnectionHandlers): void {
    this.handlers = handlers;
  }

  send(frame: Uint8Array, written?: (error?: Error) => void): void {
    const peer = this.peer;
    if (!this.open || peer === null) return;
    this.net.hooks.onWire?.(this.owner, this.listener, frame);
    // A copy, as a socket makes one (a Buffer's slice() would be a view, often into a pool that later allocations overwrite).
    this.net.carry(this, peer, new Uint8Array(frame));
    if (written) this.net.world.at(0, this.owner, () => written());
  }

  close(code: number, reason: string): void {
    if (this.ended) return;
    const wasOpen = this.open;
    this.open = false;
    const peer = this.peer;
    if (wasOpen && peer !== null && !this.net.cut(this.owner.id, peer.owner.id)) {
      // The close handshake: the peer hears it, and our side ends once its answer is back.
      this.net.closeLater(peer, code, reason, this.net.delayMs());
      this.net.closeLater(this, code, reason, 2 * this.net.delayMs());
    } else {
      // Nobody answers: the socket is destroyed after the close grace (ws-transport.ts).
      this.net.closeLater(this, 1006, reason, wasOpen ? 1_000 : 0);
    }
  }

  terminate(): void {
    if (this.ended) return;
    const peer = this.peer;
    const wasOpen = this.open;
    this.open = false;
    if (wasOpen && peer !== null && !this.net.cut(this.owner.id, peer.owner.id)) this.net.closeLater(peer, 1006, '', this.net.delayMs());
    this.net.closeLater(this, 1006, '', 0);
  }

  /** Its host has ended this socket (closed or destroyed): segments that reach it now are reset. */
  get destroyed(): boolean {
    return this.ended;
  }

  /** Delivered by the network, as an event of this end's owner. */
  deliver(frame: Uint8Array): void {
    if (!this.open || this.ended) return;
    this.handlers?.message(frame, true);
  }

  opened(): void {
    if (this.ended) return;
    this.open = true;
    this.handlers?.open?.();
  }

  failed(code: string): void {
    if (this.ended) return;
    const error = Object.assign(new Error(`connect ${code} ${this.remote}`), { code });
    this.handlers?.error(error);
    this.end(1006, '');
  }

  end(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.open = false;
    this.listener.ends.delete(this);
    this.handlers?.close(code, reason);
  }

  /** In-order delivery on this direction unless a frame is picked to overtake (a reordering fault). */
  arrivalAt(atMs: number, overtake: boolean): number {
    // A reordered frame may overtake other frames, never the connection's opening (one TCP stream:
    // the upgrade's answer comes first); before, one that did was dropped unseen and the handshake hung.
    const at = overtake ? Math.max(atMs, this.notBeforeMs) : Math.max(atMs, this.lastArrivalMs);
    this.lastArrivalMs = Math.max(this.lastArrivalMs, at);
    return at;
  }
}

export class Network {
  readonly faults: NetFaults = { partitions: new Map(), chaos: null };
  private listeners = 0;

  constructor(
    readonly world: World,
    readonly hooks: NetHooks,
  ) {}

  cut(a: string, b: string): boolean {
    return (this.faults.partitions.get(pairKey(a, b)) ?? 0) > this.world.nowMs;
  }

  /** One-way latency of one message now (ms). */
  delayMs(): number {
    const c = this.chaosNow();
    const base = 0.1 + this.world.rand() * 0.9;
    return c ? base + this.world.rand() * c.maxDelayMs : base;
  }

  private chaosNow(): NetFaults['chaos'] {
    return this.faults.chaos && this.faults.chaos.untilMs > this.world.nowMs ? this.faults.chaos : null;
  }

  /** `owner`'s view of the network: the Transport its shells are given. */
  transportFor(owner: Owner): NodeTransport {
    return {
      listen: (options, onConnection) => this.listen(owner, options, onConnection),
      dial: (url) => this.dial(owner, url),
      probe: async () => {},
    };
  }

  private async listen(owner: Owner, _options: ListenOptions, onConnection: (c: Connection) => void): Promise<Listener> {
    const listener: SimListener = { owner, id: ++this.listeners, closed: false, onConnection, ends: new Set() };
    this.open.add(listener);
    this.all.add(listener);
    return {
      port: 7000 + listener.id,
      tls: false,
      close: async () => {
        listener.closed = true;
        this.open.delete(listener);
        for (const end of [...listener.ends]) if (end.owner === owner) end.terminate();
        if (listener.ends.size === 0) this.all.delete(listener);
      },
    };
  }

  /** Listeners open now, and every listener that may still have connections. */
  readonly open = new Set<SimListener>();
  private readonly all = new Set<SimListener>();

  private dial(from: Owner, url: string): Connection {
    const listener = this.hooks.route(from, url);
    const w = this.world;
    if (listener === null) {
      const end = new SimEnd(this, from, url, { owner: from, id: 0, closed: true, onConnection: () => {}, ends: new Set() });
      w.at(this.delayMs(), from, () => end.failed('ECONNREFUSED'));
      return end;
    }
    const mine = new SimEnd(this, from, url, listener);
    listener.ends.add(mine);
    const half = this.delayMs();
    // Owned by the listener's host: a stopped process accepts nothing until it runs again, a dead one never.
    w.at(half, listener.owner, () => {
      if (listener.closed || listener.owner.crashed || this.cut(from.id, listener.owner.id)) {
        // A SYN into a dead host or across a partition: the dialler times out.
        w.at(half + 100, from, () => mine.failed('ETIMEDOUT'));
        return;
      }
      const theirs = new SimEnd(this, listener.owner, from.id, listener);
      listener.ends.add(theirs);
      theirs.peer = mine;
      mine.peer = theirs;
      theirs.open = true;
      // The upgrade's answer reaches the dialler before anything the listener sends after it.
      const openAt = mine.arrivalAt(w.nowMs + half, false);
      mine.notBeforeMs = openAt;
      w.at(openAt - w.nowMs, from, () => mine.opened());
      listener.onConnection(theirs);
    });
    return mine;
  }

  /** Carries one frame from `from` to `to` (loss, duplication, reordering and delay per the faults). */
  carry(from: SimEnd, to: SimEnd, frame: Uint8Array): void {
    const w = this.world;
    if (this.cut(from.owner.id, to.owner.id)) return;
    const c = this.chaosNow();
    if (c && w.chance(c.loss)) {
      // A stream never loses one frame and carries on: a lost segment the peer cannot recover is a
      // reset connection (the ends dial again and resume). Duplicates and reorders below are left to
      // the MAC to catch.
      from.terminate();
      return;
    }
    const copies = c && w.chance(c.dup) ? 2 : 1;
    for (let i = 0; i < copies; i++) {
      const at = to.arrivalAt(w.nowMs + this.delayMs(), c !== null && w.chance(c.reorder));
      w.at(at - w.nowMs, to.owner, () => {
        if (this.cut(from.owner.id, to.owner.id)) return;
        // A segment into a socket its host has destroyed (a close it sent across a partition, never
        // answered) is answered by a reset: the sender learns the connection is gone once the path
        // heals, as TCP's RST tells it, instead of waiting on silence forever.
        if (to.destroyed) this.closeLater(from, 1006, '', this.delayMs());
        else to.deliver(frame);
      });
    }
  }

  closeLater(end: SimEnd, code: number, reason: string, delayMs: number): void {
    this.world.at(delayMs, end.owner, () => end.end(code, reason));
  }

  /** A host died: the kernel resets its connections (peers that can hear it see them close). */
  crashed(owner: Owner): void {
    for (const listener of [...this.open]) if (listener.owner === owner) this.open.delete(listener);
    for (const listener of this.all) {
      for (const end of [...listener.ends]) {
        if (end.owner !== owner || !end.peer) continue;
        const peer = end.peer;
        if (!this.cut(owner.id, peer.owner.id)) this.closeLater(peer, 1006, '', this.delayMs());
      }
    }
  }
}
