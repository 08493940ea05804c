// The logging-channel handshake: mutual challenge-response over a shared secret, then identity checks.
//
//   primary -> backup   CONTROL {t:'hello', nonce: serverNonce, formatVersion, engine, guestHash}
//   backup  -> primary  CONTROL {t:'auth', nonce: clientNonce, proof: HMAC(secret, 'backup|serverNonce|clientNonce'),
//                                formatVersion, engine, guestHash?, nodeId, resumeFromSeq, snapshotBase?}
//   primary -> backup   CONTROL {t:'welcome', proof: HMAC(secret, 'primary|clientNonce|serverNonce'), bootConfig, firstSeq}
//                    or CONTROL {t:'refuse', code, reason}, then a WebSocket close with that code
//
// Each side proves it knows the secret by a MAC over a fresh nonce of the other side, so the secret
// never crosses the wire and a recorded handshake cannot be replayed. The role label and the nonce
// order differ between the two proofs, so one side's proof is never valid as the other's. Proofs
// are compared with crypto.timingSafeEqual.
//
// Every frame after the handshake (from the welcome on) is authenticated under per-connection keys
// derived from the secret and the handshake transcript (frame-mac.ts); a frame that fails is closed
// with 4009, never taken for a divergence. Confidentiality needs wss:// (channel-tls.ts).

import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { EpochStart } from './epoch-history.js';
import type { ControlObject } from './frames.js';

/** WebSocket close codes (and `refuse` codes) of the logging channel. */
export const RefuseCode = {
  /** The peer's proof does not match: wrong secret, or not our peer at all. */
  AuthFailed: 4001,
  /** The two nodes speak different log formats. */
  FormatMismatch: 4002,
  /** The two nodes run different engines (QuickJS build): replay would diverge. */
  EngineMismatch: 4003,
  /** The backup was given a different guest than the primary runs. */
  GuestMismatch: 4004,
  /** Another backup (another nodeId) is attached. */
  AlreadyAttached: 4005,
  /** The backup asked to resume from a seq the primary no longer retains (or never had). */
  CannotResume: 4006,
  /** Bad, oversized or unknown frame, seq gap, bad ack, handshake timeout. */
  ProtocolError: 4007,
  /** A newer connection from the same nodeId replaced this one (a second process with one nodeId). */
  Replaced: 4008,
  /**
   * A frame after the handshake failed authentication (frame-mac.ts): altered, replayed, reordered or
   * injected on the way. Not fatal: the backup dials again and resumes.
   */
  FrameAuthFailed: 4009,
  /**
   * The node dialled holds less of the log than the backup has received: it cannot be the primary the
   * backup followed (that one's log is never shorter than what it sent), so it is a stale node of an
   * older epoch. Not fatal: the backup dials again, and its own silence rules decide a takeover (the
   * claim is the arbiter's to grant). Halting here left no node to take over (sim seed 40: the live
   * node crashed and its backup dialled the stale old primary).
   */
  Behind: 4010,
} as const;
export type RefuseCodeValue = (typeof RefuseCode)[keyof typeof RefuseCode];

export const REFUSE_AUTH_FAILED = RefuseCode.AuthFailed;
export const REFUSE_FORMAT_MISMATCH = RefuseCode.FormatMismatch;
export const REFUSE_ENGINE_MISMATCH = RefuseCode.EngineMismatch;
export const REFUSE_GUEST_MISMATCH = RefuseCode.GuestMismatch;
export const REFUSE_ALREADY_ATTACHED = RefuseCode.AlreadyAttached;
export const REFUSE_CANNOT_RESUME = RefuseCode.CannotResume;
export const REFUSE_PROTOCOL_ERROR = RefuseCode.ProtocolError;
export const REFUSE_REPLACED = RefuseCode.Replaced;
export const REFUSE_FRAME_AUTH_FAILED = RefuseCode.FrameAuthFailed;
export const REFUSE_BEHIND = RefuseCode.Behind;

