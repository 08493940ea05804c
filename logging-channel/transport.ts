// What the logging channel's shells ask of the network: connections that carry whole binary frames
// (one frame per message, in order, or the connection ends), with open, message, error and close
// events. Production runs them on WebSocket (ws-transport.ts: ws://, or wss:// with mutual TLS); the
// simulator (test/sim/sim-net.ts) on its seeded network. The per-frame MAC is above this line (the
// shells seal and open every frame), so a transport never holds a key and cannot forge a frame.

import type { Logger } from 'pino';
import type { ChannelTls } from './channel-tls.js';

/** One connection, from either end. Events go to the handlers set with `on`. */
export interface Connection {
  /** "address:port" of the peer, for the logs. */
  readonly remote: string;
  /** Frames may be sent (the dial completed and no close began). */
  readonly open: boolean;
  /** Bytes handed to send() and not yet written (backpressure). */
  readonly bufferedBytes: number;
  /** Sends one whole frame; `written` runs once it is written out (an error: it never will be). */
  send(frame: Uint8Array, written?: (error?: Error) => void): void;
  /** Begins a close with `code` and `reason`; the socket is destroyed if the peer does not answer in time. */
  close(code: number, reason: string): void;
  /** Drops the connection at once (a dead peer never answers a close). */
  terminate(): void;
  on(handlers: ConnectionHandlers): void;
}

export interface ConnectionHandlers {
  /** A dialled connection is up (a listener's connections are up when handed over). */
  open?: () => void;
  /** One whole frame; `binary` false for a text message (not the protocol: refused by the shell). */
  message: (frame: Uint8Array, binary: boolean) => void;
  /** A transport error (code: e.g. 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' for an oversized frame, 'ECONNREFUSED'); 'close' follows. */
  error: (error: Error & { code?: string }) => void;
  /** The connection ended (once, whatever ended it). */
  close: (code: number, reason: string) => void;
}

export interface ListenOptions {
  host: string;
  /** 0 picks a free port (read it back from the listener). */
  port: number;
  /** Bound on one frame as it travels (the shell's frame plus its MAC tag), in bytes. */
  maxFrameBytes: number;
  /** A connection that does not complete its transport handshake (the HTTP upgrade) within this long is dropped. */
  handshakeTimeoutMs: number;
  tls?: ChannelTls;
  /** Asked before accepting a connection: a reason turns it away (too many handshakes, closing), null accepts. */
  turnAway: () => string | null;
  logger: Logger;
}

export interface Listener {
  readonly port: number;
  /** Served with mutual TLS (wss://). */
  readonly tls: boolean;
  /** Stops accepting and closes every connection still open. */
  close(): Promise<void>;
}

export interface DialOptions {
  maxFrameBytes: number;
  tls?: ChannelTls;
}

export interface Transport {
  listen(options: ListenOptions, onConnection: (connection: Connection) => void): Promise<Listener>;
  /** Dials `url` (ws:// or wss://); 'open' or 'error' + 'close' follows. */
  dial(url: string, options: DialOptions): Connection;
}
