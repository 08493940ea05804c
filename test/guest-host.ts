// A host function for a bare QuickJS context evaluating the built web glue (no VM, no port): the
// pure host ops answered as a VM answers them (lazy modules, lazy glue, crypto.subtle), and entropy
// from a counter, so tests of the web platform run what every VM boots without booting one.
import { readFileSync } from 'node:fs';
import type { QuickJSContext, QuickJSHandle } from 'quickjs-emscripten-core';
import { lazyGlueSource, localGlue, splitWebGlue } from '../dist/hypervisor/vm/glue.js';
import { subtleHostOp } from '../dist/hypervisor/vm/subtle/host-op.js';

const OP_ENTROPY = 6;
const OP_LAZY_MODULE = 9;
const OP_CRYPTO = 13;
const OP_LAZY_GLUE = 14;

/** The built web glue: its boot script (what a VM evaluates at boot) and its lazy modules. */
export const WEB_GLUE = splitWebGlue(readFileSync(new URL('../dist/hypervisor/vm/guest/web.js', import.meta.url), 'utf8'));

/** Sets `globalThis.__ftjs_host` in `ctx`; entropy bytes count 1, 2, 3, ... from `seed`. */
export function installTestHost(ctx: QuickJSContext, seed = 0): void {
  let counter = seed;
  const glue = localGlue();
  const bytes = (h: QuickJSHandle | undefined): Uint8Array => {
    if (!h || ctx.typeof(h) === 'undefined') return new Uint8Array(0);
    if (ctx.typeof(h) === 'string') return new TextEncoder().encode(ctx.getString(h));
    const view = ctx.getArrayBuffer(h);
    const copy = view.value.slice();
    view.dispose();
    return copy;
  };
  const host = ctx.newFunction('host', (...args) => {
    const op = ctx.getNumber(args[0]!);
    switch (op) {
      case OP_ENTROPY: {
        const out = new Uint8Array(ctx.getNumber(args[1]!));
        for (let i = 0; i < out.length; i++) out[i] = ++counter & 255;
        return ctx.newArrayBuffer(out.buffer);
      }
      case OP_LAZY_MODULE: {
        const code = WEB_GLUE.lazy[ctx.getString(args[1]!)];
        return code === undefined ? undefined : ctx.newString(code);
      }
      case OP_LAZY_GLUE: {
        const name = ctx.getString(args[1]!);
        const code = name === '' ? undefined : lazyGlueSource(glue, name);
        if (code === undefined) return undefined;
        const r = ctx.evalCode(code, `ftjs:${name}.js`, { type: 'global', strict: true });
        return r.error ?? r.value;
      }
      case OP_CRYPTO: {
        const answer = subtleHostOp({ json: ctx.getString(args[1]!), buffers: args.slice(2).map(bytes) });
        if (answer instanceof Uint8Array) return ctx.newArrayBuffer(new Uint8Array(answer).buffer);
        if (typeof answer === 'boolean') return ctx.newNumber(answer ? 1 : 0);
        const result = ctx.newArray();
        [ctx.newString(answer.json), ...answer.buffers.map((b) => ctx.newArrayBuffer(new Uint8Array(b).buffer))].forEach((part, i) => {
          ctx.setProp(result, i, part);
          part.dispose();
        });
        return result;
      }
      default:
        throw new Error(`test host: op ${op} needs a VM`);
    }
  });
  ctx.setProp(ctx.global, '__ftjs_host', host);
  host.dispose();
}
