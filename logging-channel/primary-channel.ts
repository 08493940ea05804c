// The primary's end of the logging channel: a WebSocket server that streams the log to one backup.
//
// Life of a connection: the backup dials; we send `hello` with a fresh nonce; it answers `auth`
// (its proof, identity, nodeId and the seq it has received through); we verify the proof, the
// identity and the resume point, and answer `welcome` (our proof, the boot config) or `refuse` +
// close with the refusal code (auth.ts). A welcomed connection is "attached": we send the retained
// log from resumeFromSeq + 1, then new entries as the node appends them, coalesced into frames of at
// most maxFrameBytes; the backup acknowledges cumulatively and we emit 'ack'.
//
// From the welcome on, every frame we send is sealed, and from its auth on every frame the backup
// sends must be (frame-mac.ts); one that fails is tampering: logged, 4009, the connection dropped.
//
// The rules (who may attach, from where it resumes, by snapshot or not; the stream's acks, heartbeats
// and silence) are the pure PrimarySession's; this shell moves bytes (through an injected Transport:
// ws-transport.ts in production, the simulator's network in test/sim), seals and opens frames, and
// arms timers. It never decides that the backup is dead ('peer-silent' is a report; the
// node calls drop()) and never trims the log (the node does, from 'ack'). Anything a peer sends that
// is not exactly the protocol is refused at the edge with a logged error.

import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import { asRefusal, computeProof, expectMessage, newNonce, type PrimaryIdentity, RefusalError, RefuseCode, type Secret, type SnapshotBaseOffer, secretBytes, verifyProof } from './auth.js';
import type { ChannelTls } from './channel-tls.js';
import { deriveChannelKeys, FRAME_TAG_BYTES, FrameAuthError, FrameOpener, FrameSealer } from './frame-mac.js';
import {
  type ControlObject,
  decodeFrame,
  encodeControlFrame,
  encodedJsonOf,
  encodeEntriesFrame,
  encodeHeartbeatFrame,
  encodeSnapshotFrame,
  entriesBudgetBytes,
  type Frame,
  FrameError,
  type ReplayProgress,
} from './frames.js';
import { PrimarySession, type PrimarySessionAction } from './primary-session.js';
import type { RetainedLog } from './retained-log.js';
import { channelSettings, positiveInt } from './settings.js';
import { type Clock, realClock, realTimers, type TimerHandle, type Timers } from './time.js';
import type { Connection, Listener, Transport } from './transport.js';
import { wsTransport } from './ws-transport.js';

/** Default bound on bytes queued in the WebSocket before we stop sending (backpressure). */
export const DEFAULT_MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/** Connections still in the handshake at once; more are turned away (no unbounded queue). */
export const MAX_PENDING_HANDSHAKES = 8;
export { MAX_CONNECTIONS } from './ws-transport.js';
/**
 * The longest one pass of the log sender runs before it yields to the event loop (and continues on
 * the next turn). Without it, a backup attaching to a long log had the sender encode and seal up to
 * the socket's 8 MiB bound in one go: 391 ms on a loaded 2-core host, with every heartbeat, ack
 * and tick of the primary waiting behind it.
 */
export const SEND_SLICE_MS = 4;

export interface PrimaryChannelOptions {
  host: string;
  /** 0 picks a free port (read it back from `.port`). */
  port: number;
  secret: Secret;
  identity: PrimaryIdentity;
  /** JSON-serialisable; sent to the backup in `welcome`. Must fit in one frame. */
  bootConfig: unknown;
  log: RetainedLog;
  heartbeatMs?: number;
  heartbeatTimeoutMs?: number;
  /** Bound on one WebSocket message in either direction, in bytes (ws maxPayload). */
  maxFrameBytes?: number;
  handshakeTimeoutMs?: number;
  /** Stop sending while more than this many bytes wait in the socket; resume once they drain. */
  maxBufferedBytes?: number;
  /**
   * Join by snapshot: a fresh backup (resume from 0) receives a VM snapshot taken now, then the log
   * after it, when the log cannot serve it from seq 1 or is at least `joinBySnapshotAfterEntries` long.
   * `base` is the memory the backup offered to receive a delta against (null: none offered); the
   * provider may send a delta against it (set `baseDigest`) or ignore it and send a full snapshot.
   */
  snapshotProvider?: SnapshotProvider;
  joinBySnapshotAfterEntries?: number;
  /** Monotonic time and timers (default: the process's own). */
  clock?: Clock;
  timers?: Timers;
  /** Serve wss:// with mutual TLS: the backup must present a certificate signed by `ca`. */
  tls?: ChannelTls;
  /** The network (default: WebSocket, ws-transport.ts). */
  transport?: Transport;
  /** Entropy for the handshake's nonces (default: the OS's). */
  randomBytes?: (length: number) => Uint8Array;
  logger: Logger;
}

