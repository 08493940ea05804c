// Logging-channel transport tests: the retained log, the frame codec, and the primary/backup
// channels over real WebSockets on 127.0.0.1 (port 0), with real timers. Tests wait on conditions,
// never on fixed sleeps. Hand-written peers (raw `ws` clients and servers that complete the
// handshake themselves) play the malicious or silent side.
// They run against the compiled output (build first: npx tsc -p tsconfig.json).

import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import * as net from 'node:net';
import { performance } from 'node:perf_hooks';
import { type Logger, pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { WebSocket, WebSocketServer } from 'ws';
import { decodeSnapshot, encodeSnapshot, readSnapshotHeader, snapshotBaseOf } from '../dist/hypervisor/vm/snapshot-wire.js';
import type { Snapshot } from '../dist/hypervisor/vm/vm.js';
import { type AuthMessage, computeProof, encodeSnapshotBaseOffer, RefuseCode, type SnapshotBaseOffer, secretBytes } from '../dist/logging-channel/auth.js';
import { BackupChannel, type BackupChannelOptions, type SnapshotEvent, type WelcomeEvent } from '../dist/logging-channel/backup-channel.js';
import { PROGRESS_REPORT_ENTRIES } from '../dist/logging-channel/backup-session.js';
import { type Entry, Kind } from '../dist/logging-channel/entry.js';
import { deriveChannelKeys, FRAME_TAG_BYTES, FrameOpener, FrameSealer } from '../dist/logging-channel/frame-mac.js';
import { decodeFrame, encodeAckFrame, encodeControlFrame, encodeEntriesFrame, encodeHeartbeatFrame, entriesBudgetBytes, type Frame, FrameError, FrameType } from '../dist/logging-channel/frames.js';
import { type AttachedEvent, type DetachedEvent, PrimaryChannel, type RefusedEvent, type SnapshotProvider } from '../dist/logging-channel/primary-channel.js';
import { entryWireBytes, LogBufferFullError, RetainedLog } from '../dist/logging-channel/retained-log.js';

const SECRET = 'test-secret-0123456789abcdef';
const IDENTITY = { formatVersion: 1, engine: 'quickjs-emscripten/release-sync@0.32.0+ab12cd', guestHash: 'guest-hash-1' };
const BOOT = { guest: 'main.js', env: { A: '1' } };

// ---------------------------------------------------------------------------------------------
// Helpers

/** Poll `predicate` until it holds; fail with `what` after `timeoutMs`. */
async function waitFor(predicate: () => boolean, timeoutMs = 5000, what = 'condition'): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!predicate()) {
    if (Date.now() > deadline) throw new Error(`waitFor: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
}

interface LogLine {
  level: number;
  msg: string;
  code?: number;
  [key: string]: unknown;
}

/** A pino logger whose lines are parsed into `lines`. */
function captureLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const logger = pino({ level: 'debug' }, { write: (s: string) => void lines.push(JSON.parse(s) as LogLine) });
  return { logger, lines };
}

const ERROR = 50;
const WARN = 40;

function logged(lines: LogLine[], level: number, pattern: RegExp, code?: number): boolean {
  return lines.some((l) => l.level >= level && pattern.test(l.msg) && (code === undefined || l.code === code));
}

/** Entries seq from..from+count-1 whose payload bytes are derived from the seq (checkable). */
function makeEntries(from: number, count: number, payloadBytes = 8): Entry[] {
  const out: Entry[] = [];
  for (let i = 0; i < count; i++) {
    const seq = from + i;
    const payload = new Uint8Array(payloadBytes);
    for (let j = 0; j < payloadBytes; j++) payload[j] = (seq * 7 + j) & 0xff;
    out.push({ seq, pos: seq * 3, kind: Kind.Entropy, payload });
  }
  return out;
}

function payloadMatches(e: Entry): boolean {
  for (let j = 0; j < e.payload.byteLength; j++) if (e.payload[j] !== ((e.seq * 7 + j) & 0xff)) return false;
  return e.pos === e.seq * 3;
}

/**
 * Call `onFrame` with every frame any WebSocket in this process sends (the channels and the test
 * share the `ws` module). Restored after the test.
 */
function spySends(onFrame: (bytes: Uint8Array, ws: WebSocket) => void): void {
  const original = WebSocket.prototype.send;
  WebSocket.prototype.send = function (this: WebSocket, data: unknown, ...rest: unknown[]) {
    if (data instanceof Uint8Array) onFrame(data, this);
    return (original as (...args: unknown[]) => void).call(this, data, ...rest);
  } as typeof WebSocket.prototype.send;
  cleanups.push(() => {
    WebSocket.prototype.send = original;
  });
}

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  while (cleanups.length > 0) await cleanups.pop()!();
});

interface PrimaryHarness {
  primary: PrimaryChannel;
  log: RetainedLog;
  lines: LogLine[];
  attached: AttachedEvent[];
  detached: DetachedEvent[];
  refused: RefusedEvent[];
  acks: number[];
  silent: number[];
  url: string;
  /** Append `count` new entries and tell the channel. */
  append(count: number, payloadBytes?: number): void;
}

async function startPrimary(
  opts: {
    entries?: number;
    heartbeatMs?: number;
    heartbeatTimeoutMs?: number;
    maxFrameBytes?: number;
    maxLogBytes?: number;
    maxBufferedBytes?: number;
    snapshotProvider?: SnapshotProvider;
    joinBySnapshotAfterEntries?: number;
    clock?: { monoMs(): number; wallMs(): number };
  } = {},
): Promise<PrimaryHarness> {
  const { logger, lines } = captureLogger();
  const log = new RetainedLog(opts.maxLogBytes ?? 64 * 1024 * 1024);
  if (opts.entries) log.append(makeEntries(1, opts.entries));
  const primary = await PrimaryChannel.listen({
    host: '127.0.0.1',
    port: 0,
    secret: SECRET,
    identity: IDENTITY,
    bootConfig: BOOT,
    log,
    heartbeatMs: opts.heartbeatMs ?? 100,
    heartbeatTimeoutMs: opts.heartbeatTimeoutMs ?? 2000,
    maxFrameBytes: opts.maxFrameBytes ?? 64 * 1024,
    ...(opts.maxBufferedBytes !== undefined ? { maxBufferedBytes: opts.maxBufferedBytes } : {}),
    ...(opts.snapshotProvider !== undefined ? { snapshotProvider: opts.snapshotProvider } : {}),
    ...(opts.joinBySnapshotAfterEntries !== undefined ? { joinBySnapshotAfterEntries: opts.joinBySnapshotAfterEntries } : {}),
    ...(opts.clock !== undefined ? { clock: opts.clock } : {}),
    logger,
  });
  cleanups.push(() => primary.close());
  const h: PrimaryHarness = {
    primary,
    log,
    lines,
    attached: [],
    detached: [],
    refused: [],
    acks: [],
    silent: [],
    url: `ws://127.0.0.1:${primary.port}`,
    append(count, payloadBytes = 8) {
      log.append(makeEntries(log.lastSeq + 1, count, payloadBytes));
      primary.notifyAppended();
    },
  };
  primary.on('attached', (e) => h.attached.push(e));
  primary.on('detached', (e) => h.detached.push(e));
  primary.on('refused', (e) => h.refused.push(e));
  primary.on('ack', (seq) => h.acks.push(seq));
  primary.on('peer-silent', (e) => h.silent.push(e.silentMs));
  return h;
}

interface BackupHarness {
  backup: BackupChannel;
  lines: LogLine[];
  received: Entry[];
  entryEvents: number;
  welcomes: WelcomeEvent[];
  refused: Array<{ code: number; reason: string }>;
  silent: number[];
}

