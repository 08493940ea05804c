// The logging channel against a hostile network (issue 16, "Channel tampering"): a relay between a
// real primary and backup (processes) that rewrites one entry of an ENTRIES frame and fixes up its
// CRC, or replays a frame, or (with TLS on) only records what it sees. The backup must refuse the
// frame as tampering (4009), not diverge, and the pair must be protected again after a reconnect.

import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { afterEach, describe, expect, it } from 'vitest';
import { deriveChannelKeys, FRAME_TAG_BYTES, FrameAuthError, FrameOpener, FrameSealer } from '../dist/logging-channel/frame-mac.js';
import { decodeFrame, encodeEntriesFrame } from '../dist/logging-channel/frames.js';
import { type FtjsProcess, ftjs, ROOT, startBackup, startPrimary, status, TEST_SECRET, tempDir, waitFor, waitInSync } from './helpers.js';

const KV = path.join(ROOT, 'guest-apps/kv.js');
const ENTRIES = 0x01;
const TAMPER_CODE = 4009;

type Mode = 'pass' | 'flip' | 'replay';

/**
 * A TCP relay that parses the server-to-client WebSocket stream (unmasked frames) after the HTTP
 * upgrade. Armed with a marker, it acts on the first ENTRIES frame whose bytes hold the marker.
 */
class TamperRelay {
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();
  /** Every byte seen, both directions. */
  readonly captured: Buffer[] = [];
  mode: Mode = 'pass';
  marker: Buffer | null = null;
  /** What the flip did: bytes that differ between the original and the rewritten frame, and that the rewritten frame still decodes (CRC fixed). */
  flipped: { differingBytes: number; decodesCleanly: boolean } | null = null;
  replayed = false;

  /** `inspect`: parse the WebSocket stream (plain ws:// only); otherwise only record and forward. */
  constructor(targetPort: number, inspect: boolean) {
    this.server = net.createServer((client) => {
      const upstream = net.connect(targetPort, '127.0.0.1');
      this.sockets.add(client).add(upstream);
      const drop = (): void => {
        client.destroy();
        upstream.destroy();
      };
      client.on('error', drop).on('close', drop);
      upstream.on('error', drop).on('close', drop);
      client.on('data', (d: Buffer) => {
        this.captured.push(d);
        upstream.write(d);
      });
      let upgraded = false;
      let pending = Buffer.alloc(0);
      upstream.on('data', (d: Buffer) => {
        this.captured.push(d);
        if (!inspect) {
          client.write(d);
          return;
        }
        pending = Buffer.concat([pending, d]);
        if (!upgraded) {
          const end = pending.indexOf('\r\n\r\n');
          if (end < 0) return;
          client.write(pending.subarray(0, end + 4));
          pending = pending.subarray(end + 4);
          upgraded = true;
        }
        for (;;) {
          const frame = nextWsFrame(pending);
          if (frame === null) return;
          pending = pending.subarray(frame.total);
          for (const out of this.onFrame(frame)) client.write(out);
        }
      });
    });
  }

  private onFrame(frame: WsFrame): Buffer[] {
    const payload = frame.bytes.subarray(frame.headerBytes);
    const binaryEntries = frame.opcode === 2 && payload[0] === ENTRIES;
    if (!binaryEntries || this.marker === null || payload.indexOf(this.marker) < 0) return [frame.bytes];
    const mode = this.mode;
    this.mode = 'pass';
    this.marker = null;
    if (mode === 'replay') {
      this.replayed = true;
      return [frame.bytes, frame.bytes];
    }
    if (mode !== 'flip') return [frame.bytes];
    // Rewrite one byte of the entry that carries the marker, and re-encode the batch so its CRC matches.
    const inner = payload.subarray(0, payload.byteLength - FRAME_TAG_BYTES);
    const tag = payload.subarray(payload.byteLength - FRAME_TAG_BYTES);
    const decoded = decodeFrame(inner);
    if (decoded.type !== 'entries') throw new Error('relay: not an ENTRIES frame');
    const original = Buffer.from(encodeEntriesFrame(decoded.entries, 1 << 24));
    if (!original.equals(inner)) throw new Error('relay: re-encoding the batch does not give its bytes back');
    const entries = decoded.entries.map((e) => ({ ...e, payload: Uint8Array.from(e.payload) }));
    const target = entries.find((e) => Buffer.from(e.payload).indexOf(this.markerCopy!) >= 0)!;
    target.payload[Buffer.from(target.payload).indexOf(this.markerCopy!)] ^= 0x20; // 'X' -> 'x'
    const rewritten = Buffer.from(encodeEntriesFrame(entries, 1 << 24));
    let differing = 0;
    for (let i = 0; i < inner.byteLength; i++) if (rewritten[i] !== inner[i]) differing++;
    let decodesCleanly = true;
    try {
      decodeFrame(rewritten);
    } catch {
      decodesCleanly = false;
    }
    this.flipped = { differingBytes: differing, decodesCleanly };
    return [Buffer.concat([frame.bytes.subarray(0, frame.headerBytes), rewritten, tag])];
  }

