// The debugger's eval: what the guest sees of it and how its results come back.
//
// An eval never runs in a VM that replays or serves: the VM worker copies the VM (snapshot, then a
// fresh VM restored from it) and evaluates in the copy, with an input port that hands out no new
// inputs. So the replay stays exact whatever the expression does, and the copy can be thrown away.
//
// Reaching guest state: the expression is a script evaluated in the guest's global scope. Module-level
// `let`/`const`/`function` bindings of the guest's modules are not globals, and QuickJS offers no way
// to evaluate inside a module's scope. What is reachable: globals (`globalThis.x`), and every binding a
// module *exports*, through its namespace: `$mod` is bound to the entry module's namespace (exported
// `let` bindings are live: `$mod.counter` is the current value), and `import('../lib/x.js')` works too
// (a promise result is awaited). `console.log` in an expression prints with the result.

import type { QuickJSContext, QuickJSHandle } from 'quickjs-emscripten-core';
import type { Divergence, InputPort } from './port.js';
import type { ConsoleLine, Vm } from './vm.js';

export interface EvalResult {
  ok: boolean;
  /** The result (ok) or the thrown value (not ok), formatted in the guest like console.log does. */
  value: string;
  /** typeof the result ('promise' results are awaited and report the settled value's type). */
  type: string;
  console: ConsoleLine[];
  /** The expression ran past its time budget and was interrupted. */
  interrupted: boolean;
  /** Outputs (responses, fetches) the expression produced: counted, never sent. */
  outputsDiscarded: number;
}

/** What an eval reaches of a scratch VM (Vm.runScratch), outside any task. */
export interface ScratchScope {
  readonly context: QuickJSContext;
  /** The entry module's name (bound as `$mod`). */
  readonly entry: string;
  /** The code ran past its budget and was interrupted. */
  readonly preempted: boolean;
  /** Starts a fresh budget (and clears `preempted`). */
  restartBudget(): void;
  drainJobs(): void;
  evalScript(code: string, filename: string): QuickJSHandle;
  /** Maps bundled positions in a stack or message back to the guest's sources. */
  mapText(text: string): string;
}

/** The guest-side formatter of each scratch context, evaluated on its first eval. */
const formatters = new WeakMap<QuickJSContext, QuickJSHandle>();

/**
 * The debugger's eval, for a scratch copy of a VM only: evaluates `code` as a script in the guest's
 * global scope (with `$mod` bound to the entry module's namespace), drains the jobs it queues, awaits
 * a promise result, and formats the result in the guest. Whatever the code changes stays in `vm`.
 */
export function evaluate(vm: Vm, code: string): EvalResult {
  const run = vm.runScratch((g) => {
    const c = g.context;
    let format = formatters.get(c);
    if (!format) {
      format = g.evalScript(EVAL_FORMAT_JS, 'ftjs:inspect.js');
      formatters.set(c, format);
      const setup = c.evalCode(`import(${JSON.stringify(`./${g.entry}`)}).then((m) => { globalThis.$mod = m; })`, 'ftjs:inspect-setup.js', { type: 'global' });
      if (setup.error) setup.error.dispose();
      else setup.value.dispose();
      g.drainJobs();
    }
    let ok = true;
    let handle: QuickJSHandle;
    const result = c.evalCode(code, 'eval', { type: 'global' });
    if (result.error) {
      ok = false;
      handle = result.error;
    } else {
      handle = result.value;
      if (!g.preempted) g.drainJobs();
      const state = c.getPromiseState(handle);
      if (state.type === 'fulfilled' && !state.notAPromise) {
        handle.dispose();
        handle = state.value;
      } else if (state.type === 'rejected') {
        handle.dispose();
        handle = state.error;
        ok = false;
      } else if (state.type === 'fulfilled' && state.value !== handle) {
        state.value.dispose();
      }
    }
    const type = c.typeof(handle);
    // The formatter gets a budget of its own.
    g.restartBudget();
    const formatted = c.callFunction(format, c.undefined, handle);
    handle.dispose();
    let value: string;
    if (formatted.error) {
      value = `<cannot format the result: ${JSON.stringify(c.dump(formatted.error))}>`;
      formatted.error.dispose();
    } else {
      value = c.getString(formatted.value);
      formatted.value.dispose();
    }
    return { ok, value: g.mapText(value), type, interrupted: !ok && /interrupted/.test(value) };
  });
  return { ok: run.value.ok, value: run.value.value, type: run.value.type, console: run.console, interrupted: run.value.interrupted, outputsDiscarded: run.outputsDiscarded };
}

