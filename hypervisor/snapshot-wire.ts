// A VM snapshot as bytes, for a backup joining a running primary: a JSON header (engine, guest hash,
// device tables) and the linear memory compressed with deflate level 1 (fast; memory compresses
// 2-10x). Integrity is the channel's job (it sends the SHA-256 of these bytes with them).

import { promisify } from 'node:util';
import zlib from 'node:zlib';
import type { Snapshot } from './vm.js';

const deflateRaw = promisify(zlib.deflateRaw);
const inflateRaw = promisify(zlib.inflateRaw);

export class SnapshotWireError extends Error {
  override name = 'SnapshotWireError';
}

export async function encodeSnapshot(snapshot: Snapshot): Promise<Uint8Array> {
  const header = Buffer.from(JSON.stringify({ engine: snapshot.engine, guestHash: snapshot.guestHash, devices: snapshot.devices, memoryBytes: snapshot.memory.byteLength }));
  const memory = await deflateRaw(snapshot.memory, { level: 1 });
  const out = Buffer.allocUnsafe(4 + header.byteLength + memory.byteLength);
  out.writeUInt32LE(header.byteLength, 0);
  header.copy(out, 4);
  memory.copy(out, 4 + header.byteLength);
  return new Uint8Array(out.buffer, out.byteOffset, out.byteLength);
}

export async function decodeSnapshot(data: Uint8Array): Promise<Snapshot> {
  const buf = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  if (buf.byteLength < 4) throw new SnapshotWireError('snapshot too short');
  const headerBytes = buf.readUInt32LE(0);
  if (4 + headerBytes > buf.byteLength) throw new SnapshotWireError(`snapshot header of ${headerBytes} bytes overruns the ${buf.byteLength}-byte snapshot`);
  const header = JSON.parse(buf.subarray(4, 4 + headerBytes).toString('utf8')) as { engine: string; guestHash: string; devices: Snapshot['devices']; memoryBytes: number };
  const memory = new Uint8Array(await inflateRaw(buf.subarray(4 + headerBytes)));
  if (memory.byteLength !== header.memoryBytes) throw new SnapshotWireError(`snapshot memory inflates to ${memory.byteLength} bytes, the header says ${header.memoryBytes}`);
  return { engine: header.engine, guestHash: header.guestHash, devices: header.devices, memory };
}