/**
 * Codes after which a backup stops reconnecting: retrying cannot help (wrong secret, another guest,
 * another backup in its place). 4007 and 4009 are not fatal: a protocol error or a tampered frame
 * may be one damaged connection; nor is 4010: a stale node answered where the primary was.
 */
export function isFatalRefusal(code: number): boolean {
  return (code >= RefuseCode.AuthFailed && code <= RefuseCode.CannotResume) || code === RefuseCode.Replaced;
}

/** Default time allowed from connection to welcome, in ms. */
export const DEFAULT_HANDSHAKE_TIMEOUT_MS = 5000;
/** A shared secret shorter than this is refused at startup: it could be guessed. */
export const MIN_SECRET_BYTES = 16;
/** Random bytes per nonce. */
const NONCE_BYTES = 32;
/** Longest nodeId accepted (it is logged and compared, nothing more). */
export const MAX_NODE_ID_CHARS = 256;
/** WebSocket close reasons are limited to 123 bytes; the full reason travels in the refuse message. */
const MAX_CLOSE_REASON_BYTES = 123;

/** A refusal to carry from the check that failed to the code that closes the connection. */
export class RefusalError extends Error {
  override name = 'RefusalError';
  constructor(
    readonly code: RefuseCodeValue,
    readonly reason: string,
  ) {
    super(reason);
  }
}

export type Secret = string | Uint8Array;

export function secretBytes(secret: Secret): Buffer {
  const bytes = typeof secret === 'string' ? Buffer.from(secret, 'utf8') : Buffer.from(secret);
  if (bytes.byteLength < MIN_SECRET_BYTES) {
    throw new RangeError(`logging channel: the shared secret must be at least ${MIN_SECRET_BYTES} bytes, got ${bytes.byteLength}`);
  }
  return bytes;
}

/** A fresh nonce from `entropy` (default: the OS's; a node passes its Env's, so a simulated run is seeded). */
export function newNonce(entropy?: (length: number) => Uint8Array): string {
  return Buffer.from(entropy ? entropy(NONCE_BYTES) : randomBytes(NONCE_BYTES)).toString('base64url');
}

export type ProofRole = 'backup' | 'primary';

/** HMAC-SHA256(secret, `${role}|${firstNonce}|${secondNonce}`) as lowercase hex. */
export function computeProof(secret: Buffer, role: ProofRole, firstNonce: string, secondNonce: string): string {
  return createHmac('sha256', secret).update(`${role}|${firstNonce}|${secondNonce}`, 'utf8').digest('hex');
}

/** Constant-time check of a proof received from the peer. */
export function verifyProof(secret: Buffer, role: ProofRole, firstNonce: string, secondNonce: string, proof: string): boolean {
  const expected = Buffer.from(computeProof(secret, role, firstNonce, secondNonce), 'hex');
  const got = Buffer.from(proof, 'hex');
  // Buffer.from(hex) stops at the first non-hex pair; a wrong length is simply a wrong proof.
  if (got.byteLength !== expected.byteLength) return false;
  return timingSafeEqual(got, expected);
}

// ---------------------------------------------------------------------------------------------
// Identities and their checks

export interface PrimaryIdentity {
  /** Log format version (codec/trace format). */
  formatVersion: number;
  /** Engine name and build, e.g. "quickjs-emscripten/release-sync@0.32.0+ab12...". */
  engine: string;
  /** Hash of the guest code the primary runs. */
  guestHash: string;
}

export interface BackupIdentity {
  formatVersion: number;
  engine: string;
  /** Only when the backup was given the guest itself; otherwise it takes the primary's. */
  guestHash?: string;
}

/** The first identity difference between the nodes, as a refusal; null when they match. */
export function checkIdentity(primary: PrimaryIdentity, backup: BackupIdentity): RefusalError | null {
  if (primary.formatVersion !== backup.formatVersion) {
    return new RefusalError(RefuseCode.FormatMismatch, `format version mismatch: primary writes log format ${primary.formatVersion}, backup reads format ${backup.formatVersion}`);
  }
  if (primary.engine !== backup.engine) {
    return new RefusalError(RefuseCode.EngineMismatch, `engine mismatch: primary runs ${primary.engine}, backup runs ${backup.engine}`);
  }
  if (backup.guestHash !== undefined && primary.guestHash !== backup.guestHash) {
    return new RefusalError(RefuseCode.GuestMismatch, `guest hash mismatch: primary runs guest ${primary.guestHash}, backup was given guest ${backup.guestHash}`);
  }
  return null;
}