  /** The marker the flip looks for (kept after arming is consumed). */
  private markerCopy: Buffer | null = null;

  arm(mode: Mode, marker: string): void {
    this.mode = mode;
    this.marker = Buffer.from(marker);
    this.markerCopy = this.marker;
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    return (this.server.address() as net.AddressInfo).port;
  }

  sawInClear(text: string): boolean {
    return Buffer.concat(this.captured).indexOf(Buffer.from(text)) >= 0;
  }

  close(): void {
    for (const s of this.sockets) s.destroy();
    this.server.close();
  }
}

interface WsFrame {
  opcode: number;
  headerBytes: number;
  total: number;
  bytes: Buffer;
}

/** One complete unmasked WebSocket frame at the start of `buf`, or null if more bytes are needed. */
function nextWsFrame(buf: Buffer): WsFrame | null {
  if (buf.byteLength < 2) return null;
  const opcode = buf[0]! & 0x0f;
  if ((buf[1]! & 0x80) !== 0) throw new Error('relay: a masked frame from the server');
  let len = buf[1]! & 0x7f;
  let headerBytes = 2;
  if (len === 126) {
    if (buf.byteLength < 4) return null;
    len = buf.readUInt16BE(2);
    headerBytes = 4;
  } else if (len === 127) {
    if (buf.byteLength < 10) return null;
    len = Number(buf.readBigUInt64BE(2));
    headerBytes = 10;
  }
  const total = headerBytes + len;
  if (buf.byteLength < total) return null;
  return { opcode, headerBytes, total, bytes: Buffer.from(buf.subarray(0, total)) };
}

const stops: Array<() => unknown> = [];
afterEach(async () => {
  while (stops.length > 0) await stops.pop()!();
});

async function pairThroughRelay(
  opts: { primaryArgs?: string[]; backupArgs?: string[]; scheme?: 'ws' | 'wss' } = {},
): Promise<{ primary: FtjsProcess & { url: string; replication: string }; backup: FtjsProcess & { url: string }; relay: TamperRelay }> {
  const primary = await startPrimary(KV, { primaryArgs: opts.primaryArgs ?? [] });
  stops.push(() => primary.stop('SIGKILL'));
  const replicationPort = Number(new URL(primary.replication).port);
  const relay = new TamperRelay(replicationPort, (opts.scheme ?? 'ws') === 'ws');
  stops.push(() => relay.close());
  const relayPort = await relay.listen();
  const backup = await startBackup(`${opts.scheme ?? 'ws'}://127.0.0.1:${relayPort}`, primary.sharedDir, { backupArgs: opts.backupArgs ?? [] });
  stops.push(() => backup.stop('SIGKILL'));
  await waitFor(async () => (await status(primary.url)).backupAttached === true, 'the backup to attach through the relay');
  await waitInSync(primary.url, backup.url);
  return { primary, backup, relay };
}

async function put(url: string, key: string, value: string): Promise<number> {
  const res = await fetch(`${url}/kv/${key}`, { method: 'PUT', body: value });
  await res.arrayBuffer();
  return res.status;
}

async function get(url: string, key: string): Promise<unknown> {
  const res = await fetch(`${url}/kv/${key}`);
  return res.json();
}

function marker(): string {
  return `MARKER-${randomBytes(8).toString('hex')}-X`;
}

