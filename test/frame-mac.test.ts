// The logging channel's frame tags (logging-channel/frame-mac.ts) are computed from precomputed
// HMAC pads with one-shot hashes instead of createHmac per frame (issue 19, pair19). The wire must not
// change: a tag is HMAC-SHA256(key, u64be(seq) || frame) truncated, as an older peer computes it.

import { createHmac, randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { FRAME_TAG_BYTES, FrameAuthError, FrameOpener, FrameSealer, frameTag } from '../dist/logging-channel/frame-mac.js';

/** The tag as createHmac computes it: the definition the channel has always used on the wire. */
function referenceTag(key: Buffer, seq: number, frame: Uint8Array): Buffer {
  const seqBytes = Buffer.alloc(8);
  seqBytes.writeBigUInt64BE(BigInt(seq));
  return createHmac('sha256', key).update(seqBytes).update(frame).digest().subarray(0, FRAME_TAG_BYTES);
}

describe('frame tags', () => {
  it('equal createHmac over u64be(seq) || frame for keys, seqs and frame sizes on both sides of every boundary', () => {
    // Keys shorter than, equal to and longer than SHA-256's 64-byte block (a longer key is hashed
    // first); frames from 1 byte to past the one-shot bound (64 KiB), where createHmac takes over.
    const keys = [randomBytes(32), randomBytes(1), randomBytes(64), randomBytes(65), randomBytes(131)];
    const sizes = [1, 55, 56, 64, 200, 257, 4096, 65_535, 65_536, 65_537, 300_000];
    const seqs = [0, 1, 255, 2 ** 32 - 1, 2 ** 32, 2 ** 32 + 7, Number.MAX_SAFE_INTEGER];
    for (const key of keys) {
      for (const size of sizes) {
        const frame = randomBytes(size);
        for (const seq of seqs) expect(frameTag(key, seq, frame).equals(referenceTag(key, seq, frame)), `key ${key.byteLength} B, frame ${size} B, seq ${seq}`).toBe(true);
      }
    }
  });

  it('a sealer and an opener with the same key agree frame after frame; a changed byte, a replay or a reorder fails', () => {
    const key = randomBytes(32);
    const sealer = new FrameSealer(key);
    const opener = new FrameOpener(key, 'primary->backup');
    const frames = [randomBytes(40), randomBytes(3000), randomBytes(70_000), randomBytes(9)];
    const sealed = frames.map((f) => sealer.seal(f));
    // Every sealed frame is the plain frame then the reference tag of its position.
    sealed.forEach((s, i) => expect(Buffer.from(s.subarray(s.byteLength - FRAME_TAG_BYTES)).equals(referenceTag(key, i, frames[i]!))).toBe(true));
    expect(Buffer.from(opener.open(sealed[0]!)).equals(frames[0]!)).toBe(true);
    // A replay of #0 where #1 is expected, then a reorder (#2 before #1): both refused, the opener stays at #1.
    expect(() => opener.open(sealed[0]!)).toThrow(FrameAuthError);
    expect(() => opener.open(sealed[2]!)).toThrow(/frame #2, sent later/);
    const altered = Buffer.from(sealed[1]!);
    altered[5]! ^= 1;
    expect(() => opener.open(altered)).toThrow(/does not match its bytes/);
    for (let i = 1; i < frames.length; i++) expect(Buffer.from(opener.open(sealed[i]!)).equals(frames[i]!)).toBe(true);
    expect(opener.nextSeq).toBe(frames.length);
  });
});
