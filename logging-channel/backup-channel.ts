// The backup's end of the logging channel: dials the primary, authenticates both ways, receives the
// log, acknowledges it, and keeps reconnecting until closed or refused.
//
// Receipt is acknowledged BEFORE the entries are handed to the node ('entries'): the Output Rule is
// about receipt, not execution, and the primary's outputs wait on this ACK, so it must not queue
// behind replay work. Entries are delivered exactly once and in order across reconnects: a resumed
// connection starts at receivedSeq + 1, a resend overlap is dropped, a gap is a protocol error.
//
// Every frame after our auth is sealed both ways (frame-mac.ts). A frame that fails its tag is
// tampering: it is logged with its seq and direction, never decoded (so never a divergence), and the
// connection closes with 4009; the next dial resumes after receivedSeq.
//
// A refusal that retrying cannot fix (4001-4006: wrong secret, other engine or guest, another backup
// attached, log no longer retained; 4008: another process with our nodeId) stops the channel and
// emits 'refused': it is fatal for the node. Anything else (lost connection, protocol error,
// handshake timeout, silence) is logged and followed by a new dial after reconnectDelayMs.
//
// The rules (what the auth says of this backup's log, what a welcome must be, receipt and acks,
// heartbeats, silence) are the pure BackupSession's; this shell moves bytes through an injected
// Transport (ws-transport.ts in production, the simulator's network in test/sim), seals and opens
// frames, and arms timers.

import { createHash } from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { Logger } from 'pino';
import {
  asRefusal,
  type BackupIdentity,
  computeProof,
  encodeSnapshotBaseOffer,
  expectMessage,
  isFatalRefusal,
  newNonce,
  RefusalError,
  RefuseCode,
  type Secret,
  type SnapshotBaseOffer,
  secretBytes,
  snapshotBaseOfferProblem,
  verifyProof,
} from './auth.js';
import { BackupSession, type BackupSessionAction, type SnapshotMeta } from './backup-session.js';
import { type ChannelTls, checkChannelUrl } from './channel-tls.js';
import type { Entry } from './entry.js';
import type { EpochHistory } from './epoch-history.js';
import { deriveChannelKeys, FRAME_TAG_BYTES, FrameAuthError, FrameOpener, FrameSealer } from './frame-mac.js';
import { type ControlObject, decodeFrame, encodeAckFrame, encodeControlFrame, encodeHeartbeatFrame, type Frame, FrameError, type ReplayProgress } from './frames.js';
import { channelSettings, positiveInt } from './settings.js';
import { type Clock, realClock, realTimers, type TimerHandle, type Timers } from './time.js';
import type { Connection, Transport } from './transport.js';
import { wsTransport } from './ws-transport.js';

export { MAX_SNAPSHOT_BYTES, type SnapshotMeta } from './backup-session.js';

/** Default pause between a lost connection and the next dial, in ms. */
export const DEFAULT_RECONNECT_DELAY_MS = 200;
/** While the primary cannot be reached, a warning with the attempt count and last error this often. */
export const DIAL_WARN_EVERY_MS = 3_000;
/** A connection silent this many heartbeat timeouts is taken for half-open and dropped (dropIfHalfOpen). */
export const HALF_OPEN_TIMEOUTS = 4;

export interface BackupChannelOptions {
  /** ws://host:port of the primary's logging channel. */
  url: string;
  secret: Secret;
  identity: BackupIdentity;
  nodeId: string;
  heartbeatMs?: number;
  heartbeatTimeoutMs?: number;
  maxFrameBytes?: number;
  reconnectDelayMs?: number;
  handshakeTimeoutMs?: number;
  /** Entries this backup already holds (e.g. from a snapshot): the stream resumes after it. Default 0. */
  receivedSeq?: number;
  /**
   * A VM memory this backup holds (e.g. from a checkpoint), described by its page hashes
   * (hypervisor/vm/snapshot-wire.ts snapshotBaseOf). Offered while joining (receivedSeq 0): a primary
   * that joins us by snapshot may then send a delta against it ('snapshot' event with delta: true).
   * Left out of the auth message if it would not fit in one frame.
   */
  snapshotBase?: SnapshotBaseOffer;
  /** Monotonic time and timers (default: the process's own). */
  clock?: Clock;
  timers?: Timers;
  /** Dial wss:// with mutual TLS (the url must be wss://, and wss:// needs this). */
  tls?: ChannelTls;
  /** The network (default: WebSocket, ws-transport.ts). */
  transport?: Transport;
  /** Entropy for the handshake's nonces (default: the OS's). */
  randomBytes?: (length: number) => Uint8Array;
  logger: Logger;
}