/** Default wall-clock budget of one eval. */
export const DEFAULT_EVAL_BUDGET_MS = 2000;

/**
 * The input port of an eval copy: the clock stands still at the last value the guest saw, there is no
 * new entropy (a guest that needs more than its pool gets an exception), and the expression is
 * interrupted after a wall-clock budget.
 */
export class InspectPort implements InputPort {
  readonly mode = 'replay' as const;
  private deadline = Number.POSITIVE_INFINITY;

  constructor(private readonly budgetMs = DEFAULT_EVAL_BUDGET_MS) {}

  /** Starts the budget again (the VM calls it before the expression and before formatting its result). */
  restartBudget(): void {
    this.deadline = performance.now() + this.budgetMs;
  }

  beginTask(): void {}
  endTask(): null {
    return null;
  }
  diverge(): void {}
  divergence(): Divergence | null {
    return null;
  }
  clock(_readIndex: number, _pos: number, lastMs: number): number {
    return lastMs;
  }
  entropy(): Uint8Array {
    throw new Error('ftjs eval: the inspector has no new entropy to give (the guest used up its pool)');
  }
  preempt(): boolean {
    return performance.now() > this.deadline;
  }
}

/**
 * Guest-side formatter for eval results, evaluated once in an eval copy. Its completion value is a
 * function (value, isError) => string. Bounded: depth, items and length.
 */
export const EVAL_FORMAT_JS = `(function () {
  'use strict';
  const MAX = 100000;
  function fmt(value, depth, seen) {
    switch (typeof value) {
      case 'string': return depth === 0 ? value : JSON.stringify(value);
      case 'number': return Object.is(value, -0) ? '-0' : String(value);
      case 'boolean': case 'undefined': return String(value);
      case 'bigint': return value + 'n';
      case 'symbol': return value.toString();
      case 'function': return '[Function: ' + (value.name || 'anonymous') + ']';
    }
    if (value === null) return 'null';
    if (seen.includes(value)) return '[Circular]';
    if (value instanceof Error) return (value.name || 'Error') + ': ' + value.message + (value.stack ? '\\n' + value.stack : '');
    if (depth > 4) return Array.isArray(value) ? '[Array]' : '[Object]';
    seen = seen.concat([value]);
    const items = (list, f) => { const out = []; let n = 0; for (const x of list) { if (n++ === 100) { out.push('...'); break; } out.push(f(x)); } return out.join(', '); };
    if (Array.isArray(value)) return '[ ' + items(value, (v) => fmt(v, depth + 1, seen)) + ' ]';
    if (value instanceof Date) return isNaN(value) ? 'Invalid Date' : value.toISOString();
    if (value instanceof Map) return 'Map(' + value.size + ') { ' + items(value, ([k, v]) => fmt(k, depth + 1, seen) + ' => ' + fmt(v, depth + 1, seen)) + ' }';
    if (value instanceof Set) return 'Set(' + value.size + ') { ' + items(value, (v) => fmt(v, depth + 1, seen)) + ' }';
    if (value instanceof Promise) return 'Promise { <pending> }';
    if (ArrayBuffer.isView(value)) return value.constructor.name + '(' + value.length + ') [ ' + items(value, (v) => String(v)) + ' ]';
    if (value instanceof ArrayBuffer) return 'ArrayBuffer { byteLength: ' + value.byteLength + ' }';
    const isModule = value[Symbol.toStringTag] === 'Module';
    const keys = isModule ? Object.getOwnPropertyNames(value) : Object.keys(value);
    let name = isModule ? '[Module] ' : '';
    try {
      if (!isModule && value.constructor && value.constructor !== Object && typeof value.constructor.name === 'string') name = value.constructor.name + ' ';
    } catch (e) {}
    if (keys.length === 0) return name + '{}';
    return name + '{ ' + items(keys, (k) => {
      let v;
      try { v = fmt(value[k], depth + 1, seen); } catch (e) { v = '<' + (e && e.name) + ' in getter>'; }
      return k + ': ' + v;
    }) + ' }';
  }
  return function format(value) {
    let s;
    try { s = fmt(value, 0, []); } catch (e) { s = '<cannot format: ' + (e && e.message) + '>'; }
    return s.length > MAX ? s.slice(0, MAX) + '... (' + s.length + ' characters)' : s;
  };
})()`;