export type SnapshotProvider = (base: SnapshotBaseOffer | null) => Promise<SnapshotForJoin>;

export interface SnapshotForJoin {
  /** The snapshot holds the state after every entry through `seq`. */
  seq: number;
  pos: number;
  data: Uint8Array;
  /** Set when `data` is a delta against the offered base: that base's digest. Absent: a full snapshot. */
  baseDigest?: string;
}

/** Default log length past which a fresh backup joins by snapshot rather than replaying from seq 1. */
export const DEFAULT_JOIN_BY_SNAPSHOT_AFTER_ENTRIES = 10_000;
/** Bytes of snapshot per SNAPSHOT frame (less when maxFrameBytes is smaller). */
const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

export interface AttachedEvent {
  nodeId: string;
  resumeFromSeq: number;
  /** "address:port" of the backup. */
  remote: string;
}
export interface DetachedEvent {
  nodeId: string;
  reason: string;
}
export interface RefusedEvent {
  code: number;
  reason: string;
  remote: string;
}
export interface PeerSilentEvent {
  silentMs: number;
}

export type PrimaryChannelEvents = {
  attached: [AttachedEvent];
  detached: [DetachedEvent];
  refused: [RefusedEvent];
  /** The attached backup has received every entry up to this seq (cumulative, increasing). */
  ack: [seq: number];
  /** No frame from the attached backup for heartbeatTimeoutMs. Once per silence. */
  'peer-silent': [PeerSilentEvent];
  /** The attached backup's replay progress (from its heartbeats). */
  replay: [ReplayProgress & { receivedSeq: number }];
  /** The node broke a contract of the channel (an entry that can never fit in a frame). */
  error: [Error];
};

interface Conn {
  link: Connection;
  remote: string;
  state: 'handshake' | 'attached' | 'closed';
  serverNonce: string;
  nodeId: string;
  handshakeTimer: TimerHandle | undefined;
  /** Why we closed it, for the 'detached' event and the log (set before the close happens). */
  closeReason: string | undefined;
  /** Waiting for the socket to drain below maxBufferedBytes. */
  blocked: boolean;
  /** The welcome has gone out: before it, no other frame may (a joining backup waits for it first). */
  welcomed: boolean;
  /** The hello frame as sent: with the auth frame, the transcript the connection's keys derive from. */
  helloFrame: Uint8Array;
  /** Our key, once the backup's proof holds; the sealer starts with the welcome (frame #0). */
  sendKey: Buffer | null;
  sealer: FrameSealer | null;
  /** Set once the backup's proof holds: every frame it sends after its auth is sealed. */
  opener: FrameOpener | null;
}

export class PrimaryChannel extends EventEmitter<PrimaryChannelEvents> {
  private listener: Listener | null = null;
  private readonly transport: Transport;
  private readonly randomBytes: ((length: number) => Uint8Array) | undefined;
  private readonly secret: Buffer;
  private readonly identity: PrimaryIdentity;
  /** The welcome's boot config, encoded once (EncodedJson) when it is an object. */
  private readonly bootConfig: unknown;
  private readonly log: RetainedLog;
  private readonly heartbeatMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly maxBufferedBytes: number;
  private readonly snapshotProvider: SnapshotProvider | undefined;
  private readonly joinBySnapshotAfterEntries: number;
  private readonly logger: Logger;
  private readonly pending = new Set<Conn>();
  private session: Conn | null = null;
  private tickTimer: TimerHandle | undefined;
  private pumpScheduled = false;
  private closing = false;
  /** The stream's rules and facts (acked and sent seq, heartbeats, silence): one owner, pure. */
  private readonly stream: PrimarySession;
  private readonly clock: Clock;
  private readonly timers: Timers;
  /** Frames of entries sent since listen (for tests and metrics). */
  framesSent = 0;

  /** Bound on one frame, in bytes. */
  readonly maxFrameBytes: number;

