// The container both file formats start with (traces, trace-format.ts; checkpoints,
// hypervisor/node/checkpoint-file.ts):
//
//   8 bytes  magic: a 7-character family ("FTJSTRC", "FTJSCKP") + the format version digit
//   u32      JSON length (little-endian)
//            JSON (UTF-8): the format's header
//   u32      CRC-32 of every byte before it (magic, length and JSON)
//
// followed by the format's body (trace blocks; a checkpoint's memory image and trailer CRC).
// Pure: bytes in, a head or a problem out. Each format words its own errors from the problem.

import { crc32 } from 'node:zlib';

export const CONTAINER_MAGIC_BYTES = 8;
/** The magic without its version digit: a file with this prefix is of the family, in some format. */
export const CONTAINER_FAMILY_BYTES = 7;
const U32_BYTES = 4;
/** Magic + JSON length: what must be read before the head's length is known. */
export const CONTAINER_PREFIX_BYTES = CONTAINER_MAGIC_BYTES + U32_BYTES;
export const CONTAINER_CRC_BYTES = U32_BYTES;

/** What the first bytes of a file say, before the whole head is read. */
export type PrefixCheck =
  | { ok: true; version: string; jsonLength: number; headBytes: number }
  | { ok: false; problem: 'NOT_FAMILY' }
  | { ok: false; problem: 'UNSUPPORTED_VERSION'; version: string }
  | { ok: false; problem: 'SHORT_PREFIX' }
  | { ok: false; problem: 'JSON_TOO_LONG'; jsonLength: number }
  | { ok: false; problem: 'SHORT_HEAD'; headBytes: number };

/** What the whole head says once read. */
export type HeadCheck = { ok: true; json: unknown } | { ok: false; problem: 'CHECKSUM'; stored: number; computed: number; crcAt: number } | { ok: false; problem: 'BAD_JSON'; message: string };

/** The head as it sits at the start of the file: `magic` (8 characters), JSON length, JSON, CRC. */
export function encodeContainerHead(magic: string, json: Uint8Array): Buffer {
  return Buffer.concat(containerHeadPieces(magic, [json]));
}

/**
 * The same head as pieces to be written one after the other, its JSON given in pieces too (a large
 * part encoded once and kept, hypervisor/node/checkpoint-file.ts): no copy of the JSON is made.
 */
export function containerHeadPieces(magic: string, json: readonly Uint8Array[]): Uint8Array[] {
  if (magic.length !== CONTAINER_MAGIC_BYTES) throw new RangeError(`container magic "${magic}" is not ${CONTAINER_MAGIC_BYTES} characters`);
  const prefix = Buffer.alloc(CONTAINER_PREFIX_BYTES);
  prefix.write(magic, 0, 'latin1');
  prefix.writeUInt32LE(
    json.reduce((n, piece) => n + piece.byteLength, 0),
    CONTAINER_MAGIC_BYTES,
  );
  const crc = Buffer.alloc(U32_BYTES);
  crc.writeUInt32LE(json.reduce((c, piece) => crc32(piece, c), crc32(prefix)));
  return [prefix, ...json, crc];
}

/**
 * Checks the first bytes of a file of `fileBytes` bytes (`prefix`: up to CONTAINER_PREFIX_BYTES of
 * them) against `family` and the format versions it reads. A file cut inside the magic is of the
 * family if what is there matches, and is then reported short, not of another version.
 */
export function checkContainerPrefix(prefix: Uint8Array, fileBytes: number, family: string, versions: readonly string[], maxJsonBytes: number): PrefixCheck {
  const magicPresent = Math.min(prefix.byteLength, CONTAINER_MAGIC_BYTES);
  const familyPresent = Math.min(magicPresent, CONTAINER_FAMILY_BYTES);
  for (let i = 0; i < familyPresent; i++) if (prefix[i] !== family.charCodeAt(i)) return { ok: false, problem: 'NOT_FAMILY' };
  if (magicPresent === CONTAINER_MAGIC_BYTES) {
    const version = String.fromCharCode(prefix[CONTAINER_FAMILY_BYTES]!);
    if (!versions.includes(version)) return { ok: false, problem: 'UNSUPPORTED_VERSION', version };
  }
  if (prefix.byteLength < CONTAINER_PREFIX_BYTES) return { ok: false, problem: 'SHORT_PREFIX' };
  const version = String.fromCharCode(prefix[CONTAINER_FAMILY_BYTES]!);
  const jsonLength = new DataView(prefix.buffer, prefix.byteOffset, CONTAINER_PREFIX_BYTES).getUint32(CONTAINER_MAGIC_BYTES, true);
  if (jsonLength > maxJsonBytes) return { ok: false, problem: 'JSON_TOO_LONG', jsonLength };
  const headBytes = CONTAINER_PREFIX_BYTES + jsonLength + U32_BYTES;
  if (headBytes > fileBytes) return { ok: false, problem: 'SHORT_HEAD', headBytes };
  return { ok: true, version, jsonLength, headBytes };
}

/** Checks the CRC of a whole head (`head`: exactly its bytes) and parses its JSON. */
export function checkContainerHead(head: Uint8Array): HeadCheck {
  const crcAt = head.byteLength - U32_BYTES;
  const stored = new DataView(head.buffer, head.byteOffset + crcAt, U32_BYTES).getUint32(0, true);
  const computed = crc32(head.subarray(0, crcAt));
  if (stored !== computed) return { ok: false, problem: 'CHECKSUM', stored, computed, crcAt };
  try {
    return { ok: true, json: JSON.parse(Buffer.from(head.buffer, head.byteOffset + CONTAINER_PREFIX_BYTES, crcAt - CONTAINER_PREFIX_BYTES).toString('utf8')) };
  } catch (error) {
    return { ok: false, problem: 'BAD_JSON', message: (error as Error).message };
  }
}
