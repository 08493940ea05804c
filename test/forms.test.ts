// FormData, File, Blob and Request/Response.formData() in the guest web platform, compared with
// Node 20 (undici) probe by probe; and the multipart body a FormData becomes.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestWeb, nodeProbe, type Outcome } from './web-harness.js';

let web: GuestWeb;
beforeAll(async () => {
  web = await GuestWeb.create();
});
afterAll(() => web?.dispose());

// Describes a FormData as JSON, reading every File's bytes (defined in both engines).
const DESCRIBE = `async (fd) => { const out = []; for (const [k, v] of fd) out.push(typeof v === 'string' ? [k, v]
  : [k, Object.prototype.toString.call(v), v.name, v.type, v.size, await v.text(), v instanceof Blob]); return out; }`;

async function same(expr: string, withMessage = false): Promise<Outcome> {
  const strip = (o: Outcome) => (o.err !== undefined && !withMessage ? { err: o.err } : o);
  const mine = strip(web.probe(expr));
  const node = strip(await nodeProbe(expr));
  expect(mine).toEqual(node);
  return mine;
}

describe('FormData', () => {
  it('append, get, getAll, has, set, delete and iteration as Node', async () => {
    const r = await same(`(async () => {
      const fd = new FormData();
      fd.append('a', '1'); fd.append('b', 'x\\r\\ny'); fd.append('a', 2);
      fd.append('f', new Blob(['hello'], { type: 'Text/Plain' }));
      fd.append('g', new Blob(['z']), 'given.txt');
      fd.append('h', new File(['abc'], 'orig.bin', { type: 'application/x-thing', lastModified: 42 }));
      const before = [fd.get('a'), fd.getAll('a'), fd.has('f'), fd.get('nope'), fd.get('h').lastModified, fd.get('f').name];
      fd.set('a', 'replaced'); fd.delete('b');
      const keys = [...fd.keys()], values = [...fd.values()].map((v) => typeof v);
      const seen = []; fd.forEach((v, k, o) => seen.push(k, o === fd));
      const it = fd.entries(); const first = it.next().value; fd.append('late', 'x');
      const rest = [...it].map(([k]) => k);
      return [before, keys, values, seen, await (${DESCRIBE})(fd), Object.prototype.toString.call(fd), Object.prototype.toString.call(it), first[0], rest,
        typeof it[Symbol.iterator], it[Symbol.iterator]() === it];
    })()`);
    expect((r.v as unknown[])[1]).toEqual(['a', 'f', 'g', 'h']);
    expect((r.v as unknown[])[8]).toEqual(['f', 'g', 'h', 'late']);
  });

  it('rejects a third argument with a string value, and missing arguments', async () => {
    await same(`(() => { new FormData().append('a', 'b', 'c'); })()`);
    await same(`(() => { new FormData().append('a'); })()`);
    await same(`(() => { new FormData().get(); })()`);
  });
});

describe('File and Blob', () => {
  it('File: name, type, size, lastModified, Blob behaviour', async () => {
    await same(`(async () => {
      const f = new File(['ab', new Uint8Array([99]), new Blob(['d'])], 'n\\u00e9.txt', { type: 'TEXT/html', lastModified: 1234 });
      return [f.name, f.type, f.size, f.lastModified, await f.text(), f instanceof Blob, Object.prototype.toString.call(f),
        typeof new File([], 'x').lastModified, await f.slice(1, 3).text(), f.slice(1, 3) instanceof File];
    })()`);
    await same(`(() => new File(['x']))()`);
    // WebIDL long long truncates, as browsers do (Node 20 keeps the fraction).
    expect(web.probe(`new File([], 'x', { lastModified: 1234.9 }).lastModified`)).toEqual({ v: 1234 });
  });

  it('Blob.text, arrayBuffer and slice (negative, out of range, content type)', async () => {
    await same(`(async () => {
      const b = new Blob(['\\ufeffhé', 'llo'], { type: 'text/plain' });
      const ab = await b.arrayBuffer();
      return [await b.text(), ab.byteLength, [...new Uint8Array(ab)], b.size,
        await b.slice(-3).text(), await b.slice(3, -1).text(), b.slice(-100, 100).size, b.slice(5, 2).size,
        b.slice(0, 1, 'A/B').type, b.slice(0, 1).type, await b.slice(4, 5).text()];
    })()`);
  });
});