export interface SnapshotEvent {
  seq: number;
  pos: number;
  data: Uint8Array;
  /** `data` holds only the pages that differ from the offered base: decode it with that base's memory. */
  delta: boolean;
  /** When `delta`: the digest of the base (the offered snapshotBase's). Null for a full snapshot. */
  baseDigest: string | null;
}

export interface WelcomeEvent {
  /** Joining by snapshot: a 'snapshot' event follows, then entries from `snapshot.seq + 1`. */
  snapshot?: SnapshotMeta;
  bootConfig: unknown;
  /** Seq of the first entry this connection carries (receivedSeq + 1 at the time of the welcome). */
  firstSeq: number;
  /** False for the first welcome of this channel, true after a reconnect. */
  reconnect: boolean;
}
export interface BackupRefusedEvent {
  code: number;
  reason: string;
}
export interface DisconnectedEvent {
  code: number;
  reason: string;
}
export interface PrimarySilentEvent {
  silentMs: number;
}

export type BackupChannelEvents = {
  welcome: [WelcomeEvent];
  /** The joining snapshot, complete and verified (its receipt is already acknowledged). */
  snapshot: [SnapshotEvent];
  /** New entries, dense and in order, each delivered once. Their receipt is already acknowledged. */
  entries: [entries: Entry[]];
  /** No frame from the primary for heartbeatTimeoutMs (connected or not). Once per silence. */
  'primary-silent': [PrimarySilentEvent];
  /** Fatal refusal: the channel has stopped and will not reconnect. */
  refused: [BackupRefusedEvent];
  /** A welcomed connection ended (not by our own pause/close); a new dial follows unless refused. */
  disconnected: [DisconnectedEvent];
};

interface Conn {
  link: Connection;
  state: 'hello' | 'welcome' | 'snapshot' | 'open' | 'closed';
  /** While receiving a snapshot: its description and the chunks so far. */
  snapshot: { meta: SnapshotMeta; chunks: Uint8Array[]; received: number } | null;
  clientNonce: string;
  serverNonce: string;
  handshakeTimer: TimerHandle | undefined;
  closeReason: string | undefined;
  /** The close event has come (the connection is gone). */
  ended: boolean;
  /** Set when this connection ended in a refusal already reported (by message or by us). */
  refusalHandled: boolean;
  welcomed: boolean;
  /** Set once our auth is out: we seal everything after it, and expect the primary to seal from its welcome on. */
  sealer: FrameSealer | null;
  opener: FrameOpener | null;
}

export class BackupChannel extends EventEmitter<BackupChannelEvents> {
  private readonly url: string;
  private readonly tls: ChannelTls | undefined;
  private readonly secret: Buffer;
  private readonly identity: BackupIdentity;
  readonly nodeId: string;
  /** The node's replay progress, sent with every heartbeat (the primary bounds the backlog with it). */
  replayProgress: (() => ReplayProgress) | null = null;
  private readonly heartbeatMs: number;
  private readonly heartbeatTimeoutMs: number;
  private readonly handshakeTimeoutMs: number;
  private readonly reconnectDelayMs: number;
  private snapshotBase: SnapshotBaseOffer | null;
  readonly maxFrameBytes: number;
  private readonly logger: Logger;
  private conn: Conn | null = null;
  /** The stream's rules and facts (received seq, heartbeats, silence): one owner, pure. */
  private readonly stream: BackupSession;
  private readonly clock: Clock;
  private readonly timers: Timers;
  private readonly transport: Transport;
  private readonly randomBytes: ((length: number) => Uint8Array) | undefined;
  private readonly closedWaiters: Array<() => void> = [];
  private welcomes = 0;
  private failedDials = 0;
  private lastDialWarnAtMs = 0;
  private tickTimer: TimerHandle;
  private reconnectTimer: TimerHandle | undefined;
  private closed = false;
  private stopped = false;
  /** pause()d: no connection, no dials, no 'entries' until resume(). */
  private paused = false;
  /** After a reported silence: when to drop the connection if nothing was heard since `heardAtMs`. */
  private halfOpenCheck: { heardAtMs: number | null; atMs: number } | null = null;

