// AbortSignal.any and the argument checks of AbortSignal.timeout in the guest web platform, compared
// with Node 20 (the timers behind timeout() are the runtime's: test/aborts.test.ts runs them).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GuestWeb, nodeProbe } from './web-harness.js';

let web: GuestWeb;
beforeAll(async () => {
  web = await GuestWeb.create();
});
afterAll(() => web?.dispose());

async function same(expr: string) {
  const mine = web.probe(expr);
  expect(mine).toEqual(await nodeProbe(expr));
  return mine;
}

describe('AbortSignal.any', () => {
  it('follows the first source to abort, with its reason, firing abort once', async () => {
    await same(`(() => {
      const a = new AbortController(), b = new AbortController();
      const any = AbortSignal.any([a.signal, b.signal]);
      const nested = AbortSignal.any([any]);
      const log = [];
      any.addEventListener('abort', () => log.push('any:' + any.reason));
      nested.onabort = () => log.push('nested:' + nested.reason);
      const before = [any.aborted, nested.aborted];
      b.abort('second'); a.abort('first');
      return [before, any.aborted, any.reason, nested.reason, log];
    })()`);
  });

  it('is aborted at once when a source already is; never for no sources; rejects non-signals', async () => {
    await same(`[AbortSignal.any([new AbortController().signal, AbortSignal.abort('done')]).reason, AbortSignal.any([]).aborted]`);
    // (messages differ: compare the error class only)
    expect(web.probe(`(() => { AbortSignal.any([{}]); })()`).err).toBe((await nodeProbe(`(() => { AbortSignal.any([{}]); })()`)).err);
    await same(
      `(() => { const c = new AbortController(); const s = AbortSignal.any([c.signal]); c.abort(); return [s.reason.name, s.reason instanceof DOMException, s.reason === c.signal.reason]; })()`,
    );
  });
});

describe('AbortSignal.timeout', () => {
  it('refuses delays outside WebIDL unsigned long long [EnforceRange] with a TypeError (Node throws RangeError)', () => {
    for (const v of ['-1', 'NaN', 'Infinity', '2 ** 53']) expect(web.probe(`AbortSignal.timeout(${v})`).err, v).toBe('TypeError');
  });
});