// ---------------------------------------------------------------------------------------------
// Handshake messages and their validation. A message that does not have the expected shape is a
// protocol error (4007); the checks name the field.

export interface HelloMessage {
  t: 'hello';
  nonce: string;
  formatVersion: number;
  engine: string;
  guestHash: string;
}

export interface AuthMessage {
  t: 'auth';
  nonce: string;
  proof: string;
  formatVersion: number;
  engine: string;
  guestHash?: string;
  nodeId: string;
  /** The backup has received every entry up to this seq (0: none). */
  resumeFromSeq: number;
  /** The epoch its log is in at resumeFromSeq and where that epoch began (epoch-history.ts); absent: no mark received. */
  lineage?: EpochStart;
  /** A memory the backup holds: a join by snapshot may send only the pages that differ from it. */
  snapshotBase?: SnapshotBaseOffer;
}

export interface WelcomeMessage {
  snapshot?: unknown;
  t: 'welcome';
  proof: string;
  bootConfig: unknown;
  /** Seq of the first entry this connection will carry: the backup's resumeFromSeq + 1. */
  firstSeq: number;
  /** The primary's epoch history through firstSeq - 1 (a backup joining by snapshot adopts it). */
  lineage?: EpochStart[];
}

export interface RefuseMessage {
  t: 'refuse';
  code: number;
  reason: string;
}

function protocolError(message: string): RefusalError {
  return new RefusalError(RefuseCode.ProtocolError, `protocol error: ${message}`);
}

function field<T>(msg: ControlObject, name: string, check: (v: unknown) => v is T, want: string): T {
  const value = msg[name];
  if (!check(value)) throw protocolError(`${msg.t} message: field "${name}" must be ${want}`);
  return value;
}

const isString = (v: unknown): v is string => typeof v === 'string';
const isNonce = (v: unknown): v is string => typeof v === 'string' && /^[A-Za-z0-9_-]{16,128}$/.test(v);
const isProof = (v: unknown): v is string => typeof v === 'string' && /^[0-9a-f]{64}$/.test(v);
const isSeq = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isVersion = (v: unknown): v is number => typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
const isNodeId = (v: unknown): v is string => typeof v === 'string' && v.length > 0 && v.length <= MAX_NODE_ID_CHARS;

/** Expect a CONTROL message of type `t`; throws a 4007 RefusalError otherwise. */
export function expectMessage(msg: ControlObject, t: 'hello'): HelloMessage;
export function expectMessage(msg: ControlObject, t: 'auth'): AuthMessage;
export function expectMessage(msg: ControlObject, t: 'welcome'): WelcomeMessage;
export function expectMessage(msg: ControlObject, t: 'hello' | 'auth' | 'welcome'): HelloMessage | AuthMessage | WelcomeMessage {
  if (msg.t !== t) throw protocolError(`expected a "${t}" message, got "${msg.t}"`);
  switch (t) {
    case 'hello':
      return {
        t,
        nonce: field(msg, 'nonce', isNonce, 'a base64url nonce'),
        formatVersion: field(msg, 'formatVersion', isVersion, 'an integer'),
        engine: field(msg, 'engine', isString, 'a string'),
        guestHash: field(msg, 'guestHash', isString, 'a string'),
      };
    case 'auth': {
      const auth: AuthMessage = {
        t,
        nonce: field(msg, 'nonce', isNonce, 'a base64url nonce'),
        proof: field(msg, 'proof', isProof, '64 lowercase hex digits'),
        formatVersion: field(msg, 'formatVersion', isVersion, 'an integer'),
        engine: field(msg, 'engine', isString, 'a string'),
        nodeId: field(msg, 'nodeId', isNodeId, `a non-empty string of at most ${MAX_NODE_ID_CHARS} characters`),
        resumeFromSeq: field(msg, 'resumeFromSeq', isSeq, 'an integer >= 0'),
      };
      if (msg.guestHash !== undefined) auth.guestHash = field(msg, 'guestHash', isString, 'a string when present');
      if (msg.snapshotBase !== undefined) auth.snapshotBase = parseSnapshotBaseOffer(msg.snapshotBase);
      if (msg.lineage !== undefined) auth.lineage = parseEpochStart(msg.lineage, 'auth message: field "lineage"');
      return auth;
    }
    case 'welcome':
      if (!('bootConfig' in msg)) throw protocolError('welcome message: field "bootConfig" is missing');
      return {
        t,
        proof: field(msg, 'proof', isProof, '64 lowercase hex digits'),
        bootConfig: msg.bootConfig,
        firstSeq: field(msg, 'firstSeq', isSeq, 'an integer >= 0'),
        // Join by snapshot: its description (checked by the backup channel).
        ...('snapshot' in msg ? { snapshot: msg.snapshot } : {}),
        ...(msg.lineage !== undefined ? { lineage: parseLineage(msg.lineage) } : {}),
      };
  }
}