function startBackup(url: string, overrides: Partial<BackupChannelOptions> = {}): BackupHarness {
  const { logger, lines } = captureLogger();
  const backup = BackupChannel.connect({
    url,
    secret: SECRET,
    identity: { formatVersion: IDENTITY.formatVersion, engine: IDENTITY.engine, guestHash: IDENTITY.guestHash },
    nodeId: 'backup-1',
    heartbeatMs: 100,
    heartbeatTimeoutMs: 2000,
    maxFrameBytes: 64 * 1024,
    reconnectDelayMs: 20,
    logger,
    ...overrides,
  });
  cleanups.push(() => backup.close());
  const h: BackupHarness = { backup, lines, received: [], entryEvents: 0, welcomes: [], refused: [], silent: [] };
  backup.on('entries', (es) => {
    h.entryEvents++;
    // Payloads are views into the frame; the frame is not reused, so keeping them is fine.
    h.received.push(...es);
  });
  backup.on('welcome', (e) => h.welcomes.push(e));
  backup.on('refused', (e) => h.refused.push(e));
  backup.on('primary-silent', (e) => h.silent.push(e.silentMs));
  return h;
}

function expectSeqsExactly(received: Entry[], n: number): void {
  expect(received.length).toBe(n);
  for (let i = 0; i < n; i++) {
    if (received[i]!.seq !== i + 1) throw new Error(`entry ${i} has seq ${received[i]!.seq}, expected ${i + 1}`);
    if (!payloadMatches(received[i]!)) throw new Error(`entry seq ${i + 1} has the wrong payload`);
  }
}

/**
 * From now on, seal what this hand-written peer sends (binary frames) under `key`, as a real end does
 * after its auth (backup) or from its welcome (primary).
 */
function sealSends(ws: WebSocket, key: Buffer): void {
  const sealer = new FrameSealer(key);
  const original = ws.send.bind(ws) as (...args: unknown[]) => void;
  ws.send = ((data: unknown, ...rest: unknown[]) => original(data instanceof Uint8Array ? sealer.seal(data) : data, ...rest)) as typeof ws.send;
}

/** Opens a sealed frame; before the welcome, an unsealed refusal is passed through as it is. */
function openOrPlain(opener: FrameOpener | null, data: Uint8Array): Uint8Array {
  if (opener === null) return data;
  try {
    return opener.open(data);
  } catch {
    return data;
  }
}

/** A hand-written backup: completes the handshake itself, then does what the test says. */
async function rawBackup(
  url: string,
  opts: { nodeId?: string; resumeFromSeq?: number; secret?: string; extraAuth?: Record<string, unknown> } = {},
): Promise<{ ws: WebSocket; frames: Frame[]; closed: Promise<[number, Buffer]> }> {
  const ws = new WebSocket(url);
  const frames: Frame[] = [];
  const closed = once(ws, 'close') as Promise<[number, Buffer]>;
  const clientNonce = randomBytes(32).toString('base64url');
  let opener: FrameOpener | null = null;
  const welcomed = new Promise<void>((resolve, reject) => {
    ws.on('message', (data: Buffer) => {
      const frame = decodeFrame(openOrPlain(opener, data));
      frames.push(frame);
      if (frame.type !== 'control') return;
      const m = frame.message;
      if (m.t === 'hello') {
        const auth: AuthMessage = {
          t: 'auth',
          nonce: clientNonce,
          proof: computeProof(secretBytes(opts.secret ?? SECRET), 'backup', m.nonce as string, clientNonce),
          formatVersion: IDENTITY.formatVersion,
          engine: IDENTITY.engine,
          nodeId: opts.nodeId ?? 'raw-backup',
          resumeFromSeq: opts.resumeFromSeq ?? 0,
        };
        const authFrame = encodeControlFrame({ ...(auth as unknown as { t: string }), ...opts.extraAuth });
        ws.send(authFrame);
        const keys = deriveChannelKeys(secretBytes(opts.secret ?? SECRET), data, authFrame);
        opener = new FrameOpener(keys.primaryToBackup, 'primary->backup');
        sealSends(ws, keys.backupToPrimary);
      } else if (m.t === 'welcome') resolve();
      else if (m.t === 'refuse') reject(new Error(`refused: ${String(m.reason)}`));
    });
    ws.on('error', reject);
  });
  cleanups.push(() => ws.terminate());
  await welcomed;
  return { ws, frames, closed };
}

/** A hand-written primary: welcomes every backup (with a proof made from `secret`), then calls `onWelcomed`. */
async function fakePrimary(
  onWelcomed: (ws: WebSocket, auth: Record<string, unknown>) => void,
  opts: { secret?: string } = {},
): Promise<{ url: string; closeCodes: number[]; refusals: Array<Record<string, unknown>>; connections: number }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 });
  await once(wss, 'listening');
  const state = { url: `ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}`, closeCodes: [] as number[], refusals: [] as Array<Record<string, unknown>>, connections: 0 };
  wss.on('connection', (ws) => {
    state.connections++;
    const serverNonce = randomBytes(32).toString('base64url');
    const helloFrame = encodeControlFrame({ t: 'hello', nonce: serverNonce, ...IDENTITY });
    let opener: FrameOpener | null = null;
    ws.on('close', (code) => state.closeCodes.push(code));
    ws.on('error', () => {});
    ws.on('message', (data: Buffer) => {
      const frame = decodeFrame(openOrPlain(opener, data));
      if (frame.type !== 'control') return;
      const m = frame.message;
      if (m.t === 'auth') {
        const keys = deriveChannelKeys(secretBytes(opts.secret ?? SECRET), helloFrame, data);
        opener = new FrameOpener(keys.backupToPrimary, 'backup->primary');
        sealSends(ws, keys.primaryToBackup);
        ws.send(
          encodeControlFrame({
            t: 'welcome',
            proof: computeProof(secretBytes(opts.secret ?? SECRET), 'primary', m.nonce as string, serverNonce),
            bootConfig: BOOT,
            firstSeq: (m.resumeFromSeq as number) + 1,
          }),
        );
        onWelcomed(ws, m);
      } else if (m.t === 'refuse') state.refusals.push(m);
    });
    ws.send(helloFrame);
  });
  cleanups.push(
    () =>
      new Promise<void>((resolve) => {
        for (const c of wss.clients) c.terminate();
        wss.close(() => resolve());
      }),
  );
  return state;
}

// ---------------------------------------------------------------------------------------------
// RetainedLog

