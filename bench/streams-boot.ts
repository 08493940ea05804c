// What the streams part of the web glue costs (issue 14): the boot script's evaluation (every boot),
// and the first use of the lazy streams and compression modules (once per VM, in the guest's task).
// CPU time of this process (user + system), not wall time: the figures hold on a loaded machine.
//   node dist/bench/streams-boot.js [runs] [path to another build's web.js to compare]

import { readFileSync } from 'node:fs';
import variant from '@jitl/quickjs-wasmfile-release-sync';
import { newQuickJSWASMModuleFromVariant } from 'quickjs-emscripten-core';
import { splitWebGlue } from '../hypervisor/vm/glue.js';
import { BUILT_WEB_GLUE } from '../hypervisor/vm/glue-build.js';

const OP_LAZY_MODULE = 9; // hypervisor/vm/vm.ts HostOp.LazyModule
const runs = Number(process.argv[2] ?? 25);
const other = process.argv[3];

const module = await newQuickJSWASMModuleFromVariant(variant as unknown as Parameters<typeof newQuickJSWASMModuleFromVariant>[0]);
const web = splitWebGlue(readFileSync(BUILT_WEB_GLUE, 'utf8'));

function cpuMs(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

/** CPU ms of evaluating `boot`, then of each of `after` in turn, in a fresh context. */
function measure(boot: string, lazy: Record<string, string>, after: string[]): number[] {
  const rt = module.newRuntime();
  const ctx = rt.newContext();
  const host = ctx.newFunction('host', (op, name) => (ctx.getNumber(op) === OP_LAZY_MODULE ? ctx.newString(lazy[ctx.getString(name)] ?? '') : undefined));
  ctx.setProp(ctx.global, '__ftjs_host', host);
  host.dispose();
  const times: number[] = [];
  for (const code of [boot, ...after]) {
    const start = cpuMs();
    const result = ctx.evalCode(code);
    if (result.error) throw new Error(JSON.stringify(ctx.dump(result.error)));
    result.value.dispose();
    times.push(cpuMs() - start);
  }
  ctx.dispose();
  rt.dispose();
  return times;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const samples: number[][] = [[], [], [], []];
for (let i = 0; i < runs; i++) {
  const [boot, streams, compression] = measure(web.boot, web.lazy, ['typeof ReadableStream', 'typeof CompressionStream']);
  samples[0]!.push(boot!);
  samples[1]!.push(streams!);
  samples[2]!.push(compression!);
  if (other) samples[3]!.push(measure(splitWebGlue(readFileSync(other, 'utf8')).boot, {}, [])[0]!);
}
const row = (what: string, xs: number[]) => console.log(`${what.padEnd(44)} ${median(xs).toFixed(1).padStart(6)} ms CPU (median of ${xs.length})`);
console.log(
  `boot script ${web.boot.length} B; lazy: ${Object.entries(web.lazy)
    .map(([k, v]) => `${k} ${v.length} B`)
    .join(', ')}`,
);
row('boot script evaluation (every boot)', samples[0]!);
if (other) row(`boot script of ${other}`, samples[3]!);
row('first use of streams (once per VM)', samples[1]!);
row('first use of compression, after streams', samples[2]!);