/** An epoch start as it travels in the auth and welcome messages. */
function parseEpochStart(value: unknown, where: string): EpochStart {
  const v = value as Record<string, unknown> | null;
  const ok = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
  if (typeof v !== 'object' || v === null || !ok(v.epoch) || !ok(v.fromSeq) || v.fromSeq < 1) throw protocolError(`${where} must be {epoch, fromSeq} (integers, fromSeq >= 1)`);
  return { epoch: v.epoch, fromSeq: v.fromSeq };
}

function parseLineage(value: unknown): EpochStart[] {
  if (!Array.isArray(value) || value.length > 1_000_000) throw protocolError('welcome message: field "lineage" must be an array of {epoch, fromSeq}');
  return value.map((v, i) => parseEpochStart(v, `welcome message: field "lineage[${i}]"`));
}

// ---------------------------------------------------------------------------------------------
// The snapshot base a backup may offer in its auth message: the page hashes of a VM memory it holds
// (hypervisor/vm/snapshot-wire.ts SnapshotBase), so a join by snapshot can send only the changed pages.
// On the wire the hashes are base64. The channel only checks the offer's shape; what it is worth is
// the snapshot provider's business, and the backup verifies the memory it rebuilds end to end.

/** Bytes of one page digest (SHA-256). Must equal hypervisor/vm/page-delta.ts PAGE_DIGEST_BYTES. */
export const SNAPSHOT_BASE_DIGEST_BYTES = 32;
/** Smallest page size an offer may use: below the OS page, hashes cost more than they save. */
export const MIN_SNAPSHOT_BASE_PAGE_BYTES = 4 * 1024;
/** Largest page size an offer may use. */
export const MAX_SNAPSHOT_BASE_PAGE_BYTES = 16 * 1024 * 1024;
/** Largest base memory an offer may describe (a WASM32 memory, as we run it, is at most 2 GiB). */
export const MAX_SNAPSHOT_BASE_MEMORY_BYTES = 2 * 1024 * 1024 * 1024;

export interface SnapshotBaseOffer {
  /** Digest of the base memory (hypervisor/vm/page-delta.ts memoryDigest), 64 lowercase hex digits. */
  digest: string;
  memoryBytes: number;
  pageBytes: number;
  /** SNAPSHOT_BASE_DIGEST_BYTES per page, ceil(memoryBytes / pageBytes) pages. */
  pageHashes: Uint8Array;
}

/** The offer as it travels in the auth message. */
export function encodeSnapshotBaseOffer(offer: SnapshotBaseOffer): Record<string, unknown> {
  const hashes = Buffer.from(offer.pageHashes.buffer, offer.pageHashes.byteOffset, offer.pageHashes.byteLength);
  return { digest: offer.digest, memoryBytes: offer.memoryBytes, pageBytes: offer.pageBytes, pageHashes: hashes.toString('base64') };
}