describe('RetainedLog', () => {
  it('appends densely, serves ranges bounded by bytes (at least one entry), trims', () => {
    const log = new RetainedLog(1 << 20);
    expect([log.firstSeq, log.lastSeq, log.bytes]).toEqual([1, 0, 0]);
    log.append(makeEntries(1, 100, 10));
    expect([log.firstSeq, log.lastSeq, log.count]).toEqual([1, 100, 100]);
    const per = entryWireBytes(makeEntries(2, 1, 10)[0]!, 3);
    expect(log.bytes).toBe(per * 100);
    expect(log.from(1, per * 10).map((e) => e.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    expect(log.from(95, 1 << 20).map((e) => e.seq)).toEqual([95, 96, 97, 98, 99, 100]);
    expect(log.from(50, 1).map((e) => e.seq)).toEqual([50]); // at least one
    expect(log.from(101, 1000)).toEqual([]);
    // No copies: the retained objects themselves.
    const again = makeEntries(101, 1);
    log.append(again);
    expect(log.from(101, 1000)[0]).toBe(again[0]);
    expect(() => log.append(makeEntries(103, 1))).toThrow(/dense.*got seq 103, expected 102/);
    log.trimThrough(40);
    expect([log.firstSeq, log.lastSeq, log.count]).toEqual([41, 101, 61]);
    expect(() => log.from(40, 100)).toThrow(RangeError);
    log.trimThrough(30); // already gone: no-op
    expect(log.firstSeq).toBe(41);
    expect(() => log.trimThrough(102)).toThrow(/ends at seq 101/);
    log.trimThrough(101);
    expect([log.firstSeq, log.lastSeq, log.count, log.bytes]).toEqual([102, 101, 0, 0]);
    log.append(makeEntries(102, 3));
    expect(log.from(102, 1000).map((e) => e.seq)).toEqual([102, 103, 104]);
  });

  it('refuses to grow past maxBytes, naming the bound and the flag, and keeps nothing of the failed append', () => {
    const log = new RetainedLog(1000);
    log.append(makeEntries(1, 5, 100));
    const before = log.bytes;
    let caught: unknown;
    try {
      log.append(makeEntries(6, 5, 100));
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(LogBufferFullError);
    expect((caught as Error).message).toMatch(/1000-byte bound/);
    expect((caught as Error).message).toMatch(/--max-log-buffer-bytes/);
    expect([log.lastSeq, log.bytes]).toEqual([5, before]);
    log.trimThrough(5);
    log.append(makeEntries(6, 5, 100));
    expect(log.lastSeq).toBe(10);
  });

  it('compacts after many trims and stays correct', () => {
    const log = new RetainedLog(1 << 24);
    for (let s = 1; s <= 20_000; s += 100) {
      log.append(makeEntries(s, 100));
      log.trimThrough(s + 49);
    }
    expect([log.firstSeq, log.lastSeq]).toEqual([19_951, 20_000]);
    const got = log.from(19_951, 1 << 20);
    expect(got.map((e) => e.seq)).toEqual(Array.from({ length: 50 }, (_, i) => 19_951 + i));
  });
});

// ---------------------------------------------------------------------------------------------
// Frames

describe('frames', () => {
  it('round-trips every frame type', () => {
    const entries = makeEntries(7, 3, 5);
    const f = decodeFrame(encodeEntriesFrame(entries, 4096));
    expect(f.type).toBe('entries');
    expect((f as { entries: Entry[] }).entries.map((e) => [e.seq, e.pos, e.kind, [...e.payload]])).toEqual(entries.map((e) => [e.seq, e.pos, e.kind, [...e.payload]]));
    expect(decodeFrame(encodeAckFrame(300))).toEqual({ type: 'ack', seq: 300 });
    expect(decodeFrame(encodeHeartbeatFrame(0))).toEqual({ type: 'heartbeat', seq: 0 });
    expect(decodeFrame(encodeControlFrame({ t: 'x', n: 1 }))).toEqual({ type: 'control', message: { t: 'x', n: 1 } });
  });

  it('refuses malformed frames with a FrameError naming the problem', () => {
    const cases: Array<[Uint8Array, RegExp]> = [
      [new Uint8Array(0), /empty frame/],
      [Uint8Array.of(0x7f, 1, 2), /unknown frame type 0x7f/],
      [Uint8Array.of(FrameType.Ack), /bad ACK frame: bad varuint/],
      [Uint8Array.of(FrameType.Ack, 0x80), /bad ACK frame: bad varuint/],
      [Uint8Array.of(FrameType.Heartbeat, 5, 0), /bad HEARTBEAT frame: trailing bytes/],
      [Uint8Array.of(FrameType.Control, ...Buffer.from('{nope')), /bad JSON/],
      [Uint8Array.of(FrameType.Control, ...Buffer.from('[1]')), /not an object/],
      [Uint8Array.of(FrameType.Control, ...Buffer.from('{"x":1}')), /no string field "t"/],
      [Uint8Array.of(FrameType.Entries, 0xf1, 3, 1, 2, 3), /bad ENTRIES frame/],
    ];
    for (const [bytes, pattern] of cases) {
      expect(() => decodeFrame(bytes)).toThrow(FrameError);
      expect(() => decodeFrame(bytes)).toThrow(pattern);
    }
    const good = encodeEntriesFrame(makeEntries(1, 2), 4096);
    good[good.length - 6]! ^= 0xff;
    expect(() => decodeFrame(good)).toThrow(/checksum mismatch/);
  });

  it('keeps ENTRIES frames within maxFrameBytes', () => {
    const log = new RetainedLog(1 << 24);
    log.append(makeEntries(1, 2000, 100));
    const maxFrameBytes = 8192;
    let seq = 1;
    while (seq <= 2000) {
      const batch = log.from(seq, entriesBudgetBytes(maxFrameBytes));
      const frame = encodeEntriesFrame(batch, maxFrameBytes);
      expect(frame.byteLength).toBeLessThanOrEqual(maxFrameBytes);
      seq = batch[batch.length - 1]!.seq + 1;
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The channel

describe('logging channel: handshake', () => {
  it('authenticates both ways, welcomes with the boot config and streams the retained log', async () => {
    const p = await startPrimary({ entries: 10 });
    const b = startBackup(p.url);
    await waitFor(() => b.backup.receivedSeq === 10 && p.primary.ackedSeq === 10, 5000, 'first 10 entries acked');
    expect(b.welcomes).toEqual([{ bootConfig: BOOT, firstSeq: 1, reconnect: false }]);
    expect(p.attached).toEqual([{ nodeId: 'backup-1', resumeFromSeq: 0, remote: expect.stringMatching(/^127\.0\.0\.1:\d+$/) }]);
    expect(p.primary.attached).toBe(true);
    expect(b.backup.connected).toBe(true);
    expectSeqsExactly(b.received, 10);
    p.append(5);
    await waitFor(() => p.primary.ackedSeq === 15, 5000, 'ack of 15');
    expectSeqsExactly(b.received, 15);
    expect(p.acks.at(-1)).toBe(15);
    expect(p.refused).toEqual([]);
  });

  it('refuses a backup with the wrong secret (4001) and the backup stops', async () => {
    const p = await startPrimary({ entries: 3 });
    const b = startBackup(p.url, { secret: 'not-the-secret-0123456789' });
    await waitFor(() => b.refused.length === 1 && p.refused.length === 1, 5000, 'refusal');
    expect(b.refused[0]!.code).toBe(RefuseCode.AuthFailed);
    expect(b.refused[0]!.reason).toMatch(/auth failed: the backup's proof/);
    expect(p.refused[0]!.code).toBe(4001);
    expect(logged(p.lines, ERROR, /refused backup: auth failed/, 4001)).toBe(true);
    expect(logged(b.lines, ERROR, /not reconnecting: auth failed/, 4001)).toBe(true);
    expect(b.received).toEqual([]);
    expect(b.welcomes).toEqual([]);
    // A good backup still attaches afterwards, and the refused one never came back.
    const good = startBackup(p.url, { nodeId: 'backup-2' });
    await waitFor(() => good.backup.receivedSeq === 3, 5000, 'good backup');
    expect(p.refused.length).toBe(1);
  });

  it('refuses a fake primary that cannot prove the secret (4001)', async () => {
    const fake = await fakePrimary((ws) => ws.send(encodeEntriesFrame(makeEntries(1, 3), 4096)), { secret: 'impostor-secret-0123456789' });
    const b = startBackup(fake.url);
    await waitFor(() => b.refused.length === 1 && fake.closeCodes.length === 1, 5000, 'refusal of the fake primary');
    expect(b.refused[0]).toEqual({ code: 4001, reason: expect.stringMatching(/auth failed: the primary's proof does not match/) });
    expect(fake.closeCodes).toEqual([4001]);
    expect(fake.refusals[0]).toMatchObject({ t: 'refuse', code: 4001 });
    expect(logged(b.lines, ERROR, /auth failed: the primary's proof/, 4001)).toBe(true);
    expect(b.welcomes).toEqual([]);
    expect(b.received).toEqual([]);
    expect(fake.connections).toBe(1);
  });

  const mismatches: Array<[string, Partial<BackupChannelOptions['identity']>, number, RegExp]> = [
    ['format', { formatVersion: 2 }, RefuseCode.FormatMismatch, /format version mismatch: primary writes log format 1, backup reads format 2/],
    [
      'engine',
      { engine: 'quickjs-emscripten/release-sync@0.31.0+ffff' },
      RefuseCode.EngineMismatch,
      /engine mismatch: primary runs quickjs-emscripten\/release-sync@0\.32\.0\+ab12cd, backup runs quickjs-emscripten\/release-sync@0\.31\.0\+ffff/,
    ],
    ['guest', { guestHash: 'other-guest' }, RefuseCode.GuestMismatch, /guest hash mismatch: primary runs guest guest-hash-1, backup was given guest other-guest/],
  ];
  for (const [name, change, code, pattern] of mismatches) {
    it(`refuses a ${name} mismatch with ${code} and a reason naming both sides`, async () => {
      const p = await startPrimary({ entries: 3 });
      const b = startBackup(p.url, { identity: { ...IDENTITY, ...change } });
      await waitFor(() => b.refused.length === 1 && p.refused.length === 1, 5000, 'refusal');
      expect(b.refused[0]!.code).toBe(code);
      expect(b.refused[0]!.reason).toMatch(pattern);
      expect(p.refused[0]!.code).toBe(code);
      expect(p.refused[0]!.reason).toMatch(pattern);
      expect(logged(p.lines, ERROR, pattern, code)).toBe(true);
      expect(b.received).toEqual([]);
      expect(p.attached).toEqual([]);
    });
  }

  it('accepts a backup that was not given the guest (no guestHash)', async () => {
    const p = await startPrimary({ entries: 4 });
    const b = startBackup(p.url, { identity: { formatVersion: IDENTITY.formatVersion, engine: IDENTITY.engine } });
    await waitFor(() => b.backup.receivedSeq === 4, 5000, 'entries');
    expect(b.refused).toEqual([]);
    expect(b.welcomes[0]!.bootConfig).toEqual(BOOT);
  });

  it('refuses a second backup with another nodeId (4005) while the first stays attached', async () => {
    const p = await startPrimary({ entries: 2 });
    const a = startBackup(p.url, { nodeId: 'node-a' });
    await waitFor(() => a.backup.receivedSeq === 2, 5000, 'first backup');
    const b = startBackup(p.url, { nodeId: 'node-b' });
    await waitFor(() => b.refused.length === 1, 5000, 'refusal of node-b');
    expect(b.refused[0]!.code).toBe(RefuseCode.AlreadyAttached);
    expect(b.refused[0]!.reason).toMatch(/already attached: backup "node-a" .* refusing backup "node-b"/);
    expect(logged(p.lines, ERROR, /already attached/, 4005)).toBe(true);
    p.append(3);
    await waitFor(() => a.backup.receivedSeq === 5, 5000, 'node-a keeps receiving');
    expect(p.detached).toEqual([]);
    expect(p.primary.attachedNodeId).toBe('node-a');
  });

  it('lets a new connection from the same nodeId replace the old one', async () => {
    const p = await startPrimary({ entries: 2 });
    const a = startBackup(p.url, { nodeId: 'same' });
    await waitFor(() => a.backup.receivedSeq === 2, 5000, 'first connection');
    const b = startBackup(p.url, { nodeId: 'same' });
    await waitFor(() => p.attached.length === 2 && b.backup.receivedSeq === 2, 5000, 'replacement');
    expect(p.detached).toEqual([{ nodeId: 'same', reason: expect.stringMatching(/replaced by a newer connection/) }]);
    // The replaced connection's owner is told (4008) and does not fight back.
    await waitFor(() => a.refused.length === 1, 5000, 'old connection told');
    expect(a.refused[0]!.code).toBe(RefuseCode.Replaced);
    p.append(3);
    await waitFor(() => b.backup.receivedSeq === 5, 5000, 'new connection receives');
    expect(a.backup.receivedSeq).toBe(2);
    expect(p.attached.length).toBe(2);
  });

  it('refuses to resume from a trimmed seq, or from beyond the log (4006)', async () => {
    const p = await startPrimary({ entries: 100 });
    p.log.trimThrough(50);
    const b = startBackup(p.url, { receivedSeq: 10 });
    await waitFor(() => b.refused.length === 1, 5000, 'refusal');
    expect(b.refused[0]!.code).toBe(RefuseCode.CannotResume);
    expect(b.refused[0]!.reason).toMatch(/cannot resume: the backup needs entries from seq 11, but this primary retains only seq 51\.\.100/);
    expect(logged(p.lines, ERROR, /cannot resume/, 4006)).toBe(true);

    // A backup ahead of this node's log: this node is stale (4010), not fatal: the backup dials again.
    const c = startBackup(p.url, { receivedSeq: 500, nodeId: 'future' });
    await waitFor(() => p.lines.filter((l) => /received through seq 500 but this primary's log ends at seq 100/.test(l.msg)).length >= 2, 10_000, 'two refusals (a redial)');
    expect(logged(p.lines, ERROR, /this node is behind/, RefuseCode.Behind)).toBe(true);
    expect(c.refused).toEqual([]);

    // Resuming exactly at the trim point works.
    const d = startBackup(p.url, { receivedSeq: 50, nodeId: 'ok' });
    await waitFor(() => d.backup.receivedSeq === 100, 5000, 'resume from 51');
    expect(d.received[0]!.seq).toBe(51);
    expect(d.welcomes[0]!.firstSeq).toBe(51);
  });

  it('times out a peer that connects and never authenticates (4007)', async () => {
    const { logger, lines } = captureLogger();
    const primary = await PrimaryChannel.listen({
      host: '127.0.0.1',
      port: 0,
      secret: SECRET,
      identity: IDENTITY,
      bootConfig: BOOT,
      log: new RetainedLog(1 << 20),
      heartbeatMs: 50,
      heartbeatTimeoutMs: 150,
      maxFrameBytes: 8192,
      handshakeTimeoutMs: 150,
      logger,
    });
    cleanups.push(() => primary.close());
    const ws = new WebSocket(`ws://127.0.0.1:${primary.port}`);
    cleanups.push(() => ws.terminate());
    const [code] = (await once(ws, 'close')) as [number];
    expect(code).toBe(4007);
    expect(logged(lines, ERROR, /handshake timeout/, 4007)).toBe(true);
  });
});

describe('logging channel: streaming', () => {
  it('streams 5,000 entries in batches and every one is acknowledged', async () => {
    const p = await startPrimary();
    const b = startBackup(p.url);
    await waitFor(() => p.primary.attached && b.backup.connected, 5000, 'attach');
    const n = 5000;
    for (let i = 0; i < n; i++) {
      p.append(1, 16);
      // Let the event loop turn now and then, as a busy primary's would.
      if (i % 100 === 99) await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(() => p.primary.ackedSeq === n, 10_000, 'all acked');
    expectSeqsExactly(b.received, n);
    expect(p.primary.framesSent).toBeLessThan(n / 20);
    expect(b.entryEvents).toBe(p.primary.framesSent);
    // Acks are cumulative and strictly increasing.
    for (let i = 1; i < p.acks.length; i++) expect(p.acks[i]!).toBeGreaterThan(p.acks[i - 1]!);
    expect(p.acks.at(-1)).toBe(n);
    expect(p.silent).toEqual([]);
    expect(b.silent).toEqual([]);
  });

  it('sends the ACK for a batch before it emits the batch', async () => {
    // Every send() of an ACK frame is recorded; the 'entries' listener checks that the ACK covering
    // its batch was already handed to the socket. Emitting first, then acking, fails this.
    let lastAckSent = 0;
    let acksSeen = 0;
    spySends((data) => {
      if (data[0] !== FrameType.Ack) return;
      const f = decodeFrame(data.subarray(0, data.byteLength - FRAME_TAG_BYTES));
      if (f.type === 'ack') {
        lastAckSent = Math.max(lastAckSent, f.seq);
        acksSeen++;
      }
    });
    const p = await startPrimary({ entries: 50 });
    const b = startBackup(p.url);
    const violations: string[] = [];
    let checked = 0;
    b.backup.on('entries', (es) => {
      checked++;
      const last = es[es.length - 1]!.seq;
      if (lastAckSent < last) violations.push(`entries through ${last} emitted with only ${lastAckSent} acked`);
    });
    await waitFor(() => b.backup.receivedSeq === 50, 5000, 'first batch');
    for (let i = 0; i < 20; i++) {
      p.append(5);
      await waitFor(() => b.backup.receivedSeq === 50 + 5 * (i + 1), 5000, 'batch');
    }
    await waitFor(() => p.primary.ackedSeq === 150, 5000, 'all acked');
    expect(violations).toEqual([]);
    expect(checked).toBeGreaterThanOrEqual(21);
    expect(acksSeen).toBeGreaterThanOrEqual(checked);
  });

  it('hands a frame to the socket as soon as the appending code returns, before the event loop turns', async () => {
    // Every output of a batch waits on the ack of its frame: a send deferred to the next turn (an
    // immediate) waited behind every socket callback of the turn. Here the frame must be on the
    // socket by the first microtask after the append, before any I/O callback or immediate.
    const sentThrough: number[] = [];
    spySends((data) => {
      if (data[0] !== FrameType.Entries) return;
      const f = decodeFrame(data.subarray(0, data.byteLength - FRAME_TAG_BYTES));
      if (f.type === 'entries') sentThrough.push(f.entries.at(-1)!.seq);
    });
    const p = await startPrimary({ entries: 5 });
    const b = startBackup(p.url);
    await waitFor(() => p.primary.ackedSeq === 5, 5000, 'first batch acked');
    for (let i = 1; i <= 10; i++) {
      let immediateRan = false;
      setImmediate(() => {
        immediateRan = true;
      });
      p.append(3);
      p.append(2); // same job: the same frame
      await Promise.resolve();
      expect(immediateRan).toBe(false);
      expect(sentThrough.at(-1)).toBe(5 + 5 * i);
      await waitFor(() => b.backup.receivedSeq === 5 + 5 * i, 5000, 'received');
    }
    expect(sentThrough.slice(-10)).toEqual([10, 15, 20, 25, 30, 35, 40, 45, 50, 55]);
  });

  it('resumes after the connection is cut mid-stream: no loss, no duplicates', async () => {
    const p = await startPrimary({ maxFrameBytes: 16 * 1024 });
    const b = startBackup(p.url, { maxFrameBytes: 16 * 1024 });
    await waitFor(() => p.primary.attached && b.backup.connected, 5000, 'attach');
    let dropped = false;
    p.primary.once('ack', () => {
      dropped = true;
      p.primary.drop('test: cut mid-stream');
    });
    const n = 4000;
    for (let i = 0; i < n; i += 50) {
      p.append(50, 512);
      await new Promise((resolve) => setImmediate(resolve));
    }
    await waitFor(() => b.backup.receivedSeq === n && p.primary.ackedSeq === n, 15_000, 'all entries after the cut');
    expect(dropped).toBe(true);
    expectSeqsExactly(b.received, n);
    expect(b.welcomes.map((w) => w.reconnect)).toEqual([false, true]);
    expect(p.attached.length).toBe(2);
    expect(p.attached[1]!.resumeFromSeq).toBeGreaterThan(0);
    expect(b.welcomes[1]!.firstSeq).toBe(p.attached[1]!.resumeFromSeq + 1);
    expect(p.detached[0]!.reason).toMatch(/dropped: test: cut mid-stream/);
  });

  it('stops sending above maxBufferedBytes while the backup does not read, and continues as it drains', async () => {
    const maxBufferedBytes = 1024 * 1024;
    const p = await startPrimary({ maxBufferedBytes, maxFrameBytes: 64 * 1024, heartbeatTimeoutMs: 30_000 });
    let maxBufferedBeforeSend = 0;
    spySends((data, ws) => {
      if (data[0] === FrameType.Entries) maxBufferedBeforeSend = Math.max(maxBufferedBeforeSend, ws.bufferedAmount);
    });
    const raw = await rawBackup(p.url);
    raw.ws.pause(); // the backup stops reading: the socket's buffers fill up
    const n = 3000;
    p.append(n, 8 * 1024); // 24 MiB, far more than the kernel buffers hold
    // Wait until the primary has stopped sending (sentSeq stays put across polls).
    let last = -1;
    await waitFor(
      () => {
        const stuck = p.primary.sentSeq === last && last > 0;
        last = p.primary.sentSeq;
        return stuck;
      },
      5000,
      'sending to stall',
    );
    expect(p.primary.sentSeq).toBeLessThan(n);
    expect(maxBufferedBeforeSend).toBeLessThanOrEqual(maxBufferedBytes);
    raw.ws.resume();
    await waitFor(() => p.primary.sentSeq === n, 10_000, 'the rest once drained');
    const receivedCount = (): number => raw.frames.reduce((k, f) => k + (f.type === 'entries' ? f.entries.length : 0), 0);
    await waitFor(() => receivedCount() === n, 10_000, 'all received');
    const seqs = raw.frames.flatMap((f) => (f.type === 'entries' ? f.entries.map((e) => e.seq) : []));
    expect(seqs.every((seq, i) => seq === i + 1)).toBe(true);
    expect(maxBufferedBeforeSend).toBeLessThanOrEqual(maxBufferedBytes);
  });

  it('pause() stops receipt at once (a fixed set to drain); resume() continues without loss', async () => {
    const p = await startPrimary({ entries: 10 });
    const b = startBackup(p.url);
    await waitFor(() => b.backup.receivedSeq === 10 && p.primary.ackedSeq === 10, 5000, 'attach');
    const disconnected: unknown[] = [];
    b.backup.on('disconnected', (e) => disconnected.push(e));
    b.backup.pause();
    expect(b.backup.connected).toBe(false);
    expect(b.backup.isPaused).toBe(true);
    const frozen = b.received.length;
    p.append(5);
    await waitFor(() => p.detached.length === 1, 5000, 'primary sees the backup go');
    expect(b.received.length).toBe(frozen);
    expect(p.primary.ackedSeq).toBe(10);
    expect(disconnected).toEqual([]); // our own doing, not news
    b.backup.resume();
    await waitFor(() => b.backup.receivedSeq === 15 && p.primary.ackedSeq === 15, 5000, 'resumed');
    expectSeqsExactly(b.received, 15);
    expect(p.attached[1]!.resumeFromSeq).toBe(10);
  });

  it('logs garbage on the port and keeps streaming to the attached backup', async () => {
    const p = await startPrimary({ entries: 5 });
    const b = startBackup(p.url);
    await waitFor(() => b.backup.receivedSeq === 5, 5000, 'attach');

    const junk = net.connect(p.primary.port, '127.0.0.1');
    cleanups.push(() => junk.destroy());
    await once(junk, 'connect');
    junk.write(Buffer.from('\x00\xff\x13garbage garbage\r\n\r\n', 'latin1'));
    await waitFor(() => logged(p.lines, WARN, /non-WebSocket connection/), 5000, 'garbage logged');

    const badUpgrade = net.connect(p.primary.port, '127.0.0.1');
    cleanups.push(() => badUpgrade.destroy());
    await once(badUpgrade, 'connect');
    badUpgrade.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n');
    await waitFor(() => logged(p.lines, WARN, /bad WebSocket upgrade/), 5000, 'bad upgrade logged');

    const res = await fetch(`http://127.0.0.1:${p.primary.port}/`);
    expect(res.status).toBe(426);
    await res.text();
    expect(logged(p.lines, WARN, /plain HTTP request/)).toBe(true);

    p.append(20);
    await waitFor(() => b.backup.receivedSeq === 25 && p.primary.ackedSeq === 25, 5000, 'still streaming');
    expectSeqsExactly(b.received, 25);
    expect(p.detached).toEqual([]);
    expect(p.primary.attached).toBe(true);
  });
});

describe('logging channel: bad peers', () => {
  const badFrames: Array<[string, () => Uint8Array | string, RegExp, number]> = [
    ['an unknown frame type', () => Uint8Array.of(0x7f, 1, 2, 3), /unknown frame type 0x7f/, 4007],
    [
      'a corrupt batch',
      () => {
        const f = encodeEntriesFrame(makeEntries(1, 3), 4096);
        f[8]! ^= 0x55;
        return f;
      },
      /bad ENTRIES frame: .*checksum mismatch/,
      4007,
    ],
    ['a seq gap', () => encodeEntriesFrame(makeEntries(5, 3), 4096), /seq gap: expected seq 1, got a batch of seqs 5\.\.7/, 4007],
    ['an ACK from the primary', () => encodeAckFrame(1), /unexpected ACK frame from the primary/, 4007],
    ['a text message', () => 'hello', /text message/, 4007],
    ['an oversized frame', () => new Uint8Array(9000).fill(0x03), /larger than maxFrameBytes \(8192 bytes\)/, 1009],
  ];
  for (const [what, frame, pattern, closeCode] of badFrames) {
    it(`backup refuses ${what} from a malicious primary: logged, closed, no entries`, async () => {
      const fake = await fakePrimary((ws) => {
        const data = frame();
        ws.send(data, { binary: typeof data !== 'string' });
      });
      const b = startBackup(fake.url, { maxFrameBytes: 8192, reconnectDelayMs: 60_000 });
      await waitFor(() => fake.closeCodes.length >= 1, 5000, 'backup closes');
      expect(fake.closeCodes[0]).toBe(closeCode);
      await waitFor(() => logged(b.lines, ERROR, pattern), 5000, 'error logged');
      expect(logged(b.lines, ERROR, pattern, 4007)).toBe(true);
      expect(b.received).toEqual([]);
      expect(b.entryEvents).toBe(0);
      expect(b.refused).toEqual([]); // not fatal: it would dial again
      expect(b.backup.connected).toBe(false);
    });
  }

  const badBackupFrames: Array<[string, () => Uint8Array, RegExp, number]> = [
    ['an unknown frame type', () => Uint8Array.of(0x42), /unknown frame type 0x42/, 4007],
    ['an ack beyond what was sent', () => encodeAckFrame(99), /ack of seq 99 beyond the last sent seq 3/, 4007],
    ['an ENTRIES frame', () => encodeEntriesFrame(makeEntries(1, 1), 4096), /unexpected ENTRIES frame/, 4007],
    ['a bad varuint', () => Uint8Array.of(FrameType.Ack, 0xff), /bad ACK frame: bad varuint/, 4007],
    ['an oversized frame', () => new Uint8Array(9000).fill(0x03), /larger than maxFrameBytes \(8192 bytes\)/, 1009],
  ];
  it('primary drops a backup whose frame fails authentication as tampering (4009), naming seq, direction and peer; the backup may come back', async () => {
    const p = await startPrimary({ entries: 3 });
    const raw = await rawBackup(p.url, { nodeId: 'raw-backup' });
    await waitFor(() => p.primary.sentSeq === 3, 5000, 'entries sent');
    // A well-formed ACK with a forged tag, written past the sealing wrapper (as a relay would inject it).
    (WebSocket.prototype.send as (this: WebSocket, data: Buffer) => void).call(raw.ws, Buffer.concat([encodeAckFrame(3), Buffer.alloc(FRAME_TAG_BYTES)]));
    const [code] = await raw.closed;
    expect(code).toBe(RefuseCode.FrameAuthFailed);
    await waitFor(() => p.detached.length === 1, 5000, 'detached');
    expect(p.detached[0]!.reason).toMatch(/frame authentication failed: frame #0 \(backup->primary\) from backup "raw-backup" at 127\.0\.0\.1:\d+/);
    const line = p.lines.find((l) => l.code === 4009 && /^tampering: frame #0 backup->primary from backup "raw-backup"/.test(l.msg));
    expect(line).toMatchObject({ level: ERROR, seq: 0, direction: 'backup->primary', nodeId: 'raw-backup' });
    // The ACK was not acted on.
    expect(p.acks).toEqual([]);
    // Not fatal: the same backup attaches again and is served.
    const b = startBackup(p.url, { nodeId: 'raw-backup' });
    await waitFor(() => b.backup.receivedSeq === 3, 5000, 'the backup back');
  });

  for (const [what, frame, pattern, closeCode] of badBackupFrames) {
    it(`primary drops an attached backup that sends ${what}`, async () => {
      const p = await startPrimary({ entries: 3, maxFrameBytes: 8192 });
      const raw = await rawBackup(p.url);
      await waitFor(() => p.primary.sentSeq === 3, 5000, 'entries sent');
      raw.ws.send(frame());
      const [code] = await raw.closed;
      expect(code).toBe(closeCode);
      await waitFor(() => p.detached.length === 1, 5000, 'detached');
      expect(p.detached[0]!.reason).toMatch(pattern);
      expect(logged(p.lines, ERROR, pattern, 4007)).toBe(true);
      expect(p.primary.attached).toBe(false);
    });
  }

  it('primary refuses a regressing ack', async () => {
    const p = await startPrimary({ entries: 3 });
    const raw = await rawBackup(p.url);
    await waitFor(() => p.primary.sentSeq === 3, 5000, 'entries sent');
    raw.ws.send(encodeAckFrame(3));
    await waitFor(() => p.primary.ackedSeq === 3, 5000, 'ack');
    raw.ws.send(encodeAckFrame(2));
    const [code] = await raw.closed;
    expect(code).toBe(4007);
    expect(logged(p.lines, ERROR, /regressing ack: seq 2 after ack of seq 3/, 4007)).toBe(true);
  });
});

describe('logging channel: join by snapshot', () => {
  // Synthetic VM snapshots through the real wire format: A is the memory the backup holds, B the
  // primary's now (two pages changed, one page grown).
  const PAGE = 64 * 1024;
  const memoryA = new Uint8Array(randomBytes(16 * PAGE));
  const memoryB = new Uint8Array(17 * PAGE);
  memoryB.set(memoryA);
  memoryB.set(randomBytes(100), 3 * PAGE + 17);
  memoryB.set(randomBytes(PAGE), 9 * PAGE);
  memoryB.fill(7, 16 * PAGE);
  const snapshotB = { engine: IDENTITY.engine, guestHash: IDENTITY.guestHash, memory: memoryB, devices: { clockReads: 3 } } as unknown as Snapshot;

  /** A provider that makes a delta when offered a base, and records what it was offered. */
  function deltaProvider(log: () => RetainedLog, offers: Array<SnapshotBaseOffer | null>): SnapshotProvider {
    return async (base) => {
      offers.push(base);
      const data = await encodeSnapshot(snapshotB, base);
      return { seq: log().lastSeq, pos: log().lastSeq * 3, data, ...(base ? { baseDigest: base.digest } : {}) };
    };
  }

  async function joined(b: BackupHarness): Promise<SnapshotEvent> {
    const events: SnapshotEvent[] = [];
    b.backup.on('snapshot', (e) => events.push(e));
    await waitFor(() => events.length === 1, 5000, 'the snapshot');
    return events[0]!;
  }

  it('a backup that offers a base gets a delta from the provider (which sees the offer), then the log after it', async () => {
    const offers: Array<SnapshotBaseOffer | null> = [];
    let log: RetainedLog | null = null;
    const p = await startPrimary({ entries: 20, joinBySnapshotAfterEntries: 1, snapshotProvider: deltaProvider(() => log!, offers) });
    log = p.log;
    const base = snapshotBaseOf(memoryA, PAGE);
    const b = startBackup(p.url, { snapshotBase: base });
    const e = await joined(b);
    // The offer crossed the wire intact.
    expect(offers.length).toBe(1);
    expect(offers[0]!.digest).toBe(base.digest);
    expect(offers[0]!.memoryBytes).toBe(memoryA.byteLength);
    expect(offers[0]!.pageBytes).toBe(PAGE);
    expect(Buffer.compare(offers[0]!.pageHashes, base.pageHashes)).toBe(0);
    // The backup knows it got a delta against its base, and rebuilds B from it.
    expect(e).toMatchObject({ seq: 20, pos: 60, delta: true, baseDigest: base.digest });
    expect(b.welcomes[0]!.snapshot).toMatchObject({ seq: 20, baseDigest: base.digest });
    const header = readSnapshotHeader(e.data);
    expect(header.kind === 'delta' && header.pages).toEqual([3, 9, 16]);
    const full = await encodeSnapshot(snapshotB);
    expect(e.data.byteLength * 4).toBeLessThan(full.byteLength);
    const rebuilt = await decodeSnapshot(e.data, memoryA);
    expect(Buffer.compare(rebuilt.memory, memoryB)).toBe(0);
    expect(rebuilt.devices).toEqual(snapshotB.devices);
    expect(logged(p.lines, 30, new RegExp(`^incremental snapshot of ${e.data.byteLength} bytes sent to the joining backup`))).toBe(true);
    // Then the log after the snapshot.
    p.append(5);
    await waitFor(() => b.backup.receivedSeq === 25 && p.primary.ackedSeq === 25, 5000, 'entries after the snapshot');
    expect(b.received.map((x) => x.seq)).toEqual([21, 22, 23, 24, 25]);
  });

  it('a snapshot slower than the heartbeat timeout: nothing is sent before the welcome, and the backup counts as attached (and silent) only from it', async () => {
    let release: () => void = () => {};
    const slow = new Promise<void>((resolve) => (release = resolve));
    const p = await startPrimary({
      entries: 5,
      heartbeatMs: 20,
      heartbeatTimeoutMs: 60,
      joinBySnapshotAfterEntries: 1,
      snapshotProvider: async () => {
        await slow; // encoding a large memory can take seconds
        return { seq: 5, pos: 15, data: await encodeSnapshot(snapshotB) };
      },
    });
    const b = startBackup(p.url, { heartbeatMs: 20, heartbeatTimeoutMs: 60 });
    const events: SnapshotEvent[] = [];
    b.backup.on('snapshot', (e) => events.push(e));
    await waitFor(() => logged(p.lines, 30, /joins by snapshot/), 5000, 'the join to start');
    // Many heartbeat timeouts pass while the snapshot is being made: no heartbeat reaches the waiting
    // backup (it would refuse it as a protocol error), and the primary neither counts it attached nor silent.
    const since = Date.now();
    await waitFor(() => Date.now() - since > 300, 5000, 'several heartbeat timeouts');
    expect(p.attached).toEqual([]);
    expect(p.primary.attached).toBe(false);
    expect(p.silent).toEqual([]);
    release();
    await waitFor(() => events.length === 1, 5000, 'the snapshot');
    expect(p.attached).toHaveLength(1);
    expect(p.refused).toEqual([]);
    expect(b.refused).toEqual([]);
    p.append(3);
    await waitFor(() => b.backup.receivedSeq === 8, 5000, 'the log after the snapshot');
  });

  it('without an offer, or with a provider that ignores it, the backup gets a full snapshot (delta: false)', async () => {
    const offers: Array<SnapshotBaseOffer | null> = [];
    let log: RetainedLog | null = null;
    const p = await startPrimary({ entries: 5, joinBySnapshotAfterEntries: 1, snapshotProvider: deltaProvider(() => log!, offers) });
    log = p.log;
    const e = await joined(startBackup(p.url));
    expect(offers).toEqual([null]);
    expect(e).toMatchObject({ seq: 5, delta: false, baseDigest: null });
    expect(Buffer.compare((await decodeSnapshot(e.data)).memory, memoryB)).toBe(0);

    // A provider written before deltas: no argument, always full.
    const legacy = await startPrimary({
      entries: 5,
      joinBySnapshotAfterEntries: 1,
      snapshotProvider: async () => ({ seq: 5, pos: 15, data: await encodeSnapshot(snapshotB) }),
    });
    const e2 = await joined(startBackup(legacy.url, { snapshotBase: snapshotBaseOf(memoryA, PAGE) }));
    expect(e2).toMatchObject({ seq: 5, delta: false, baseDigest: null });
    expect(logged(legacy.lines, 30, /^full snapshot of \d+ bytes sent to the joining backup \(seq 5, though the backup offered a base\)/)).toBe(true);
  });

  it('an offer too large for one frame is not sent: the backup warns and joins by a full snapshot (in chunks that fit the frame)', async () => {
    const offers: Array<SnapshotBaseOffer | null> = [];
    let log: RetainedLog | null = null;
    const p = await startPrimary({ entries: 5, joinBySnapshotAfterEntries: 1, maxFrameBytes: 8192, snapshotProvider: deltaProvider(() => log!, offers) });
    log = p.log;
    // 4 KiB pages: 256 hashes of 32 bytes, over 8 KiB once in base64.
    const b = startBackup(p.url, { maxFrameBytes: 8192, snapshotBase: snapshotBaseOf(memoryA, 4096) });
    const e = await joined(b);
    expect(offers).toEqual([null]);
    expect(e.delta).toBe(false);
    expect(logged(b.lines, WARN, /snapshot base does not fit in one frame: not offering it/)).toBe(true);
    expect(Buffer.compare((await decodeSnapshot(e.data)).memory, memoryB)).toBe(0);
  });

  it('a provider that makes a delta against another base than the one offered is a bug: the backup gets no snapshot', async () => {
    const p = await startPrimary({
      entries: 5,
      joinBySnapshotAfterEntries: 1,
      snapshotProvider: async () => ({ seq: 5, pos: 15, data: new Uint8Array(8), baseDigest: 'f'.repeat(64) }),
    });
    const b = startBackup(p.url, { snapshotBase: snapshotBaseOf(memoryA, PAGE), reconnectDelayMs: 60_000 });
    await waitFor(() => logged(p.lines, ERROR, /made a delta against base f{64}, but the backup offered base [0-9a-f]{64}/), 5000, 'the error');
    expect(b.backup.connected).toBe(false);
  });

  const validOffer = () => encodeSnapshotBaseOffer(snapshotBaseOf(memoryA, PAGE));
  const malformed: Array<[string, () => unknown, RegExp]> = [
    ['not an object', () => 'yes please', /field "snapshotBase" must be an object/],
    ['a digest that is not hex', () => ({ ...validOffer(), digest: 'xyz' }), /field "snapshotBase\.digest" must be 64 lowercase hex digits/],
    ['memoryBytes over 2 GiB', () => ({ ...validOffer(), memoryBytes: 3 * 1024 ** 3 }), /field "snapshotBase\.memoryBytes" must be an integer from 1 to 2147483648/],
    ['pageBytes not a power of two', () => ({ ...validOffer(), pageBytes: 3000 }), /field "snapshotBase\.pageBytes" must be a power of two from 4096 to 16777216/],
    ['pageBytes too small', () => ({ ...validOffer(), pageBytes: 512 }), /field "snapshotBase\.pageBytes" must be a power of two/],
    ['pageHashes not base64', () => ({ ...validOffer(), pageHashes: 'not base64!' }), /field "snapshotBase\.pageHashes" must be a base64 string/],
    ['pageHashes of the wrong length', () => ({ ...validOffer(), memoryBytes: 17 * PAGE }), /field "snapshotBase\.pageHashes" must be 544 bytes \(17 pages x 32\), got 512/],
  ];
  for (const [what, offer, pattern] of malformed) {
    it(`refuses an offer with ${what} (4007), naming the field`, async () => {
      const p = await startPrimary({ entries: 5, joinBySnapshotAfterEntries: 1, snapshotProvider: async () => ({ seq: 5, pos: 15, data: new Uint8Array(8) }) });
      await expect(rawBackup(p.url, { extraAuth: { snapshotBase: offer() } })).rejects.toThrow(pattern);
      await waitFor(() => p.refused.length === 1, 5000, 'refusal');
      expect(p.refused[0]!.code).toBe(RefuseCode.ProtocolError);
      expect(p.refused[0]!.reason).toMatch(pattern);
      expect(logged(p.lines, ERROR, pattern, 4007)).toBe(true);
      expect(p.attached).toEqual([]);
    });
  }

  it('BackupChannel refuses a malformed offer at once, naming the field', () => {
    const { logger } = captureLogger();
    const base = snapshotBaseOf(memoryA, PAGE);
    const opts = { url: 'ws://127.0.0.1:1', secret: SECRET, identity: IDENTITY, nodeId: 'n', logger };
    expect(() => BackupChannel.connect({ ...opts, snapshotBase: { ...base, pageHashes: base.pageHashes.subarray(1) } })).toThrow(/BackupChannel: snapshotBase\.pageHashes must be 512 bytes/);
    expect(() => BackupChannel.connect({ ...opts, snapshotBase: { ...base, pageBytes: 100 } })).toThrow(/BackupChannel: snapshotBase\.pageBytes must be a power of two/);
  });
});

describe('logging channel: heartbeats', () => {
  it('primary reports a silent backup once and leaves the decision to the node', async () => {
    const p = await startPrimary({ entries: 1, heartbeatMs: 50, heartbeatTimeoutMs: 150 });
    const raw = await rawBackup(p.url);
    await waitFor(() => p.silent.length === 1, 5000, 'peer-silent');
    expect(p.silent[0]!).toBeGreaterThanOrEqual(150);
    expect(p.primary.attached).toBe(true);
    expect(logged(p.lines, WARN, /backup silent for \d+ ms/)).toBe(true);
    // The silent peer still receives our heartbeats (with the log's last seq).
    await waitFor(() => raw.frames.some((f) => f.type === 'heartbeat' && f.seq === 1), 5000, 'heartbeat received');
    // Hearing from it again re-arms the report.
    raw.ws.send(encodeHeartbeatFrame(1));
    await waitFor(() => logged(p.lines, 30, /backup heard again/), 5000, 'heard again');
    await waitFor(() => p.silent.length === 2, 5000, 'second silence');
    p.primary.drop('silent');
    await waitFor(() => p.detached.length === 1, 5000, 'detached');
    const [code] = await raw.closed;
    // drop() sends a close frame but does not wait for a possibly dead peer: 1000, or 1006 if cut first.
    expect([1000, 1006]).toContain(code);
  });

  it('a healthy pair keeps each other alive', async () => {
    const p = await startPrimary({ entries: 1, heartbeatMs: 40, heartbeatTimeoutMs: 300 });
    const b = startBackup(p.url, { heartbeatMs: 40, heartbeatTimeoutMs: 300 });
    await waitFor(() => b.backup.receivedSeq === 1, 5000, 'attach');
    // Wait out several timeouts, measured in heartbeats actually sent (both directions).
    let beats = 0;
    spySends((data) => {
      if (data[0] === FrameType.Heartbeat) beats++;
    });
    await waitFor(() => beats >= 36, 5000, '36 heartbeats (over two timeouts)');
    expect(p.silent).toEqual([]);
    expect(b.silent).toEqual([]);
    expect(b.backup.primarySeq).toBe(1);
    // Both sides expose when they last heard the peer, on the performance.now() clock.
    const now = performance.now();
    expect(now - p.primary.lastHeardAtMs!).toBeLessThan(300);
    expect(now - b.backup.lastHeardAtMs!).toBeLessThan(300);
  });

  it('a backup that received PROGRESS_REPORT_ENTRIES since its last report sends its replay progress at once, not at the next heartbeat', async () => {
    // Heartbeats an hour apart on both sides: any heartbeat frame here is an early progress report.
    const slow = { heartbeatMs: 3_600_000, heartbeatTimeoutMs: 7_200_000 };
    const p = await startPrimary(slow);
    const b = startBackup(p.url, slow);
    const reports: Array<{ receivedSeq: number; replayedSeq: number; backlogMs: number }> = [];
    p.primary.on('replay', (r) => reports.push(r));
    let replayed = 0;
    b.backup.replayProgress = () => ({ replayedSeq: replayed, backlogMs: 7 });
    await waitFor(() => p.primary.attached && b.backup.connected, 5000, 'attach');
    let heartbeats = 0;
    spySends((data) => {
      if (data[0] === FrameType.Heartbeat) heartbeats++;
    });
    p.append(PROGRESS_REPORT_ENTRIES - 1);
    await waitFor(() => b.backup.receivedSeq === PROGRESS_REPORT_ENTRIES - 1, 5000, 'first entries received');
    replayed = 100;
    b.backup.progressed();
    expect(heartbeats).toBe(0); // too few entries since the last report (the welcome): no extra frame
    p.append(1);
    await waitFor(() => b.backup.receivedSeq === PROGRESS_REPORT_ENTRIES, 5000, 'entries received');
    b.backup.progressed();
    expect(heartbeats).toBe(1);
    await waitFor(() => reports.length === 1, 5000, 'the primary hears the report');
    expect(reports[0]).toEqual({ receivedSeq: PROGRESS_REPORT_ENTRIES, replayedSeq: 100, backlogMs: 7 });
    // Counted from that report: the next progress alone sends nothing.
    b.backup.progressed();
    expect(heartbeats).toBe(1);
  });

  it('backup reports a silent primary and keeps dialling', async () => {
    const fake = await fakePrimary(() => {
      /* welcome, then silence */
    });
    const b = startBackup(fake.url, { heartbeatMs: 50, heartbeatTimeoutMs: 150 });
    await waitFor(() => b.silent.length >= 1, 5000, 'primary-silent');
    expect(b.silent[0]!).toBeGreaterThanOrEqual(150);
    expect(logged(b.lines, WARN, /primary silent for \d+ ms/)).toBe(true);
    // It dropped the silent connection and dialled again (the fake welcomes it again).
    await waitFor(() => b.welcomes.length >= 2, 5000, 'reconnect');
    expect(b.welcomes[1]!.reconnect).toBe(true);
    expect(b.refused).toEqual([]);
  });
});

describe('sending a long log at attach (issue 15)', () => {
  it('goes out in slices of SEND_SLICE_MS: timers (heartbeats, acks, ticks) run between them, not after the whole log', async () => {
    // A clock that advances 1 ms per reading: each slice holds a few frames, whatever this host's speed.
    let t = 0;
    const clock = { monoMs: () => ++t, wallMs: () => Date.now() };
    const h = await startPrimary({ clock, heartbeatTimeoutMs: 1e9 });
    h.log.append(makeEntries(1, 2_000, 1_024));
    let turns = 0;
    const timer = setInterval(() => turns++, 0);
    cleanups.push(() => clearInterval(timer));
    const turnAtFrame: number[] = [];
    spySends((bytes) => {
      if (bytes.byteLength > 16 * 1024) turnAtFrame.push(turns);
    });
    const b = startBackup(h.url, { heartbeatTimeoutMs: 1e9 });
    await waitFor(() => b.received.length === 2_000, 10_000, 'the whole log to arrive');
    expectSeqsExactly(b.received, 2_000);
    // 2 MiB fits the socket's 8 MiB bound: unsliced, every frame would go in one synchronous pass.
    expect(turnAtFrame.length).toBeGreaterThan(10);
    expect(new Set(turnAtFrame).size).toBeGreaterThan(1);
  });
});