  private constructor(opts: BackupChannelOptions) {
    super();
    checkChannelUrl(opts.url, opts.tls);
    this.url = opts.url;
    this.tls = opts.tls;
    this.secret = secretBytes(opts.secret);
    this.identity = { ...opts.identity };
    if (typeof opts.nodeId !== 'string' || opts.nodeId.length === 0) throw new RangeError('BackupChannel: nodeId must be a non-empty string');
    this.nodeId = opts.nodeId;
    const settings = channelSettings('BackupChannel', opts);
    this.heartbeatMs = settings.heartbeatMs;
    this.heartbeatTimeoutMs = settings.heartbeatTimeoutMs;
    this.handshakeTimeoutMs = settings.handshakeTimeoutMs;
    this.maxFrameBytes = settings.maxFrameBytes;
    this.reconnectDelayMs = positiveInt('BackupChannel', 'reconnectDelayMs', opts.reconnectDelayMs ?? DEFAULT_RECONNECT_DELAY_MS);
    const start = opts.receivedSeq ?? 0;
    if (!Number.isSafeInteger(start) || start < 0) throw new RangeError(`BackupChannel: receivedSeq must be an integer >= 0, got ${start}`);
    this.stream = new BackupSession({ heartbeatMs: this.heartbeatMs, heartbeatTimeoutMs: this.heartbeatTimeoutMs }, start);
    this.clock = opts.clock ?? realClock;
    this.timers = opts.timers ?? realTimers;
    this.transport = opts.transport ?? wsTransport;
    this.randomBytes = opts.randomBytes;
    this.snapshotBase = opts.snapshotBase ?? null;
    if (this.snapshotBase !== null) {
      const problem = snapshotBaseOfferProblem({ ...this.snapshotBase }, this.snapshotBase.pageHashes.byteLength);
      if (problem !== null) throw new RangeError(`BackupChannel: snapshotBase.${problem[0]} must be ${problem[1]}`);
    }
    this.logger = opts.logger.child({ component: 'logging-channel', role: 'backup', nodeId: this.nodeId });
    this.tickTimer = this.timers.every(tickMs(this.heartbeatMs, this.heartbeatTimeoutMs), () => this.tick(), true);
  }

  /**
   * Create the channel and dial on the next tick, so that listeners attached right after this call
   * see every event. It keeps (re)connecting until close() or a fatal refusal.
   */
  static connect(opts: BackupChannelOptions): BackupChannel {
    const channel = new BackupChannel(opts);
    channel.timers.soon(() => channel.dial());
    return channel;
  }

  /** Every entry up to this seq has been received (and acknowledged). */
  get receivedSeq(): number {
    return this.stream.receivedSeq;
  }

  /** The epochs of what was received (a backup that goes live continues its log with this lineage). */
  get history(): EpochHistory {
    return this.stream.history;
  }

  /** The primary's last log seq, as of its last heartbeat (lag = primarySeq - receivedSeq). */
  get primarySeq(): number {
    return this.stream.primarySeq;
  }

  /** Welcomed by an authenticated primary and the connection is up. */
  get connected(): boolean {
    return this.conn !== null && this.conn.state === 'open';
  }

  /**
   * The clock's monoMs() at which the last frame from the authenticated primary arrived (any frame
   * counts as a heartbeat); null before the first welcome.
   */
  get lastHeardAtMs(): number | null {
    return this.stream.lastHeardAtMs;
  }

  /** True between pause() and resume(). */
  get isPaused(): boolean {
    return this.paused;
  }

  /**
   * Stop receiving, at once: close the connection and do not dial again until resume(). No
   * 'entries' event follows this call, and nothing more is acknowledged, so the entries received so
   * far are a fixed set (the drain before a go-live replays exactly these). Silence reports stop too.
   */
  pause(): void {
    if (this.paused || this.closed) return;
    this.paused = true;
    this.reconnectTimer?.cancel();
    const conn = this.conn;
    if (conn !== null && conn.state !== 'closed') this.closeConn(conn, 1001, 'backup paused');
    this.logger.info({ receivedSeq: this.stream.receivedSeq }, 'logging channel paused');
  }

