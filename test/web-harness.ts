// A bare QuickJS context with the built guest web platform (dist/hypervisor/guest/web.js), and
// the same probe run in Node 20, for tests that compare the two (forms, encodings, aborts, ...).
// A fake host answers the entropy op from a seeded counter, so that code drawing on it runs.

import variant from '@jitl/quickjs-wasmfile-release-sync';
import type { QuickJSContext, QuickJSRuntime } from 'quickjs-emscripten-core';
import { newQuickJSWASMModuleFromVariant } from 'quickjs-emscripten-core';
import { installTestHost, WEB_GLUE } from './guest-host.js';

export const WEB_JS = WEB_GLUE.boot;

export type Outcome = { v?: unknown; err?: string; msg?: string };

const wrapAsync = (expr: string) =>
  `globalThis.__probe = Promise.resolve().then(() => (${expr})).then((v) => JSON.stringify({ v }), (e) => JSON.stringify({ err: e && e.name, msg: e && e.message })); undefined;`;

export class GuestWeb {
  private constructor(
    private readonly rt: QuickJSRuntime,
    readonly ctx: QuickJSContext,
  ) {}

  static async create(): Promise<GuestWeb> {
    const mod = await newQuickJSWASMModuleFromVariant(variant as unknown as Parameters<typeof newQuickJSWASMModuleFromVariant>[0]);
    const rt = mod.newRuntime();
    const ctx = rt.newContext();
    const web = new GuestWeb(rt, ctx);
    installTestHost(ctx);
    web.eval(WEB_JS);
    web.eval('globalThis.__web = globalThis.__ftjs_web; delete globalThis.__ftjs_web;');
    return web;
  }

  eval(code: string): unknown {
    const r = this.ctx.evalCode(code);
    if (r.error) {
      const e = this.ctx.dump(r.error);
      r.error.dispose();
      throw new Error('QuickJS evaluation failed: ' + JSON.stringify(e));
    }
    const v = this.ctx.dump(r.value);
    r.value.dispose();
    return v;
  }

  /** Evaluates an expression (a promise is awaited by draining jobs) to { v } or { err, msg }. */
  probe(expr: string): Outcome {
    this.eval(wrapAsync(expr));
    const jobs = this.rt.executePendingJobs();
    if (jobs.error) {
      const e = this.ctx.dump(jobs.error);
      jobs.error.dispose();
      throw new Error('pending job failed: ' + JSON.stringify(e));
    }
    const p = this.ctx.getProp(this.ctx.global, '__probe');
    const st = this.ctx.getPromiseState(p);
    p.dispose();
    if (st.type !== 'fulfilled') {
      if (st.type === 'rejected') st.error.dispose();
      throw new Error('probe promise did not settle: ' + st.type);
    }
    const v = this.ctx.dump(st.value);
    st.value.dispose();
    return JSON.parse(v as string);
  }

  dispose(): void {
    this.ctx.dispose();
    this.rt.dispose();
  }
}

export async function nodeProbe(expr: string): Promise<Outcome> {
  (0, eval)(wrapAsync(expr));
  const out = JSON.parse(await (globalThis as any).__probe);
  delete (globalThis as any).__probe;
  return out;
}