  private constructor(opts: PrimaryChannelOptions) {
    super();
    this.secret = secretBytes(opts.secret);
    this.identity = { ...opts.identity };
    this.log = opts.log;
    const settings = channelSettings('PrimaryChannel', opts);
    this.heartbeatMs = settings.heartbeatMs;
    this.heartbeatTimeoutMs = settings.heartbeatTimeoutMs;
    this.handshakeTimeoutMs = settings.handshakeTimeoutMs;
    this.maxFrameBytes = settings.maxFrameBytes;
    this.maxBufferedBytes = positiveInt('PrimaryChannel', 'maxBufferedBytes', opts.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES);
    this.snapshotProvider = opts.snapshotProvider;
    this.joinBySnapshotAfterEntries = opts.joinBySnapshotAfterEntries ?? DEFAULT_JOIN_BY_SNAPSHOT_AFTER_ENTRIES;
    this.clock = opts.clock ?? realClock;
    this.timers = opts.timers ?? realTimers;
    this.stream = new PrimarySession({ heartbeatMs: this.heartbeatMs, heartbeatTimeoutMs: this.heartbeatTimeoutMs });
    // Fail at startup, not at the first backup: a welcome that cannot be sent would refuse every backup.
    // Encoded once (and once per boot config object): every welcome carries it.
    this.bootConfig = typeof opts.bootConfig === 'object' && opts.bootConfig !== null ? encodedJsonOf(opts.bootConfig) : opts.bootConfig;
    const welcomeBytes = encodeControlFrame({ t: 'welcome', proof: '0'.repeat(64), bootConfig: this.bootConfig, firstSeq: Number.MAX_SAFE_INTEGER }).byteLength;
    if (welcomeBytes > this.maxFrameBytes) {
      throw new RangeError(`PrimaryChannel: the boot config makes a ${welcomeBytes}-byte welcome frame, above maxFrameBytes (${this.maxFrameBytes})`);
    }
    this.logger = opts.logger.child({ component: 'logging-channel', role: 'primary' });
    this.transport = opts.transport ?? wsTransport;
    this.randomBytes = opts.randomBytes;
    this.tls = opts.tls !== undefined;
  }

  /** Start listening. Resolves once the port is bound. */
  static async listen(opts: PrimaryChannelOptions): Promise<PrimaryChannel> {
    const channel = new PrimaryChannel(opts);
    channel.listener = await channel.transport.listen(
      {
        host: opts.host,
        port: opts.port,
        // maxFrameBytes bounds the frame; its tag (frame-mac.ts) rides on top.
        maxFrameBytes: channel.maxFrameBytes + FRAME_TAG_BYTES,
        handshakeTimeoutMs: channel.handshakeTimeoutMs,
        ...(opts.tls ? { tls: opts.tls } : {}),
        turnAway: () => (channel.closing ? 'closing' : channel.pending.size >= MAX_PENDING_HANDSHAKES ? `${MAX_PENDING_HANDSHAKES} handshakes already in progress` : null),
        logger: channel.logger,
      },
      (link) => channel.onConnection(link),
    );
    channel.tickTimer = channel.timers.every(tickMs(channel.heartbeatMs, channel.heartbeatTimeoutMs), () => channel.tick(), true);
    channel.logger.info({ port: channel.port, host: opts.host }, 'logging channel listening');
    return channel;
  }

  get port(): number {
    return this.listener?.port ?? 0;
  }

  /** True when the channel is served as wss:// with mutual TLS. */
  readonly tls: boolean;

  /** A backup is attached and welcomed (one still receiving its snapshot counts from the welcome). */
  get attached(): boolean {
    return this.session?.welcomed === true;
  }

  /** nodeId of the attached backup, or null. */
  get attachedNodeId(): string | null {
    return this.session?.nodeId ?? null;
  }

  /**
   * Through which seq the attached (or last attached) backup has confirmed receipt: its
   * resumeFromSeq when it attached, then its ACKs. 0 before any backup attached.
   */
  /**
   * A backup that joins now (not resuming) gets a snapshot, not the log from seq 1: from then on the
   * history the attached backup acknowledged serves nobody and the node may drop it.
   */
  get joinsBySnapshot(): boolean {
    return this.snapshotProvider !== undefined && (this.log.firstSeq > 1 || this.log.lastSeq >= this.joinBySnapshotAfterEntries);
  }

  get ackedSeq(): number {
    return this.stream.ackedSeq;
  }

  /**
   * The clock's monoMs() at which the last frame from an attached backup arrived (any frame counts as
   * a heartbeat); null before any backup attached. Kept after a detach.
   */
  get lastHeardAtMs(): number | null {
    return this.stream.lastHeardAtMs;
  }

