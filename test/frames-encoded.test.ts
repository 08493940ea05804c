// CONTROL frames: a welcome's boot config encoded once (EncodedJson) gives the very bytes JSON.stringify
// of the whole message gives, and the decoder's UTF-8 check refuses what a fatal TextDecoder refuses.

import { describe, expect, it } from 'vitest';
import { decodeFrame, EncodedJson, encodeControlFrame, encodedJsonOf, FrameError } from '../dist/logging-channel/frames.js';

const plain = (message: object): Buffer => Buffer.concat([Buffer.from([0x10]), Buffer.from(JSON.stringify(message), 'utf8')]);

describe('CONTROL frames', () => {
  const bootConfig = { entry: 'kv.js', glue: { web: 'é\u2028😀 "quoted" \\ \u0000', runtime: 'x'.repeat(70_000) }, limits: { a: 1 } };

  it('a message holding an EncodedJson encodes to the bytes of the message holding the value itself', () => {
    const encoded = new EncodedJson(bootConfig);
    for (const message of [
      { t: 'welcome', proof: 'ab'.repeat(32), bootConfig, firstSeq: 7 },
      { t: 'welcome', bootConfig, proof: 'p', firstSeq: 1, lineage: [{ epoch: 1, fromSeq: 1 }], snapshot: { seq: 3, sha256: 'ff' } },
      { t: 'welcome', bootConfig },
    ]) {
      const frame = encodeControlFrame({ ...message, bootConfig: encoded });
      expect(Buffer.from(frame).equals(plain(message))).toBe(true);
      expect(decodeFrame(frame)).toEqual({ type: 'control', message });
    }
    expect(Buffer.from(encodeControlFrame({ t: 'refuse', code: 1, reason: 'é' })).equals(plain({ t: 'refuse', code: 1, reason: 'é' }))).toBe(true);
  });

  it('encodes an object once, and refuses two EncodedJson fields in one message', () => {
    expect(encodedJsonOf(bootConfig)).toBe(encodedJsonOf(bootConfig));
    expect(encodedJsonOf({ ...bootConfig })).not.toBe(encodedJsonOf(bootConfig));
    expect(() => encodeControlFrame({ t: 'x', a: new EncodedJson(1), b: new EncodedJson(2) })).toThrow(/more than one EncodedJson/);
  });

  it('refuses a CONTROL payload that is not UTF-8 (overlong, surrogate, truncated), and keeps a BOM as a character', () => {
    const fatal = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
    for (const bad of [
      [0xc0, 0x80],
      [0xed, 0xa0, 0x80],
      [0xf4, 0x90, 0x80, 0x80],
      [0xe0, 0x80],
    ]) {
      const payload = Buffer.concat([Buffer.from('{"t":"'), Buffer.from(bad), Buffer.from('"}')]);
      expect(() => fatal.decode(payload)).toThrow();
      expect(() => decodeFrame(Buffer.concat([Buffer.from([0x10]), payload]))).toThrow(FrameError);
      expect(() => decodeFrame(Buffer.concat([Buffer.from([0x10]), payload]))).toThrow(/not valid UTF-8/);
    }
    const bom = Buffer.concat([Buffer.from([0x10]), Buffer.from('{"t":"\uFEFFx"}', 'utf8')]);
    expect(decodeFrame(bom)).toEqual({ type: 'control', message: { t: '\uFEFFx' } });
  });
});