  /** Undo pause(): dial again, resuming after receivedSeq. */
  resume(): void {
    if (!this.paused || this.closed) return;
    this.paused = false;
    this.stream.resumed(this.clock.monoMs());
    this.logger.info({ receivedSeq: this.stream.receivedSeq }, 'logging channel resumed');
    if (this.conn === null) this.dial();
  }

  /** Stop: close the connection and never reconnect. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.tickTimer.cancel();
    this.reconnectTimer?.cancel();
    const conn = this.conn;
    if (conn !== null && !conn.ended) {
      await new Promise<void>((resolve) => {
        this.closedWaiters.push(resolve);
        this.closeConn(conn, 1000, 'backup shutting down');
      });
    }
    this.logger.info('logging channel closed');
  }

  // -------------------------------------------------------------------------------------------
  // Dialling and the handshake

  private dial(): void {
    if (this.closed || this.stopped || this.paused || this.conn !== null) return;
    const link = this.transport.dial(this.url, { maxFrameBytes: this.maxFrameBytes + FRAME_TAG_BYTES, ...(this.tls ? { tls: this.tls } : {}) });
    const conn: Conn = {
      link,
      state: 'hello',
      clientNonce: newNonce(this.randomBytes),
      serverNonce: '',
      handshakeTimer: undefined,
      closeReason: undefined,
      ended: false,
      refusalHandled: false,
      welcomed: false,
      snapshot: null,
      sealer: null,
      opener: null,
    };
    this.conn = conn;
    // Covers the TCP connect, the HTTP upgrade, hello and welcome.
    conn.handshakeTimer = this.timers.after(this.handshakeTimeoutMs, () => {
      this.protocolError(conn, `handshake timeout: no welcome within ${this.handshakeTimeoutMs} ms`);
    });
    link.on({
      message: (frame, isBinary) => this.onMessage(conn, frame, isBinary),
      error: (err) => this.onSocketError(conn, err),
      close: (code, reason) => this.onClose(conn, code, reason),
    });
  }

  private onMessage(conn: Conn, data: Uint8Array, isBinary: boolean): void {
    if (conn.state === 'closed' || this.conn !== conn) return;
    let frame: Frame;
    let bytes: Uint8Array;
    try {
      if (!isBinary) throw new FrameError('text message (the logging channel carries binary frames only)');
      bytes = data;
      // Authenticate before decoding: a tampered frame never reaches the codec, let alone the VM,
      // so it can never be taken for a divergence.
      if (conn.opener !== null) bytes = conn.opener.open(bytes);
      frame = decodeFrame(bytes);
    } catch (err) {
      if (err instanceof FrameAuthError) {
        if (conn.state === 'welcome' && this.onUnsealedReply(conn, bytes!)) return;
        this.tampered(conn, err);
        return;
      }
      if (!(err instanceof FrameError)) throw err;
      this.protocolError(conn, err.message);
      return;
    }
    try {
      if (frame.type === 'control') {
        const refusal = asRefusal(frame.message);
        if (refusal !== null) {
          this.onRefused(conn, refusal.code, refusal.reason);
          return;
        }
      }
      switch (conn.state) {
        case 'hello':
          this.onHello(conn, frame, bytes);
          return;
        case 'welcome':
          this.onWelcome(conn, frame);
          return;
        case 'snapshot':
          this.onSnapshotFrame(conn, frame);
          return;
        case 'open':
          this.onStreamFrame(conn, frame);
          return;
      }
    } catch (err) {
      if (!(err instanceof RefusalError)) throw err;
      if (err.code === RefuseCode.ProtocolError) this.protocolError(conn, err.reason.replace(/^protocol error: /, ''));
      else this.refuseFatally(conn, err.code, err.reason);
    }
  }

  private onHello(conn: Conn, frame: Frame, helloFrame: Uint8Array): void {
    if (frame.type !== 'control') {
      throw new RefusalError(RefuseCode.ProtocolError, `protocol error: expected the hello CONTROL message, got a ${frame.type.toUpperCase()} frame`);
    }
    const hello = expectMessage(frame.message, 'hello');
    conn.serverNonce = hello.nonce;
    const auth: ControlObject = {
      t: 'auth',
      nonce: conn.clientNonce,
      proof: computeProof(this.secret, 'backup', hello.nonce, conn.clientNonce),
      formatVersion: this.identity.formatVersion,
      engine: this.identity.engine,
      nodeId: this.nodeId,
      ...this.stream.resumePoint(),
    };
    if (this.identity.guestHash !== undefined) auth.guestHash = this.identity.guestHash;
    // Only a join (nothing received yet) is served by a snapshot: a resume never uses the base.
    let authFrame = encodeControlFrame(auth);
    if (this.snapshotBase !== null && this.stream.receivedSeq === 0) {
      const offered = encodeControlFrame({ ...auth, snapshotBase: encodeSnapshotBaseOffer(this.snapshotBase) });
      if (offered.byteLength <= this.maxFrameBytes) authFrame = offered;
      else {
        this.logger.warn(
          { memoryBytes: this.snapshotBase.memoryBytes, pageBytes: this.snapshotBase.pageBytes, frameBytes: offered.byteLength, maxFrameBytes: this.maxFrameBytes },
          'the snapshot base does not fit in one frame: not offering it (a join will take a full snapshot)',
        );
        this.snapshotBase = null;
      }
    }
    conn.state = 'welcome';
    this.send(conn, authFrame);
    // Everything after our auth is sealed both ways, under keys bound to this exact hello and auth.
    const keys = deriveChannelKeys(this.secret, helloFrame, authFrame);
    conn.sealer = new FrameSealer(keys.backupToPrimary);
    conn.opener = new FrameOpener(keys.primaryToBackup, 'primary->backup');
  }

  /**
   * Before the welcome, an unsealed reply is legitimate in two cases: the primary refused us before
   * it could derive keys (a refuse), or the peer does not know the secret (its welcome's proof is
   * wrong: refused as 4001, fatal, as before frames were sealed). True when handled.
   */
  private onUnsealedReply(conn: Conn, bytes: Uint8Array): boolean {
    for (const candidate of [bytes, bytes.subarray(0, Math.max(0, bytes.byteLength - FRAME_TAG_BYTES))]) {
      let frame: Frame;
      try {
        frame = decodeFrame(candidate);
      } catch {
        continue;
      }
      if (frame.type !== 'control') continue;
      const refusal = candidate === bytes ? asRefusal(frame.message) : null;
      if (refusal !== null) {
        this.onRefused(conn, refusal.code, refusal.reason);
        return true;
      }
      if (frame.message.t === 'welcome' && typeof frame.message.proof === 'string' && !verifyProof(this.secret, 'primary', conn.clientNonce, conn.serverNonce, frame.message.proof)) {
        this.refuseFatally(conn, RefuseCode.AuthFailed, `auth failed: the primary's proof does not match this backup's shared secret (wrong --secret, or not the primary at ${this.url})`);
        return true;
      }
    }
    return false;
  }