describe('logging channel: tampering on the path', () => {
  it('an entry rewritten with a valid CRC is refused as tampering (4009), not as a divergence; the backup reconnects and the pair is in sync again', async () => {
    const { primary, backup, relay } = await pairThroughRelay();
    const value = marker();
    relay.arm('flip', value);
    // The response waits for the backup's ack (Output Rule), so it also shows the stream resumed.
    expect(await put(primary.url, 'k', value)).toBe(200);
    // The relay really rewrote one byte of an entry and kept the batch valid (CRC fixed up): only the
    // MAC tells the two apart.
    expect(relay.flipped).not.toBeNull();
    expect(relay.flipped!.decodesCleanly).toBe(true);
    expect(relay.flipped!.differingBytes).toBeGreaterThanOrEqual(2);
    expect(relay.flipped!.differingBytes).toBeLessThanOrEqual(5); // the byte, and up to 4 CRC bytes
    const tamper = await backup.waitForLog((l) => l.code === TAMPER_CODE && /^tampering: frame #\d+ primary->backup from the primary at ws:/.test(l.msg), 'the backup to log the tampering');
    expect(tamper.level).toBe(50);
    expect(tamper.direction).toBe('primary->backup');
    expect(typeof tamper.seq).toBe('number');
    expect(String(tamper.msg)).toMatch(/its tag does not match its bytes/);
    // The primary hears why: the backup's refusal names 4009.
    await primary.waitForLog((l) => l.code === TAMPER_CODE && /refused by the backup \(4009\)/.test(l.msg), 'the primary to log the 4009 refusal');
    await backup.waitForLog((l) => /reconnected to the primary/.test(l.msg), 'the backup to reconnect');
    await waitFor(async () => (await status(primary.url)).backupAttached === true, 'the backup attached again');
    const synced = await waitInSync(primary.url, backup.url);
    expect(synced.seq).toBeGreaterThan(0);
    // Never a divergence: the backup runs on (no exit 76) and holds the primary's real value.
    expect(backup.exitCode).toBeNull();
    expect(backup.find((l) => /diverge/i.test(l.msg))).toBeUndefined();
    expect(await get(primary.url, 'k')).toEqual({ key: 'k', value });
    // Without TLS the relay reads bodies in clear (the control for the TLS test below).
    expect(relay.sawInClear(value)).toBe(true);
    // And the pair keeps working through the relay.
    expect(await put(primary.url, 'k2', 'after')).toBe(200);
    await waitInSync(primary.url, backup.url);
  });

  it('a replayed frame is refused as tampering, named as a replay; the pair recovers', async () => {
    const { primary, backup, relay } = await pairThroughRelay();
    const value = marker();
    relay.arm('replay', value);
    expect(await put(primary.url, 'r', value)).toBe(200);
    expect(relay.replayed).toBe(true);
    const tamper = await backup.waitForLog((l) => l.code === TAMPER_CODE && /^tampering:/.test(l.msg), 'the backup to log the replay');
    expect(String(tamper.msg)).toMatch(/it is frame #\d+ again \(a replay\)/);
    await waitFor(async () => (await status(primary.url)).backupAttached === true, 'the backup attached again');
    await waitInSync(primary.url, backup.url);
    expect(backup.exitCode).toBeNull();
  });
});

/** A CA and two certificates it signs (for 127.0.0.1), made with openssl in a temp dir. */
function makeCerts(): { dir: string; ca: string; primary: [string, string]; backup: [string, string]; strangerCa: string; stranger: [string, string] } {
  const dir = tempDir('ftjs-tls-');
  const run = (...args: string[]): void => void execFileSync('openssl', args, { cwd: dir, stdio: 'pipe' });
  const ext = path.join(dir, 'san.ext');
  writeFileSync(ext, 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  const ca = (name: string): void =>
    run('req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.pem`, '-subj', `/CN=${name}`, '-days', '2');
  const leaf = (name: string, signer: string): [string, string] => {
    run('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`);
    run('x509', '-req', '-in', `${name}.csr`, '-CA', `${signer}.pem`, '-CAkey', `${signer}.key`, '-CAcreateserial', '-out', `${name}.pem`, '-days', '2', '-extfile', ext);
    return [path.join(dir, `${name}.pem`), path.join(dir, `${name}.key`)];
  };
  ca('pair-ca');
  ca('stranger-ca');
  return {
    dir,
    ca: path.join(dir, 'pair-ca.pem'),
    primary: leaf('primary', 'pair-ca'),
    backup: leaf('backup', 'pair-ca'),
    strangerCa: path.join(dir, 'stranger-ca.pem'),
    stranger: leaf('stranger', 'stranger-ca'),
  };
}

const tlsArgs = ([cert, key]: [string, string], ca: string): string[] => ['--tls-cert', cert, '--tls-key', key, '--tls-ca', ca];

describe('logging channel: TLS', () => {
  it('with mutual TLS the pair works end to end and the relay sees no plaintext', async () => {
    const certs = makeCerts();
    const { primary, backup, relay } = await pairThroughRelay({ primaryArgs: tlsArgs(certs.primary, certs.ca), backupArgs: tlsArgs(certs.backup, certs.ca), scheme: 'wss' });
    expect(primary.replication).toMatch(/^wss:\/\//);
    const value = marker();
    expect(await put(primary.url, 't', value)).toBe(200);
    await waitInSync(primary.url, backup.url);
    expect(await get(primary.url, 't')).toEqual({ key: 't', value });
    expect(relay.captured.length).toBeGreaterThan(0);
    expect(relay.sawInClear(value)).toBe(false);
    expect(relay.sawInClear('"t":"hello"')).toBe(false);
  });

  it('the primary refuses a backup whose certificate another CA signed, and a plain ws:// backup', async () => {
    const certs = makeCerts();
    const primary = await startPrimary(KV, { primaryArgs: tlsArgs(certs.primary, certs.ca) });
    stops.push(() => primary.stop('SIGKILL'));
    const stranger = await startBackup(primary.replication, primary.sharedDir, { backupArgs: tlsArgs(certs.stranger, certs.strangerCa), nodeId: 'stranger' });
    stops.push(() => stranger.stop('SIGKILL'));
    await primary.waitForLog((l) => /refused a TLS connection on the logging-channel port/.test(l.msg), 'the primary to refuse the stranger');
    expect((await status(primary.url)).backupAttached).toBe(false);
    // Flags that do not go together are an error at startup that names them.
    const plainUrl = primary.replication.replace('wss:', 'ws:');
    const plain = await ftjs(['backup', '--primary', plainUrl, '--port', '0', '--shared-dir', primary.sharedDir, ...tlsArgs(certs.backup, certs.ca)], { FTJS_SECRET: TEST_SECRET });
    expect(plain.code).not.toBe(0);
    expect(plain.stderr).toMatch(/TLS is configured .* but the primary's logging channel ws:\/\/.* is ws:\/\/: use wss:\/\//);
  });
});

describe('frame MAC', () => {
  it('names replays and reorders, refuses a flipped bit anywhere, and costs little per frame', () => {
    const keys = deriveChannelKeys(Buffer.from(TEST_SECRET), Buffer.from('hello'), Buffer.from('auth'));
    const sealer = new FrameSealer(keys.primaryToBackup);
    const frames = [0, 1, 2, 3].map((i) => sealer.seal(Buffer.from(`frame ${i}`)));
    const opener = new FrameOpener(keys.primaryToBackup, 'primary->backup');
    expect(Buffer.from(opener.open(frames[0]!)).toString()).toBe('frame 0');
    expect(() => opener.open(frames[0]!)).toThrow(/frame #1 \(primary->backup\) failed authentication: it is frame #0 again \(a replay\)/);
    expect(() => opener.open(frames[2]!)).toThrow(/it is frame #2, sent later \(1 frame before it dropped or reordered\)/);
    // The other direction's key never opens this direction's frames.
    expect(() => new FrameOpener(keys.backupToPrimary, 'backup->primary').open(frames[0]!)).toThrow(FrameAuthError);
    // Another handshake transcript gives other keys.
    const other = deriveChannelKeys(Buffer.from(TEST_SECRET), Buffer.from('hello'), Buffer.from('auth!'));
    expect(other.primaryToBackup.equals(keys.primaryToBackup)).toBe(false);
    for (let bit = 0; bit < frames[1]!.byteLength * 8; bit++) {
      const bad = Buffer.from(frames[1]!);
      bad[bit >> 3]! ^= 1 << (bit & 7);
      expect(() => opener.open(bad)).toThrow(FrameAuthError);
    }
    expect(Buffer.from(opener.open(frames[1]!)).toString()).toBe('frame 1');

    // Cost per frame: seal + open of a small frame (an ACK-sized one) and of a full 64 KiB batch.
    for (const bytes of [16, 64 * 1024]) {
      const s = new FrameSealer(keys.backupToPrimary);
      const o = new FrameOpener(keys.backupToPrimary, 'backup->primary');
      const frame = randomBytes(bytes);
      const n = bytes < 1024 ? 20_000 : 2_000;
      const t0 = performance.now();
      for (let i = 0; i < n; i++) o.open(s.seal(frame));
      const usPerFrame = ((performance.now() - t0) * 1000) / n;
      console.log(`frame MAC: seal+open of a ${bytes}-byte frame: ${usPerFrame.toFixed(2)} us`);
      // Bounds only against a pathology: the machine is shared and loaded; the figure is logged.
      expect(usPerFrame).toBeLessThan(bytes < 1024 ? 1000 : 20_000);
    }
  });
});