/**
 * The first problem with an offer's fields as [field, what it must be], or null. `hashBytes` is the
 * length of its page hashes (already decoded from base64 on the wire).
 */
export function snapshotBaseOfferProblem(offer: Record<string, unknown>, hashBytes: number): [field: string, want: string] | null {
  if (typeof offer.digest !== 'string' || !/^[0-9a-f]{64}$/.test(offer.digest)) return ['digest', '64 lowercase hex digits'];
  const memoryBytes = offer.memoryBytes;
  if (typeof memoryBytes !== 'number' || !Number.isSafeInteger(memoryBytes) || memoryBytes < 1 || memoryBytes > MAX_SNAPSHOT_BASE_MEMORY_BYTES) {
    return ['memoryBytes', `an integer from 1 to ${MAX_SNAPSHOT_BASE_MEMORY_BYTES}`];
  }
  const pageBytes = offer.pageBytes;
  // Bounds first: the bit test is only valid within 32-bit integers.
  if (
    typeof pageBytes !== 'number' ||
    !Number.isSafeInteger(pageBytes) ||
    pageBytes < MIN_SNAPSHOT_BASE_PAGE_BYTES ||
    pageBytes > MAX_SNAPSHOT_BASE_PAGE_BYTES ||
    (pageBytes & (pageBytes - 1)) !== 0
  ) {
    return ['pageBytes', `a power of two from ${MIN_SNAPSHOT_BASE_PAGE_BYTES} to ${MAX_SNAPSHOT_BASE_PAGE_BYTES}`];
  }
  const pages = Math.ceil(memoryBytes / pageBytes);
  if (hashBytes !== pages * SNAPSHOT_BASE_DIGEST_BYTES) {
    return ['pageHashes', `${pages * SNAPSHOT_BASE_DIGEST_BYTES} bytes (${pages} pages x ${SNAPSHOT_BASE_DIGEST_BYTES}), got ${hashBytes}`];
  }
  return null;
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function parseSnapshotBaseOffer(value: unknown): SnapshotBaseOffer {
  const fail = (name: string, want: string) => protocolError(`auth message: field "snapshotBase${name ? `.${name}` : ''}" must be ${want}`);
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail('', 'an object {digest, memoryBytes, pageBytes, pageHashes} when present');
  const offer = value as Record<string, unknown>;
  const encoded = offer.pageHashes;
  if (typeof encoded !== 'string' || encoded.length % 4 !== 0 || !BASE64.test(encoded)) throw fail('pageHashes', 'a base64 string');
  const hashes = Buffer.from(encoded, 'base64');
  const problem = snapshotBaseOfferProblem(offer, hashes.byteLength);
  if (problem !== null) throw fail(...problem);
  return {
    digest: offer.digest as string,
    memoryBytes: offer.memoryBytes as number,
    pageBytes: offer.pageBytes as number,
    pageHashes: new Uint8Array(hashes.buffer, hashes.byteOffset, hashes.byteLength),
  };
}

/** A refuse message, or null when `msg` is something else. Malformed refusals still count as 4007. */
export function asRefusal(msg: ControlObject): RefuseMessage | null {
  if (msg.t !== 'refuse') return null;
  const code = typeof msg.code === 'number' && Number.isInteger(msg.code) ? msg.code : RefuseCode.ProtocolError;
  const reason = typeof msg.reason === 'string' ? msg.reason : '(no reason given)';
  return { t: 'refuse', code, reason };
}

/** `reason` cut to fit a WebSocket close frame (123 bytes of UTF-8), on a character boundary. */
export function closeReason(reason: string): string {
  if (Buffer.byteLength(reason, 'utf8') <= MAX_CLOSE_REASON_BYTES) return reason;
  let out = '';
  let bytes = 0;
  for (const ch of reason) {
    const n = Buffer.byteLength(ch, 'utf8');
    if (bytes + n > MAX_CLOSE_REASON_BYTES - 3) break;
    out += ch;
    bytes += n;
  }
  return `${out}...`;
}