  /** A frame from the primary failed authentication: tampering on the path. Not fatal: dial again and resume. */
  private tampered(conn: Conn, err: FrameAuthError): void {
    if (conn.state === 'closed') return;
    const peer = `the primary at ${this.url}`;
    const reason = `frame authentication failed: frame #${err.seq} (${err.direction}) from ${peer}: ${err.detail}`;
    this.logger.error(
      { code: RefuseCode.FrameAuthFailed, tampering: true, seq: err.seq, direction: err.direction, url: this.url, receivedSeq: this.stream.receivedSeq },
      `tampering: frame #${err.seq} ${err.direction} from ${peer} failed authentication (${err.detail}); nothing of it was used; closing the connection, will dial again and resume after seq ${this.stream.receivedSeq}`,
    );
    this.send(conn, encodeControlFrame({ t: 'refuse', code: RefuseCode.FrameAuthFailed, reason }));
    this.closeConn(conn, RefuseCode.FrameAuthFailed, reason);
  }

  private onWelcome(conn: Conn, frame: Frame): void {
    if (frame.type !== 'control') {
      throw new RefusalError(RefuseCode.ProtocolError, `protocol error: expected the welcome CONTROL message, got a ${frame.type.toUpperCase()} frame`);
    }
    const welcome = expectMessage(frame.message, 'welcome');
    if (!verifyProof(this.secret, 'primary', conn.clientNonce, conn.serverNonce, welcome.proof)) {
      throw new RefusalError(RefuseCode.AuthFailed, `auth failed: the primary's proof does not match this backup's shared secret (wrong --secret, or not the primary at ${this.url})`);
    }
    const snapshot = (welcome as { snapshot?: SnapshotMeta }).snapshot;
    const welcomed = this.stream.welcome(welcome.firstSeq, snapshot ?? null, this.clock.monoMs(), welcome.lineage ?? [], this.snapshotBase?.digest ?? null);
    conn.handshakeTimer?.cancel();
    conn.state = snapshot ? 'snapshot' : 'open';
    conn.snapshot = snapshot ? { meta: snapshot, chunks: [], received: 0 } : null;
    conn.welcomed = true;
    const reconnect = this.welcomes > 0;
    this.welcomes++;
    this.failedDials = 0;
    this.performStream(conn, welcomed);
    this.logger.info({ url: this.url, firstSeq: welcome.firstSeq, reconnect }, reconnect ? 'reconnected to the primary' : 'connected to the primary');
    this.emit('welcome', { bootConfig: welcome.bootConfig, firstSeq: welcome.firstSeq, reconnect, ...(snapshot ? { snapshot } : {}) });
  }