  /** Last seq sent to the attached backup (its resumeFromSeq right after attaching); 0 when detached. */
  get sentSeq(): number {
    return this.session ? this.stream.sentSeq : 0;
  }

  /** The largest entry (payload + framing, RetainedLog wire bytes) that fits in one frame. */
  get maxEntryBytes(): number {
    return entriesBudgetBytes(this.maxFrameBytes);
  }

  /**
   * The node appended to the log: schedule a send. Calls in the same job share one pass. The pass
   * runs as soon as the appending code has returned (a microtask), not after the event loop's next
   * poll: every output of the batch waits on the backup's ack of this frame, and an immediate left
   * the frame behind every socket callback of the turn (requests parsed, responses written).
   */
  notifyAppended(): void {
    if (this.session === null || this.pumpScheduled) return;
    this.pumpScheduled = true;
    const pass = () => {
      this.pumpScheduled = false;
      this.pump();
    };
    this.timers.afterCurrentJob(pass);
  }

  /** A send pass after the event loop's next turn (a slice ran out, or the socket drained): others go first. */
  private pumpLater(): void {
    if (this.session === null || this.pumpScheduled) return;
    this.pumpScheduled = true;
    this.timers.soon(() => {
      this.pumpScheduled = false;
      this.pump();
    });
  }

  /** Close the attached backup's connection (the node decided it is gone). No-op when detached. */
  drop(reason: string): void {
    const s = this.session;
    if (s === null) return;
    this.logger.warn({ nodeId: s.nodeId, remote: s.remote }, `dropping backup: ${reason}`);
    this.detach(s, `dropped: ${reason}`);
    // The peer is probably dead: send the close frame but do not wait for its answer.
    this.closeConn(s, 1000, `dropped: ${reason}`);
    s.link.terminate();
  }