describe('Request/Response.formData()', () => {
  it('a FormData body round-trips through multipart/form-data', async () => {
    await same(`(async () => {
      const fd = new FormData();
      fd.append('name', 'ftjs'); fd.append('lines', 'a\\nb\\rc'); fd.append('quo"te\\n', 'v');
      fd.append('file', new File([new Uint8Array([0, 255, 13, 10, 45, 45])], 'bin "x".dat', { type: 'application/octet-stream' }));
      fd.append('empty', new File([], 'e.txt'));
      fd.append('utf', 'é€😀');
      const req = new Request('http://h/', { method: 'POST', body: fd });
      const ct = req.headers.get('content-type');
      const back = await req.formData();
      const file = back.get('file');
      return [/^multipart\\/form-data; boundary=/.test(ct), await (${DESCRIBE})(back), [...new Uint8Array(await file.arrayBuffer())]];
    })()`);
  });

  it('serializes as Node does, apart from the boundary', async () => {
    const expr = `(async () => {
      const fd = new FormData();
      fd.append('a', 'x\\ny'); fd.append('q"\\r', '1');
      fd.append('f', new Blob(['data'], { type: 'text/csv' }), 'r.csv');
      fd.append('g', new Blob(['?']));
      const res = new Response(fd);
      const ct = res.headers.get('content-type');
      const boundary = ct.slice(ct.indexOf('boundary=') + 9);
      const text = await res.text();
      return [ct.replace(boundary, 'B'), text.split(boundary).join('B')];
    })()`;
    await same(expr);
  });

  it('the boundary comes from the guest entropy input: two bodies differ, the same input repeats them', async () => {
    const expr = `[1, 2].map(() => new Request('http://h/', { method: 'POST', body: new FormData() }).headers.get('content-type'))`;
    const [one, two] = [await GuestWeb.create(), await GuestWeb.create()];
    try {
      const a = one.probe(expr).v as string[];
      expect(a[0]).not.toBe(a[1]);
      expect(a[0]).toMatch(/^multipart\/form-data; boundary=----formdata-ftjs-[0-9a-f]{24}$/);
      expect(two.probe(expr).v).toEqual(a);
    } finally {
      one.dispose();
      two.dispose();
    }
  });

  // (Node 20's parser fails on boundaries that occur in part contents, e.g. "b" in "ab": these
  // bodies use one that does not.)
  it('parses a browser-style multipart body as Node (quoted boundary, no part type, escapes, base64, empty parts)', async () => {
    await same(`(async () => {
      const body = '--XyZ-bnd\\r\\nContent-Disposition: form-data; name="title"\\r\\n\\r\\nHello, world\\r\\n' +
        '--XyZ-bnd\\r\\ncontent-disposition: form-data; name="up"; filename="a b.txt"\\r\\nContent-Type: text/plain; charset=utf-8\\r\\nX-Other: 1\\r\\n\\r\\nline1\\r\\nline2\\r\\n' +
        '--XyZ-bnd\\r\\nContent-Disposition: form-data; name="noType"; filename="x.bin"\\r\\n\\r\\n\\x01\\x02\\r\\n' +
        '--XyZ-bnd\\r\\nContent-Disposition: form-data; name="q%22%0a%0D%41"; filename="f%22.txt"\\r\\n\\r\\n\\r\\n' +
        '--XyZ-bnd\\r\\nContent-Disposition: form-data; name="b64"\\r\\nContent-Transfer-Encoding: base64\\r\\n\\r\\nw6l0w6k=\\r\\n' +
        '--XyZ-bnd\\r\\nContent-Disposition: form-data; name="empty"\\r\\n\\r\\n\\r\\n' +
        '--XyZ-bnd\\r\\nContent-Disposition: form-data; name="utf"\\r\\n\\r\\n\\u00e9t\\u00e9\\r\\n--XyZ-bnd--\\r\\n';
      const res = new Response(new TextEncoder().encode(body), { headers: { 'content-type': 'multipart/form-data; boundary="XyZ-bnd"' } });
      const only = new Response('--XyZ-bnd--', { headers: { 'content-type': 'multipart/form-data; boundary=XyZ-bnd' } });
      return [await (${DESCRIBE})(await res.formData()), [...await only.formData()].length];
    })()`);
  });

  it('accepts what RFC 2046 allows and Node 20 refuses: preamble, epilogue, padding, filename*, unquoted names', () => {
    const r = web.probe(`(async () => {
      const body = 'preamble\\r\\n--XyZ-bnd  \\r\\nContent-Disposition: form-data; name=plain\\r\\n\\r\\nv\\r\\n' +
        '--XyZ-bnd\\r\\nContent-Disposition: form-data; name="f"; filename*=UTF-8\\'\\'%C3%A9.txt\\r\\n\\r\\nx\\r\\n--XyZ-bnd--\\r\\nepilogue';
      const fd = await new Response(body, { headers: { 'content-type': 'multipart/form-data; boundary=XyZ-bnd' } }).formData();
      return (${DESCRIBE})(fd);
    })()`);
    expect(r).toEqual({
      v: [
        ['plain', 'v'],
        ['f', '[object File]', 'é.txt', 'text/plain', 1, 'x', true],
      ],
    });
  });

  it('parses application/x-www-form-urlencoded', async () => {
    await same(`(async () => {
      const r = new Request('http://h/', { method: 'POST', body: 'a=1&b=%C3%A9+x&a=2&&c&=d&e=%zz', headers: { 'content-type': 'application/x-www-form-urlencoded' } });
      const fd = await r.formData();
      const fd2 = await new Response(new URLSearchParams({ x: 'y z', 'é': '€' })).formData();
      return [await (${DESCRIBE})(fd), await (${DESCRIBE})(fd2), r.bodyUsed];
    })()`);
  });

  it('rejects with a TypeError: other content types, no boundary, a truncated body, a used body', async () => {
    await same(`new Response('a=1', { headers: { 'content-type': 'text/plain' } }).formData()`);
    await same(`new Response('a=1').formData()`);
    await same(`new Response('--b\\r\\n', { headers: { 'content-type': 'multipart/form-data' } }).formData()`);
    await same(`new Response('--b\\r\\nContent-Disposition: form-data; name="a"\\r\\n\\r\\nno end', { headers: { 'content-type': 'multipart/form-data; boundary=b' } }).formData()`);
    await same(`(async () => { const r = new Response('a=1', { headers: { 'content-type': 'application/x-www-form-urlencoded' } }); await r.text(); return r.formData(); })()`);
  });
});