  private onSnapshotFrame(conn: Conn, frame: Frame): void {
    this.performStream(conn, this.stream.heard(this.clock.monoMs()));
    if (frame.type === 'heartbeat') return;
    if (frame.type !== 'snapshot') throw new RefusalError(RefuseCode.ProtocolError, `protocol error: expected SNAPSHOT frames, got a ${frame.type.toUpperCase()} frame`);
    const snap = conn.snapshot!;
    snap.received += frame.bytes.byteLength;
    if (snap.received > snap.meta.bytes) throw new RefusalError(RefuseCode.ProtocolError, `protocol error: the snapshot is larger than the ${snap.meta.bytes} bytes announced`);
    snap.chunks.push(frame.bytes.slice());
    if (snap.received < snap.meta.bytes) return;
    const data = new Uint8Array(snap.meta.bytes);
    let offset = 0;
    for (const chunk of snap.chunks) {
      data.set(chunk, offset);
      offset += chunk.byteLength;
    }
    conn.snapshot = null;
    if (createHash('sha256').update(data).digest('hex') !== snap.meta.sha256) throw new RefusalError(RefuseCode.ProtocolError, 'protocol error: the snapshot does not match its SHA-256');
    conn.state = 'open';
    // Receipt first, as for entries: the state through this seq is now on this node.
    this.performStream(conn, this.stream.snapshotReceived(snap.meta.seq, this.clock.monoMs()));
    const baseDigest = snap.meta.baseDigest ?? null;
    this.logger.info({ seq: snap.meta.seq, bytes: data.byteLength, kind: baseDigest !== null ? 'incremental' : 'full', ...(baseDigest !== null ? { baseDigest } : {}) }, 'snapshot received');
    this.emit('snapshot', { seq: snap.meta.seq, pos: snap.meta.pos, data, delta: baseDigest !== null, baseDigest });
  }

  private onStreamFrame(conn: Conn, frame: Frame): void {
    const nowMs = this.clock.monoMs();
    switch (frame.type) {
      case 'entries':
        this.performStream(conn, this.stream.onEntries(frame.entries, nowMs));
        return;
      case 'heartbeat':
        this.performStream(conn, this.stream.onHeartbeat(frame.seq, nowMs));
        return;
      case 'ack':
        throw new RefusalError(RefuseCode.ProtocolError, 'protocol error: unexpected ACK frame from the primary');
      case 'snapshot':
        throw new RefusalError(RefuseCode.ProtocolError, 'protocol error: unexpected SNAPSHOT frame after the snapshot');
      case 'control':
        throw new RefusalError(RefuseCode.ProtocolError, `protocol error: unexpected CONTROL "${frame.message.t}" message after the handshake`);
    }
  }

