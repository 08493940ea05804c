// A join's snapshot body compressed in paced pieces (issue 19, pauses). A backup that joins without a
// base (a fresh one) gets the whole memory: deflateBodies (snapshot-wire.ts) deflated it in one
// thread-pool job, ~300 ms of a core at 200 MiB at the node's priority, above the niced VM worker:
// the same stall a checkpoint's one-shot deflate caused. Here it goes through a checkpoint's
// compressor (checkpoint-compress.ts): 64 KiB pieces through one zlib stream, at its duty cycle,
// joined into one ordinary raw deflate stream, which deflateBodies.decompress reads as before.

import { deflateBodies, type SnapshotBodyCodec } from '../vm/snapshot-wire.js';
import { DEFAULT_COMPRESS_DUTY_PERCENT, MemoryCompressor } from './checkpoint-compress.js';

/** Level 1, as deflateBodies. */
const SNAPSHOT_BODY_LEVEL = 1;

export function pacedDeflateBodies(dutyPercent = DEFAULT_COMPRESS_DUTY_PERCENT): SnapshotBodyCodec {
  return {
    async compress(bytes) {
      // No page hashes: nothing to reuse, every chunk is deflated (zero ones too: they are cheap).
      const { pieces } = await new MemoryCompressor({ level: SNAPSHOT_BODY_LEVEL, dutyPercent }).compress(bytes);
      return Buffer.concat(pieces);
    },
    decompress: deflateBodies.decompress,
  };
}
