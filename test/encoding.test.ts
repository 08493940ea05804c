// TextDecoder's encodings beyond UTF-8 (hypervisor/guest/web/encoding.js), compared with Node 20
// (ICU) over every label the WHATWG table gives them, all bytes, errors, BOMs and streaming.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestWeb, nodeProbe } from './web-harness.js';

let web: GuestWeb;
beforeAll(async () => {
  web = await GuestWeb.create();
});
afterAll(() => web?.dispose());

async function same(expr: string) {
  const mine = web.probe(expr);
  const node = await nodeProbe(expr);
  expect(mine).toEqual(node);
  return mine;
}

const LABELS = [
  'ansi_x3.4-1968',
  'ascii',
  'cp1252',
  'cp819',
  'csisolatin1',
  'ibm819',
  'iso-8859-1',
  'iso-ir-100',
  'iso8859-1',
  'iso88591',
  'iso_8859-1',
  'iso_8859-1:1987',
  'l1',
  'latin1',
  'us-ascii',
  'windows-1252',
  'x-cp1252',
  'csunicode',
  'iso-10646-ucs-2',
  'ucs-2',
  'unicode',
  'unicodefeff',
  'utf-16',
  'utf-16le',
  'unicodefffe',
  'utf-16be',
  'utf-8',
  'utf8',
  'unicode-1-1-utf-8',
  ' UTF-16LE\n',
  'Latin1',
];

describe('TextDecoder encodings', () => {
  it('maps every label to its encoding name as Node', async () => {
    const r = await same(`${JSON.stringify(LABELS)}.map((l) => new TextDecoder(l).encoding)`);
    expect(new Set(r.v as string[])).toEqual(new Set(['windows-1252', 'utf-16le', 'utf-16be', 'utf-8']));
  });

  it('rejects an unknown label with a RangeError naming it', () => {
    expect(web.probe(`new TextDecoder('koi8-zz')`)).toEqual({ err: 'RangeError', msg: 'The "koi8-zz" encoding is not supported' });
    expect(web.probe(`new TextDecoder('iso-2022-kr')`).err).toBe('RangeError'); // a "replacement" label: TextDecoder refuses it
  });

  // Node 20 decodes these labels as ISO-8859-1 although it reports "windows-1252" (a known Node bug):
  // it agrees outside 0x80-0x9F; inside, the WHATWG index (https://encoding.spec.whatwg.org/index-windows-1252.txt)
  // is the reference, here from Python's cp1252 codec where it defines the byte.
  it('windows-1252 decodes all 256 bytes: as Node outside 0x80-0x9F, as the WHATWG index inside', async () => {
    const expr = `(() => { const b = new Uint8Array(256); for (let i = 0; i < 256; i++) b[i] = i;
      return ['latin1', 'ascii', 'windows-1252'].map((l) => [...new TextDecoder(l).decode(b)].map((c) => c.codePointAt(0))); })()`;
    const mine = web.probe(expr).v as number[][];
    const node = (await nodeProbe(expr)).v as number[][];
    // cp1252 per Python (undefined there: 0x81, 0x8D, 0x8F, 0x90, 0x9D, which WHATWG maps to themselves).
    const cp1252 = '€\x81‚ƒ„…†‡ˆ‰Š‹Œ\x8DŽ\x8F\x90‘’“”•–—˜™š›œ\x9DžŸ';
    for (let k = 0; k < 3; k++) {
      for (let i = 0; i < 256; i++) {
        const want = i >= 0x80 && i <= 0x9f ? cp1252.codePointAt(i - 0x80) : node[k]![i];
        expect(mine[k]![i], `byte ${i}`).toBe(want);
      }
    }
    expect(mine[0]![0x80]).toBe(0x20ac);
  });

  it('utf-16le/be: BOM, surrogate pairs, lone surrogates, odd length, fatal, ignoreBOM', async () => {
    await same(`(() => {
      const cases = [[0xFF, 0xFE, 0x41, 0x00, 0x3D, 0xD8, 0x00, 0xDE], [0x41, 0x00, 0x00, 0xD8, 0x42, 0x00], [0x00, 0xDC, 0x41],
        [0x3D, 0xD8], [0xFE, 0xFF, 0x00, 0x41], [], [0x41]];
      const out = [];
      for (const l of ['utf-16le', 'utf-16be']) for (const c of cases) {
        const b = new Uint8Array(c);
        out.push(new TextDecoder(l).decode(b), new TextDecoder(l, { ignoreBOM: true }).decode(b));
        try { out.push(new TextDecoder(l, { fatal: true }).decode(b)); } catch (e) { out.push(e.name); }
      }
      return out.map((s) => [...s].map((c) => c.codePointAt(0)));
    })()`);
  });

  it('streams utf-16 across chunk boundaries (split bytes and split surrogate pairs) as Node', async () => {
    await same(`(() => {
      const bytes = new Uint8Array([0xFF, 0xFE, 0x41, 0x00, 0x3D, 0xD8, 0x00, 0xDE, 0xE9, 0x00]);
      const out = [];
      for (let cut = 0; cut <= bytes.length; cut++) {
        const d = new TextDecoder('utf-16le');
        out.push(d.decode(bytes.subarray(0, cut), { stream: true }) + '|' + d.decode(bytes.subarray(cut)));
      }
      const d = new TextDecoder('utf-16be');
      out.push(d.decode(new Uint8Array([0xD8]), { stream: true }) + d.decode(new Uint8Array([0x3D, 0xDE]), { stream: true }) + d.decode(new Uint8Array([0x00])));
      out.push(new TextDecoder('utf-16le').decode(new Uint8Array([0x41]), { stream: true }) + '|' + new TextDecoder('utf-16le').decode());
      return out;
    })()`);
  });

  it('keeps fatal, ignoreBOM and encoding attributes, and decodes ArrayBuffer and DataView inputs', async () => {
    await same(`(() => { const d = new TextDecoder('utf-16be', { fatal: true, ignoreBOM: true });
      return [d.encoding, d.fatal, d.ignoreBOM, d.decode(new Uint8Array([0, 0x68, 0, 0x69]).buffer), d.decode(new DataView(new Uint8Array([0, 0x21]).buffer)),
        new TextDecoder('latin1').decode(new Uint16Array([0x4241]))]; })()`);
  });
});