  /** Performs what the stream session returned (`conn`: the connection it concerns, if any). */
  private performStream(conn: Conn | null, actions: BackupSessionAction[]): void {
    for (const action of actions) {
      switch (action.type) {
        case 'send-ack':
          // Receipt first (Output Rule): the primary's outputs wait on this ack, not on our replay.
          if (conn) this.send(conn, encodeAckFrame(action.seq));
          break;
        case 'deliver':
          this.emit('entries', action.entries);
          break;
        case 'send-heartbeat':
          if (conn) this.send(conn, encodeHeartbeatFrame(action.seq, this.replayProgress?.()));
          break;
        case 'primary-heard':
          this.logger.info('primary heard again');
          break;
        case 'primary-silent':
          this.onSilent(action.silentMs);
          break;
      }
    }
  }

  /** The node replayed more of what it received: report it soon (BackupSession.progressed). */
  progressed(): void {
    const conn = this.conn;
    const open = conn !== null && conn.state === 'open' ? conn : null;
    this.performStream(open, this.stream.progressed(this.clock.monoMs(), open !== null));
  }

  // -------------------------------------------------------------------------------------------
  // Liveness

  private tick(): void {
    const conn = this.conn;
    const open = conn !== null && conn.state === 'open' ? conn : null;
    this.performStream(open, this.stream.tick(this.clock.monoMs(), open !== null, this.paused));
    this.dropIfHalfOpen(this.clock.monoMs());
  }

  private onSilent(silentMs: number): void {
    this.logger.warn({ silentMs }, `primary silent for ${silentMs} ms (heartbeatTimeoutMs ${this.heartbeatTimeoutMs})`);
    this.emit('primary-silent', { silentMs });
    this.halfOpenCheck = { heardAtMs: this.stream.lastHeardAtMs, atMs: this.clock.monoMs() + (HALF_OPEN_TIMEOUTS - 1) * this.heartbeatTimeoutMs };
  }

