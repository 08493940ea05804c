// Runs one WPT file inside the guest: a fresh QuickJS runtime and context with the built web glue
// (dist/hypervisor/guest/web.js, exactly what every VM evaluates at boot), then the harness shim,
// the test's META scripts and the test. Promise jobs are drained to empty, then the next virtual
// timer fires, until every subtest has finished or nothing is left to run.

import variant from '@jitl/quickjs-wasmfile-release-sync';
import type { QuickJSContext, QuickJSWASMModule } from 'quickjs-emscripten-core';
import { newQuickJSWASMModuleFromVariant } from 'quickjs-emscripten-core';
import { installTestHost, WEB_GLUE } from '../guest-host.js';
import { type FileResult, loadTest, missingFile, readResource, SHIM_SOURCE, summarize } from './files.js';

/** Wall-clock budget for one file in the guest; a file past it is interrupted and its open subtests time out. */
export const GUEST_FILE_TIMEOUT_MS = Number(process.env.FTJS_WPT_FILE_TIMEOUT_MS) || 20_000;
/** Timer firings allowed for one file: a test polling forever on a virtual clock ends here. */
const MAX_TIMER_FIRINGS = 100_000;
const MEMORY_LIMIT_BYTES = 1024 * 1024 * 1024;

let modulePromise: Promise<QuickJSWASMModule> | null = null;
function quickjs(): Promise<QuickJSWASMModule> {
  modulePromise ??= newQuickJSWASMModuleFromVariant(variant as unknown as Parameters<typeof newQuickJSWASMModuleFromVariant>[0]);
  return modulePromise;
}

function evalScript(ctx: QuickJSContext, source: string, name: string): string | null {
  const r = ctx.evalCode(source, name, { type: 'global' });
  if (r.error) {
    const e = ctx.dump(r.error) as { name?: string; message?: string } | string;
    r.error.dispose();
    return typeof e === 'object' && e ? `${e.name}: ${e.message}` : String(e);
  }
  r.value.dispose();
  return null;
}

function callDriver(ctx: QuickJSContext, expr: string): unknown {
  const r = ctx.evalCode(expr, 'wpt-driver.js');
  if (r.error) {
    const e = ctx.dump(r.error);
    r.error.dispose();
    throw new Error(`WPT driver: ${expr} failed: ${JSON.stringify(e)}`);
  }
  const v = ctx.dump(r.value);
  r.value.dispose();
  return v;
}

export async function runInGuest(root: string, file: string, timeoutMs = GUEST_FILE_TIMEOUT_MS): Promise<FileResult> {
  const test = loadTest(root, file);
  if (test === null) return missingFile(file);
  const mod = await quickjs();
  const rt = mod.newRuntime();
  rt.setMemoryLimit(MEMORY_LIMIT_BYTES);
  rt.setMaxStackSize(4 * 1024 * 1024);
  const deadline = Date.now() + timeoutMs;
  rt.setInterruptHandler(() => Date.now() > deadline);
  const ctx = rt.newContext();
  try {
    installTestHost(ctx);
    const glueError = evalScript(ctx, WEB_GLUE.boot, 'ftjs:web.js');
    if (glueError) throw new Error(`the web glue failed to evaluate: ${glueError}`);
    const read = ctx.newFunction('__wpt_read', (h) => {
      const text = readResource(root, ctx.getString(h));
      return text === undefined ? ctx.undefined : ctx.newString(text);
    });
    ctx.setProp(ctx.global, '__wpt_read', read);
    read.dispose();
    const base = ctx.newString(test.base);
    ctx.setProp(ctx.global, '__wpt_base', base);
    base.dispose();
    const shimError = evalScript(ctx, SHIM_SOURCE, 'wpt-shim.js');
    if (shimError) throw new Error(`the WPT shim failed to evaluate: ${shimError}`);
    for (const script of test.scripts) {
      const error = evalScript(ctx, script.source, script.name);
      if (error) {
        callDriver(ctx, `__wpt.harnessError(${JSON.stringify(`${script.name}: ${error}`)})`);
        break;
      }
    }
    for (let firings = 0; firings < MAX_TIMER_FIRINGS && Date.now() <= deadline; firings++) {
      const jobs = rt.executePendingJobs(-1);
      if (jobs.error) jobs.error.dispose();
      if (!callDriver(ctx, '__wpt.pending()')) break;
      if (!callDriver(ctx, '__wpt.fireNextTimer()')) break;
    }
    rt.setInterruptHandler(() => false);
    return summarize(file, callDriver(ctx, '__wpt.finish()') as string);
  } finally {
    ctx.dispose();
    rt.dispose();
  }
}
