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

import { createHash, createHmac, hash, hkdfSync, timingSafeEqual } from 'node:crypto';

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

/** SHA-256's block: HMAC's pads are one block long. */
const SHA256_BLOCK_BYTES = 64;
const SHA256_BYTES = 32;
/**
 * Frames up to this size are tagged by two one-shot hashes over a scratch copy (below); larger ones
 * (snapshot chunks) by createHmac, which reads the frame in place. Both compute the same HMAC.
 */
const ONE_SHOT_MAX_FRAME_BYTES = 64 * 1024;

/**
 * HMAC-SHA256(key, u64be(seq) || frame), truncated to FRAME_TAG_BYTES: the tag of frame #seq.
 *
 * Computed as RFC 2104 defines it, H((K ^ opad) || H((K ^ ipad) || message)), with the two padded
 * keys made once per connection and each hash one call of crypto.hash: createHmac builds an object,
 * copies the key and derives both pads again for every frame, and a frame is tagged twice per batch
 * (the log frame sealed, its ack opened) on each node. The tag is the same bytes as before
 * (test/frame-mac.test.ts checks it against createHmac): no change on the wire.
 */
class FrameTagger {
  /** (K ^ ipad) || u64be(seq) || frame, rewritten per frame (a frame is tagged synchronously, so one scratch serves). */
  private inner: Buffer;
  /** (K ^ opad) || H(inner). */
  private readonly outer = Buffer.alloc(SHA256_BLOCK_BYTES + SHA256_BYTES);

  constructor(private readonly key: Buffer) {
    const k = key.byteLength > SHA256_BLOCK_BYTES ? createHash('sha256').update(key).digest() : key;
    this.inner = Buffer.alloc(SHA256_BLOCK_BYTES + 8 + 256);
    for (let i = 0; i < SHA256_BLOCK_BYTES; i++) {
      const byte = i < k.byteLength ? k[i]! : 0;
      this.inner[i] = byte ^ 0x36;
      this.outer[i] = byte ^ 0x5c;
    }
  }

  tag(seq: number, frame: Uint8Array): Buffer {
    if (frame.byteLength > ONE_SHOT_MAX_FRAME_BYTES) {
      const seqBytes = Buffer.alloc(8);
      seqBytes.writeBigUInt64BE(BigInt(seq));
      return createHmac('sha256', this.key).update(seqBytes).update(frame).digest().subarray(0, FRAME_TAG_BYTES);
    }
    const length = SHA256_BLOCK_BYTES + 8 + frame.byteLength;
    if (this.inner.byteLength < length) {
      const grown = Buffer.alloc(Math.max(length, 2 * this.inner.byteLength));
      this.inner.copy(grown, 0, 0, SHA256_BLOCK_BYTES);
      this.inner = grown;
    }
    const inner = this.inner;
    // seq < 2^53 (a safe integer): its high 32 bits and low 32 bits, big-endian.
    inner.writeUInt32BE(Math.floor(seq / 0x1_0000_0000), SHA256_BLOCK_BYTES);
    inner.writeUInt32BE(seq >>> 0, SHA256_BLOCK_BYTES + 4);
    inner.set(frame, SHA256_BLOCK_BYTES + 8);
    this.outer.set(hash('sha256', inner.subarray(0, length), 'buffer'), SHA256_BLOCK_BYTES);
    return hash('sha256', this.outer, 'buffer').subarray(0, FRAME_TAG_BYTES);
  }
}

/** The tag of frame #seq under `key` (one-off: tests and tools; the channel keeps a FrameTagger per direction). */
export function frameTag(key: Buffer, seq: number, frame: Uint8Array): Buffer {
  return new FrameTagger(key).tag(seq, frame);
}

/** Seals the frames one side sends, in order. */
export class FrameSealer {
  private seq = 0;
  private readonly tagger: FrameTagger;
  constructor(key: Buffer) {
    this.tagger = new FrameTagger(key);
  }

  /** Seq the next sealed frame will carry. */
  get nextSeq(): number {
    return this.seq;
  }

  /** `frame` + its tag, as a fresh buffer (ws may hold it until written). */
  seal(frame: Uint8Array): Uint8Array {
    const tag = this.tagger.tag(this.seq++, frame);
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
  private readonly tagger: FrameTagger;
  constructor(
    key: Buffer,
    readonly direction: Direction,
  ) {
    this.tagger = new FrameTagger(key);
  }

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
    if (!timingSafeEqual(this.tagger.tag(this.seq, frame), tag)) {
      throw new FrameAuthError(this.seq, this.direction, this.diagnose(frame, tag));
    }
    this.seq++;
    return frame;
  }

  /** Only on failure: is it a genuine frame out of place (replay, reorder, drop) or altered bytes? */
  private diagnose(frame: Uint8Array, tag: Uint8Array): string {
    for (let d = 1; d <= DIAGNOSE_WINDOW; d++) {
      if (this.seq - d >= 0 && this.tagger.tag(this.seq - d, frame).equals(tag)) {
        return `it is frame #${this.seq - d} again (a replay)`;
      }
      if (this.tagger.tag(this.seq + d, frame).equals(tag)) {
        return `it is frame #${this.seq + d}, sent later (${d} frame${d === 1 ? '' : 's'} before it dropped or reordered)`;
      }
    }
    return 'its tag does not match its bytes (altered on the way, or not sent by the peer)';
  }
}
