// Authentication of every logging-channel frame after the handshake.
//
// Keys: HKDF-SHA256 over the shared secret, salted with a hash of the handshake transcript (the
// exact bytes of the hello and auth frames, which hold both nonces, both identities and the resume
// point), one key per direction. So the keys are fresh per connection, and a relay that altered the
// hello or the auth makes the two ends derive different keys: the welcome, the first sealed frame,
// then fails to authenticate.
//
// Frames: a sealed frame is the plain frame followed by a 16-byte tag,
//   tag = HMAC-SHA256(key of the direction, u64be(seq) || frame)[0..16)
// where seq counts the sealed frames of that direction from 0 (the welcome is primary->backup #0).
// The seq is not on the wire: the receiver uses the next one it expects, so a replayed, reordered,
// dropped or injected frame fails exactly like a modified one. It is cost per frame (frames are
// batches), not per entry.

import { createHash, createHmac, hkdfSync, timingSafeEqual } from 'node:crypto';

/** Bytes of the tag appended to each sealed frame (HMAC-SHA256 truncated). */
export const FRAME_TAG_BYTES = 16;
const KEY_BYTES = 32;
/** On a failed frame, how many seqs either side of the expected one are tried to name a replay or a reorder. */
const DIAGNOSE_WINDOW = 16;

export type Direction = 'primary->backup' | 'backup->primary';

export interface ChannelKeys {
  primaryToBackup: Buffer;
  backupToPrimary: Buffer;
}

/** The per-connection keys from the secret and the handshake's hello and auth frames (as sent). */
export function deriveChannelKeys(secret: Buffer, helloFrame: Uint8Array, authFrame: Uint8Array): ChannelKeys {
  const transcript = createHash('sha256').update('ftjs logging channel v1\0').update(helloFrame).update(authFrame).digest();
  const key = (direction: Direction): Buffer => Buffer.from(hkdfSync('sha256', secret, transcript, `ftjs logging channel v1 ${direction}`, KEY_BYTES));
  return { primaryToBackup: key('primary->backup'), backupToPrimary: key('backup->primary') };
}

function tagOf(key: Buffer, seq: number, frame: Uint8Array): Buffer {
  const seqBytes = Buffer.alloc(8);
  seqBytes.writeBigUInt64BE(BigInt(seq));
  return createHmac('sha256', key).update(seqBytes).update(frame).digest().subarray(0, FRAME_TAG_BYTES);
}

/** Seals the frames one side sends, in order. */
export class FrameSealer {
  private seq = 0;
  constructor(private readonly key: Buffer) {}

  /** Seq the next sealed frame will carry. */
  get nextSeq(): number {
    return this.seq;
  }

  /** `frame` + its tag, as a fresh buffer (ws may hold it until written). */
  seal(frame: Uint8Array): Uint8Array {
    const tag = tagOf(this.key, this.seq++, frame);
    const out = Buffer.allocUnsafe(frame.byteLength + FRAME_TAG_BYTES);
    out.set(frame, 0);
    out.set(tag, frame.byteLength);
    return out;
  }
}

/** A frame that failed authentication: tampered, replayed, reordered, dropped before it, or injected. */
export class FrameAuthError extends Error {
  override name = 'FrameAuthError';
  constructor(
    /** The seq the receiver expected this frame to carry. */
    readonly seq: number,
    readonly direction: Direction,
    readonly detail: string,
  ) {
    super(`frame #${seq} (${direction}) failed authentication: ${detail}`);
  }
}

/** Checks the frames one side receives, in order. */
export class FrameOpener {
  private seq = 0;
  constructor(
    private readonly key: Buffer,
    readonly direction: Direction,
  ) {}

  get nextSeq(): number {
    return this.seq;
  }

  /** The plain frame (a view into `sealed`), or a FrameAuthError. The seq advances only on success. */
  open(sealed: Uint8Array): Uint8Array {
    if (sealed.byteLength <= FRAME_TAG_BYTES) {
      throw new FrameAuthError(this.seq, this.direction, `${sealed.byteLength} bytes, too short to hold a frame and its ${FRAME_TAG_BYTES}-byte tag`);
    }
    const split = sealed.byteLength - FRAME_TAG_BYTES;
    const frame = sealed.subarray(0, split);
    const tag = sealed.subarray(split);
    if (!timingSafeEqual(tagOf(this.key, this.seq, frame), tag)) {
      throw new FrameAuthError(this.seq, this.direction, this.diagnose(frame, tag));
    }
    this.seq++;
    return frame;
  }

  /** Only on failure: is it a genuine frame out of place (replay, reorder, drop) or altered bytes? */
  private diagnose(frame: Uint8Array, tag: Uint8Array): string {
    for (let d = 1; d <= DIAGNOSE_WINDOW; d++) {
      if (this.seq - d >= 0 && tagOf(this.key, this.seq - d, frame).equals(tag)) {
        return `it is frame #${this.seq - d} again (a replay)`;
      }
      if (tagOf(this.key, this.seq + d, frame).equals(tag)) {
        return `it is frame #${this.seq + d}, sent later (${d} frame${d === 1 ? '' : 's'} before it dropped or reordered)`;
      }
    }
    return 'its tag does not match its bytes (altered on the way, or not sent by the peer)';
  }
}