  /**
   * A connection still silent HALF_OPEN_TIMEOUTS heartbeat timeouts on may be half-open (the
   * primary's host died without a FIN): drop it so the background dials can find a primary that is
   * alive. Not at the first timeout: on a loaded host a primary is often that late, and a reconnect
   * (a new handshake, under the same load) made a short silence a long one; the backup's role machine
   * decides about the primary on its own meanwhile.
   */
  private dropIfHalfOpen(nowMs: number): void {
    const check = this.halfOpenCheck;
    if (check === null || nowMs < check.atMs) return;
    this.halfOpenCheck = null;
    if (this.stream.lastHeardAtMs !== check.heardAtMs) return; // heard since: not half-open
    if (this.conn !== null && this.conn.state !== 'closed') {
      const c = this.conn;
      const silentMs = Math.round(nowMs - (check.heardAtMs ?? nowMs));
      c.closeReason ??= `primary silent for ${silentMs} ms`;
      this.closeConn(c, 1001, 'primary silent');
      c.link.terminate();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Errors, refusals and closing

  /** Not fatal: log, tell the primary why, close; a new dial follows. */
  private protocolError(conn: Conn, problem: string): void {
    if (conn.state === 'closed') return;
    const reason = `protocol error: ${problem}`;
    this.logger.error({ code: RefuseCode.ProtocolError, url: this.url }, `closing connection to the primary: ${reason}`);
    this.send(conn, encodeControlFrame({ t: 'refuse', code: RefuseCode.ProtocolError, reason }));
    this.closeConn(conn, RefuseCode.ProtocolError, reason);
  }

  /** We refuse the primary (its proof is wrong): fatal. */
  private refuseFatally(conn: Conn, code: number, reason: string): void {
    if (conn.state === 'closed') return;
    // A peer that failed its proof cannot hold our keys: tell it in clear (there is nothing to protect).
    this.send(conn, encodeControlFrame({ t: 'refuse', code, reason }), code !== RefuseCode.AuthFailed);
    this.closeConn(conn, code, reason);
    this.stop(conn, code, reason, 'refused the primary');
  }

  /** The primary refused us. */
  private onRefused(conn: Conn, code: number, reason: string): void {
    if (isFatalRefusal(code)) {
      this.closeConn(conn, 1000, 'refused');
      this.stop(conn, code, reason, 'refused by the primary');
      return;
    }
    this.logger.error({ code, url: this.url }, `refused by the primary: ${reason}`);
    this.closeConn(conn, 1000, 'refused');
  }

  private stop(conn: Conn, code: number, reason: string, what: string): void {
    conn.refusalHandled = true;
    conn.closeReason ??= `${what} (${code}): ${reason}`;
    if (this.stopped) return;
    this.stopped = true;
    this.reconnectTimer?.cancel();
    this.logger.error({ code, url: this.url }, `${what}; not reconnecting: ${reason}`);
    this.emit('refused', { code, reason });
  }

  private onSocketError(conn: Conn, err: Error & { code?: string }): void {
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') {
      conn.closeReason ??= `protocol error: frame larger than maxFrameBytes (${this.maxFrameBytes} bytes)`;
      this.logger.error({ code: RefuseCode.ProtocolError, url: this.url, wsCode: err.code }, `closing connection to the primary: ${conn.closeReason}`);
    } else if (err.code?.startsWith('WS_ERR_')) {
      conn.closeReason ??= `protocol error: ${err.message}`;
      this.logger.error({ code: RefuseCode.ProtocolError, url: this.url, wsCode: err.code }, `closing connection to the primary: ${conn.closeReason}`);
    } else {
      conn.closeReason ??= `${err.message}`;
      // While the primary is down every dial fails: say so once, then quietly keep trying.
      const level = conn.welcomed || this.failedDials === 0 ? 'warn' : 'debug';
      this.logger[level]({ url: this.url, err: { code: err.code, message: err.message } }, `logging channel: ${err.message}`);
    }
  }

  private onClose(conn: Conn, code: number, reason: string): void {
    conn.handshakeTimer?.cancel();
    conn.ended = true;
    for (const resolve of this.closedWaiters.splice(0)) resolve();
    const wasWelcomed = conn.welcomed;
    conn.state = 'closed';
    if (this.conn === conn) this.conn = null;
    if (!conn.refusalHandled && isFatalRefusal(code)) {
      // Closed with a refusal code but no refuse message reached us: the close frame is the refusal.
      this.stop(conn, code, reason || `closed with code ${code}`, 'refused by the primary');
    }
    const why = conn.closeReason ?? `connection closed by the primary (code ${code}${reason ? `: ${reason}` : ''})`;
    if (wasWelcomed && (this.paused || this.closed)) {
      // Our own doing (pause/close): not news for the node.
      this.logger.info({ code, url: this.url, receivedSeq: this.stream.receivedSeq }, `disconnected from the primary: ${why}`);
    } else if (wasWelcomed) {
      this.logger.warn({ code, url: this.url, receivedSeq: this.stream.receivedSeq }, `disconnected from the primary: ${why}`);
      this.emit('disconnected', { code, reason: why });
    } else {
      this.failedDials++;
      // A primary that stays unreachable (down, or a wrong address) is news every few seconds, not once.
      const nowMs = this.clock.monoMs();
      if (this.failedDials > 1 && nowMs - this.lastDialWarnAtMs >= DIAL_WARN_EVERY_MS) {
        this.lastDialWarnAtMs = nowMs;
        this.logger.warn({ url: this.url, attempts: this.failedDials, lastError: why }, `cannot reach the primary at ${this.url}: ${this.failedDials} attempts failed; last error: ${why}`);
      } else if (this.failedDials === 1) this.lastDialWarnAtMs = nowMs;
    }
    if (!this.closed && !this.stopped && !this.paused) {
      this.reconnectTimer?.cancel();
      this.reconnectTimer = this.timers.after(this.reconnectDelayMs, () => this.dial());
    }
  }

  private closeConn(conn: Conn, code: number, reason: string): void {
    conn.closeReason ??= reason;
    if (conn.state !== 'closed') conn.state = 'closed';
    conn.handshakeTimer?.cancel();
    conn.link.close(code, reason);
  }

  /** Sends `frame`, sealed once our auth is out. Seals only what really goes out: the seqs stay dense. */
  private send(conn: Conn, frame: Uint8Array, seal = true): void {
    if (conn.link.open) conn.link.send(seal && conn.sealer !== null ? conn.sealer.seal(frame) : frame);
  }
}

function tickMs(heartbeatMs: number, heartbeatTimeoutMs: number): number {
  return Math.max(5, Math.min(heartbeatMs, Math.floor(heartbeatTimeoutMs / 4)));
}