  /** Close every connection and the port. */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.tickTimer?.cancel();
    const conns = [...this.pending];
    if (this.session !== null) {
      conns.push(this.session);
      this.detach(this.session, 'primary channel closed');
    }
    for (const c of conns) this.closeConn(c, 1001, 'primary shutting down');
    await this.listener?.close();
    this.logger.info('logging channel closed');
  }

  // -------------------------------------------------------------------------------------------
  // Connections and the handshake

  private onConnection(link: Connection): void {
    const serverNonce = newNonce(this.randomBytes);
    const helloFrame = encodeControlFrame({
      t: 'hello',
      nonce: serverNonce,
      formatVersion: this.identity.formatVersion,
      engine: this.identity.engine,
      guestHash: this.identity.guestHash,
    });
    const conn: Conn = {
      link,
      remote: link.remote,
      state: 'handshake',
      serverNonce,
      nodeId: '',
      handshakeTimer: undefined,
      closeReason: undefined,
      blocked: false,
      welcomed: false,
      helloFrame,
      sendKey: null,
      sealer: null,
      opener: null,
    };
    this.pending.add(conn);
    link.on({
      message: (frame, isBinary) => this.onMessage(conn, frame, isBinary),
      error: (err) => this.onSocketError(conn, err),
      close: (code, reason) => this.onClose(conn, code, reason),
    });
    conn.handshakeTimer = this.timers.after(this.handshakeTimeoutMs, () => {
      this.refuse(conn, new RefusalError(RefuseCode.ProtocolError, `protocol error: handshake timeout: no valid auth within ${this.handshakeTimeoutMs} ms`));
    });
    this.send(conn, helloFrame);
  }

  private onMessage(conn: Conn, data: Uint8Array, isBinary: boolean): void {
    if (conn.state === 'closed') return;
    let frame: Frame;
    let bytes: Uint8Array;
    try {
      if (!isBinary) throw new FrameError('text message (the logging channel carries binary frames only)');
      bytes = data;
      // Authenticate before decoding: a tampered frame never reaches the codec, let alone the node.
      if (conn.opener !== null) bytes = conn.opener.open(bytes);
      frame = decodeFrame(bytes);
    } catch (err) {
      if (err instanceof FrameAuthError) {
        this.tampered(conn, err);
        return;
      }
      if (!(err instanceof FrameError)) throw err;
      this.protocolError(conn, err.message);
      return;
    }
    try {
      if (conn.state === 'handshake') this.onAuth(conn, frame, bytes);
      else this.onAttachedFrame(conn, frame);
    } catch (err) {
      if (!(err instanceof RefusalError)) throw err;
      if (conn.state === 'handshake') this.refuse(conn, err);
      else this.protocolError(conn, err.reason.replace(/^protocol error: /, ''));
    }
  }

  private onAuth(conn: Conn, frame: Frame, authFrame: Uint8Array): void {
    if (frame.type !== 'control') {
      throw new RefusalError(RefuseCode.ProtocolError, `protocol error: expected the auth CONTROL message, got a ${frame.type.toUpperCase()} frame`);
    }
    const theirRefusal = asRefusal(frame.message);
    if (theirRefusal !== null) {
      this.logger.error({ remote: conn.remote, code: theirRefusal.code }, `the backup refused the handshake: ${theirRefusal.reason}`);
      this.closeConn(conn, 1000, 'refused by the backup');
      return;
    }
    const auth = expectMessage(frame.message, 'auth');
    conn.nodeId = auth.nodeId;
    // The proof first: nothing else an unauthenticated peer says is worth acting on.
    if (!verifyProof(this.secret, 'backup', conn.serverNonce, auth.nonce, auth.proof)) {
      throw new RefusalError(RefuseCode.AuthFailed, `auth failed: the backup's proof does not match this primary's shared secret (wrong --secret?)`);
    }
    // From here on the backup seals what it sends; we seal from the welcome on.
    const keys = deriveChannelKeys(this.secret, conn.helloFrame, authFrame);
    conn.opener = new FrameOpener(keys.backupToPrimary, 'backup->primary');
    conn.sendKey = keys.primaryToBackup;
    const current = this.session;
    const admission = PrimarySession.admission(auth, {
      identity: this.identity,
      attachedNodeId: current?.nodeId ?? null,
      log: { firstSeq: this.log.firstSeq, lastSeq: this.log.lastSeq, history: this.log.history },
      joinsBySnapshot: this.joinsBySnapshot,
    });
    if (admission.type === 'refuse') {
      const r = admission.refusal;
      throw r.code === RefuseCode.AlreadyAttached && current !== null ? new RefusalError(r.code, `${r.reason} (attached from ${current.remote})`) : r;
    }
    const bySnapshot = admission.bySnapshot;

    if (current !== null) {
      // The same node dialled again: its old connection is dead or half-open (or a second process
      // runs with one nodeId, which 4008 stops). The new connection is the one that counts.
      const why = `replaced by a newer connection from the same node (${conn.remote})`;
      this.sendControl(current, { t: 'refuse', code: RefuseCode.Replaced, reason: why });
      this.detach(current, why);
      this.closeConn(current, RefuseCode.Replaced, why);
    }
    conn.handshakeTimer?.cancel();
    this.pending.delete(conn);
    conn.state = 'attached';
    this.session = conn;
    const resumed = this.stream.attach(auth.resumeFromSeq, this.clock.monoMs(), bySnapshot);
    if (bySnapshot) {
      const base = auth.snapshotBase ?? null;
      this.logger.info(
        { nodeId: auth.nodeId, remote: conn.remote, lastSeq: this.log.lastSeq, retainedFrom: this.log.firstSeq, ...(base ? { baseDigest: base.digest, baseMemoryBytes: base.memoryBytes } : {}) },
        `backup attached; it joins by snapshot${base ? ' (it offers a base memory for a delta)' : ''}`,
      );
      // 'attached' waits for the welcome: until then the backup cannot take over (so outputs need
      // not wait for it) and is silent by protocol (so its silence must not count against it).
      void this.sendSnapshot(conn, auth.nonce, base);
      return;
    }
    this.sendControl(conn, {
      t: 'welcome',
      proof: computeProof(this.secret, 'primary', auth.nonce, conn.serverNonce),
      bootConfig: this.bootConfig,
      firstSeq: admission.firstSeq,
    });
    this.logger.info({ nodeId: auth.nodeId, remote: conn.remote, resumeFromSeq: auth.resumeFromSeq, lastSeq: this.log.lastSeq }, 'backup attached');
    this.emit('attached', { nodeId: auth.nodeId, resumeFromSeq: auth.resumeFromSeq, remote: conn.remote });
    // Its resume point is a receipt: it may cover acks that were in flight when the old connection died.
    if (this.session === conn) this.performStream(conn, resumed);
    this.notifyAppended();
  }

  /** Takes a snapshot, then sends the welcome, the snapshot in chunks, and the log after it. */
  private async sendSnapshot(conn: Conn, clientNonce: string, base: SnapshotBaseOffer | null): Promise<void> {
    const started = this.clock.monoMs();
    let snapshot: SnapshotForJoin;
    try {
      snapshot = await this.snapshotProvider!(base);
      // A delta against anything but the offered base could not be rebuilt by the backup.
      if (snapshot.baseDigest !== undefined && snapshot.baseDigest !== base?.digest) {
        throw new Error(`the snapshot provider made a delta against base ${snapshot.baseDigest}, but the backup offered ${base ? `base ${base.digest}` : 'no base'}`);
      }
    } catch (err) {
      const why = `cannot take a snapshot for the joining backup: ${(err as Error).message}`;
      this.logger.error({ nodeId: conn.nodeId }, why);
      if (this.session === conn) this.detach(conn, why);
      this.closeConn(conn, 1011, 'primary cannot take a snapshot');
      return;
    }
    if (this.session !== conn || conn.state !== 'attached') return;
    const sha256 = createHash('sha256').update(snapshot.data).digest('hex');
    this.sendControl(conn, {
      t: 'welcome',
      proof: computeProof(this.secret, 'primary', clientNonce, conn.serverNonce),
      bootConfig: this.bootConfig,
      firstSeq: snapshot.seq + 1,
      lineage: this.log.history.through(snapshot.seq),
      snapshot: { seq: snapshot.seq, pos: snapshot.pos, bytes: snapshot.data.byteLength, sha256, ...(snapshot.baseDigest !== undefined ? { baseDigest: snapshot.baseDigest } : {}) },
    });
    // The silence clock starts now: the snapshot took as long as it took to encode.
    this.stream.snapshotWelcomed(this.clock.monoMs());
    this.emit('attached', { nodeId: conn.nodeId, resumeFromSeq: 0, remote: conn.remote });
    // A chunk and its type byte must fit in one frame, or the backup drops the connection as oversized.
    const chunkBytes = Math.min(SNAPSHOT_CHUNK_BYTES, this.maxFrameBytes - 1);
    for (let offset = 0; offset < snapshot.data.byteLength; offset += chunkBytes) {
      if (this.session !== conn || !conn.link.open) return;
      // Backpressure: a 20 MiB snapshot must not sit in the socket's buffer all at once.
      while (conn.link.bufferedBytes > this.maxBufferedBytes) {
        await new Promise<void>((resolve) => this.timers.after(5, resolve));
        if (this.session !== conn || !conn.link.open) return;
      }
      conn.link.send(conn.sealer!.seal(encodeSnapshotFrame(snapshot.data.subarray(offset, offset + chunkBytes))));
    }
    this.stream.snapshotSent(snapshot.seq);
    const kind = snapshot.baseDigest !== undefined ? 'incremental' : 'full';
    const why = kind === 'full' && base !== null ? ', though the backup offered a base' : '';
    this.logger.info(
      { nodeId: conn.nodeId, seq: snapshot.seq, kind, bytes: snapshot.data.byteLength, baseOffered: base !== null, ms: Math.round(this.clock.monoMs() - started) },
      `${kind} snapshot of ${snapshot.data.byteLength} bytes sent to the joining backup (seq ${snapshot.seq}${why}); streaming the log after it`,
    );
    this.notifyAppended();
  }

  private onAttachedFrame(conn: Conn, frame: Frame): void {
    if (frame.type === 'control') {
      const theirRefusal = asRefusal(frame.message);
      if (theirRefusal !== null) {
        const why = `refused by the backup (${theirRefusal.code}): ${theirRefusal.reason}`;
        this.logger.error({ nodeId: conn.nodeId, remote: conn.remote, code: theirRefusal.code }, why);
        this.detach(conn, why);
        this.closeConn(conn, 1000, 'refused by the backup');
        return;
      }
    }
    this.performStream(conn, this.stream.onFrame(frame, this.clock.monoMs()));
  }

  /** Performs what the stream session returned, for the attached connection `conn`. */
  private performStream(conn: Conn, actions: PrimarySessionAction[]): void {
    for (const action of actions) {
      switch (action.type) {
        case 'acked':
          this.emit('ack', action.seq);
          break;
        case 'send-heartbeat':
          this.send(conn, encodeHeartbeatFrame(action.seq));
          break;
        case 'peer-heard':
          this.logger.info({ nodeId: conn.nodeId }, 'backup heard again');
          break;
        case 'replay-progress':
          this.emit('replay', { receivedSeq: action.receivedSeq, replayedSeq: action.replayedSeq, backlogMs: action.backlogMs });
          break;
        case 'peer-silent':
          this.logger.warn({ nodeId: conn.nodeId, silentMs: action.silentMs }, `backup silent for ${action.silentMs} ms (heartbeatTimeoutMs ${this.heartbeatTimeoutMs})`);
          this.emit('peer-silent', { silentMs: action.silentMs });
          break;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Sending the log

  private pump(): void {
    const s = this.session;
    if (s === null || s.state !== 'attached' || s.blocked || !this.stream.streaming || !s.link.open) return;
    const log = this.log;
    const budget = entriesBudgetBytes(this.maxFrameBytes);
    const sliceEndsMs = this.clock.monoMs() + SEND_SLICE_MS;
    while (this.stream.sentSeq < log.lastSeq) {
      if (this.clock.monoMs() >= sliceEndsMs) {
        // Heartbeats, acks and timers go first; the rest of the log follows on the next turn.
        this.pumpLater();
        return;
      }
      if (s.link.bufferedBytes > this.maxBufferedBytes) {
        // The send callbacks of the queued frames will resume us as the socket drains.
        s.blocked = true;
        return;
      }
      if (this.stream.sentSeq + 1 < log.firstSeq) {
        const why = `cannot resume: entries from seq ${this.stream.sentSeq + 1} were trimmed (retained: ${log.firstSeq}..${log.lastSeq}) before they were sent to the backup`;
        this.logger.error({ nodeId: s.nodeId }, why);
        this.sendControl(s, { t: 'refuse', code: RefuseCode.CannotResume, reason: why });
        this.detach(s, why);
        this.closeConn(s, RefuseCode.CannotResume, why);
        return;
      }
      const entries = log.from(this.stream.sentSeq + 1, budget);
      let frame: Uint8Array;
      try {
        frame = encodeEntriesFrame(entries, this.maxFrameBytes);
      } catch (err) {
        const why = `cannot send seq ${entries[0]!.seq}: ${(err as Error).message} (maxFrameBytes ${this.maxFrameBytes}; entries must stay under maxEntryBytes ${budget})`;
        this.logger.error({ nodeId: s.nodeId }, why);
        this.detach(s, why);
        this.closeConn(s, 1011, 'primary cannot send its log');
        this.emit('error', new Error(`logging channel: ${why}`));
        return;
      }
      s.link.send(s.sealer!.seal(frame), (err) => this.onSent(s, err));
      this.stream.entriesSent(entries[entries.length - 1]!.seq);
      this.framesSent++;
    }
  }

  private onSent(s: Conn, err: Error | null | undefined): void {
    // Node passes null (not undefined) for a successful write.
    if (err != null || !s.blocked || this.session !== s) return;
    if (s.link.bufferedBytes <= this.maxBufferedBytes / 2) {
      s.blocked = false;
      this.pumpLater();
    }
  }

  private tick(): void {
    const s = this.session;
    if (s === null || !s.welcomed) return;
    this.performStream(s, this.stream.tick(this.clock.monoMs(), this.log.lastSeq));
  }

  // -------------------------------------------------------------------------------------------
  // Refusals, errors and closing

  private refuse(conn: Conn, refusal: RefusalError): void {
    if (conn.state === 'closed') return;
    this.logger.error({ code: refusal.code, remote: conn.remote, nodeId: conn.nodeId || undefined }, `refused backup: ${refusal.reason}`);
    this.sendControl(conn, { t: 'refuse', code: refusal.code, reason: refusal.reason });
    this.closeConn(conn, refusal.code, refusal.reason);
    this.emit('refused', { code: refusal.code, reason: refusal.reason, remote: conn.remote });
  }

  /** A bad frame: refuse during the handshake, drop the backup after it. */
  private protocolError(conn: Conn, problem: string): void {
    const reason = `protocol error: ${problem}`;
    if (conn.state === 'handshake') {
      this.refuse(conn, new RefusalError(RefuseCode.ProtocolError, reason));
      return;
    }
    if (conn.state !== 'attached') return;
    this.logger.error({ code: RefuseCode.ProtocolError, nodeId: conn.nodeId, remote: conn.remote }, `dropping backup: ${reason}`);
    this.sendControl(conn, { t: 'refuse', code: RefuseCode.ProtocolError, reason });
    this.detach(conn, reason);
    this.closeConn(conn, RefuseCode.ProtocolError, reason);
  }

  /** A frame from the backup failed authentication: tampering on the path. Drop the connection, not the backup's future. */
  private tampered(conn: Conn, err: FrameAuthError): void {
    if (conn.state === 'closed') return;
    const peer = `backup "${conn.nodeId}" at ${conn.remote}`;
    const reason = `frame authentication failed: frame #${err.seq} (${err.direction}) from ${peer}: ${err.detail}`;
    this.logger.error(
      { code: RefuseCode.FrameAuthFailed, tampering: true, seq: err.seq, direction: err.direction, nodeId: conn.nodeId, remote: conn.remote },
      `tampering: frame #${err.seq} ${err.direction} from ${peer} failed authentication (${err.detail}); closing the connection, the backup will dial again and resume`,
    );
    this.sendControl(conn, { t: 'refuse', code: RefuseCode.FrameAuthFailed, reason });
    if (conn.state === 'attached') this.detach(conn, reason);
    else this.emit('refused', { code: RefuseCode.FrameAuthFailed, reason, remote: conn.remote });
    this.closeConn(conn, RefuseCode.FrameAuthFailed, reason);
  }

  private onSocketError(conn: Conn, err: Error & { code?: string }): void {
    // ws reports frames it cannot accept (oversized, bad opcode, bad masking) here and then closes
    // the connection itself (1009 / 1002); socket errors (ECONNRESET) end in 'close' too.
    const oversized = err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH';
    const problem = oversized ? `frame larger than maxFrameBytes (${this.maxFrameBytes} bytes)` : err.message;
    if (err.code?.startsWith('WS_ERR_')) {
      const reason = `protocol error: ${problem}`;
      conn.closeReason ??= reason;
      this.logger.error({ code: RefuseCode.ProtocolError, nodeId: conn.nodeId || undefined, remote: conn.remote, wsCode: err.code }, `closing connection: ${reason}`);
      if (conn.state === 'handshake') this.emit('refused', { code: RefuseCode.ProtocolError, reason, remote: conn.remote });
    } else {
      conn.closeReason ??= `socket error: ${err.message}`;
      this.logger.warn({ nodeId: conn.nodeId || undefined, remote: conn.remote, err: { code: err.code, message: err.message } }, 'logging-channel socket error');
    }
    if (conn.state === 'attached') this.detach(conn, conn.closeReason);
    conn.state = 'closed';
    conn.handshakeTimer?.cancel();
  }

  private onClose(conn: Conn, code: number, reason: string): void {
    conn.handshakeTimer?.cancel();
    this.pending.delete(conn);
    if (conn.state === 'handshake') {
      this.logger.warn({ remote: conn.remote, code }, `connection closed during the handshake${reason ? `: ${reason}` : ''}`);
    }
    if (conn.state === 'attached') {
      this.detach(conn, conn.closeReason ?? `connection closed by the backup (code ${code}${reason ? `: ${reason}` : ''})`);
    }
    conn.state = 'closed';
  }

  /** Forget the attached backup (once) and tell the node. */
  private detach(conn: Conn, reason: string): void {
    if (this.session !== conn) return;
    const sentSeq = this.stream.sentSeq;
    this.session = null;
    this.stream.detach();
    conn.state = 'closed';
    conn.closeReason ??= reason;
    this.logger.info({ nodeId: conn.nodeId, remote: conn.remote, sentSeq, ackedSeq: this.stream.ackedSeq }, `backup detached: ${reason}`);
    this.emit('detached', { nodeId: conn.nodeId, reason });
  }

  /** Send a close frame and destroy the socket if the peer does not answer within CLOSE_GRACE_MS. */
  private closeConn(conn: Conn, code: number, reason: string): void {
    conn.closeReason ??= reason;
    conn.state = 'closed';
    conn.handshakeTimer?.cancel();
    this.pending.delete(conn);
    conn.link.close(code, reason);
  }

  private sendControl(conn: Conn, message: ControlObject): void {
    if (message.t === 'welcome') {
      conn.welcomed = true;
      // The welcome is the first sealed frame (#0): it proves our keys, so the handshake transcript, to the backup.
      if (conn.sendKey !== null && conn.sealer === null) conn.sealer = new FrameSealer(conn.sendKey);
    }
    this.send(conn, encodeControlFrame(message));
  }

  /** Sends `frame`, sealed once the welcome has gone out. Seals only what really goes out: the seqs stay dense. */
  private send(conn: Conn, frame: Uint8Array): void {
    if (conn.link.open) conn.link.send(conn.sealer !== null ? conn.sealer.seal(frame) : frame);
  }
}

/** Tick often enough to notice silence within a quarter of the timeout, and to heartbeat on time. */
function tickMs(heartbeatMs: number, heartbeatTimeoutMs: number): number {
  return Math.max(5, Math.min(heartbeatMs, Math.floor(heartbeatTimeoutMs / 4)));
}
