// Boot time and cold start (issues 14.5 and 19): where a VM's boot goes, and how long `ftjs run` takes
// from process start to its first 200, against plain Node importing the same module and serving it
// through node:http. Guests: guest-apps/kv.js and two Hono bundles built here with esbuild (~60 KB and
// ~100 KB). Every figure is a median over --runs fresh processes, the variants alternating so that
// load from other work on the machine falls on all of them alike.
//
//   node dist/bench/boot.js [--runs 7] [--baseline <dir>]
//
// --baseline: another built checkout of ftjs (e.g. the commit before these cuts); its `ftjs run` cold
// start is measured in the same rounds.
//
// "image": the VM starts from a boot image in a cache directory (the steady state: the first boot of a
// build keeps one); "full": no image on disk (a build's first boot, which also keeps one in memory).

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { buildGuests } from './boot-guests.js';
import { argNumber, cpuMsOf, httpGetStatus as get, median, projectPath } from './util.js';

// ------------------------------------------------------------------------------------------ children

/** In a fresh process: one VM boot, its phases, a first request, and a compile-only of the guest. */
async function childVmPhases(file: string, images: boolean): Promise<void> {
  const t0 = performance.now();
  const [{ Vm }, { LivePort }, { makeBootConfig }, { loadGuest }, { defaultBootImageCache }] = await Promise.all([
    import('../hypervisor/vm/vm.js'),
    import('../recorder/live-port.js'),
    import('../hypervisor/vm/boot-config.js'),
    import('../hypervisor/vm/sources.js'),
    import('../hypervisor/vm/boot-image.js'),
  ]);
  const importMs = performance.now() - t0;
  const config = makeBootConfig(loadGuest(file), {});
  const started = performance.now();
  // eslint-disable-next-line prefer-const
  let vm: Awaited<ReturnType<typeof Vm.create>>;
  const port = new LivePort({ push: (e) => vm.sink.push(e) }, { taskBudgetMs: 60_000 });
  vm = await Vm.create(config, port, undefined, { bootImages: images ? defaultBootImageCache() : null });
  const boot = vm.bootLive();
  const bootMs = performance.now() - started;
  if (!boot.console.every((c: { level: string }) => c.level !== 'error')) throw new Error(`boot failed: ${JSON.stringify(boot.console)}`);
  const r0 = performance.now();
  const first = vm.runLive({ kind: 'request', method: 'GET', url: 'http://vm/', headers: [], body: new Uint8Array() });
  const firstRequestMs = performance.now() - r0;
  if (first.outputs[0]?.kind !== 'response' || first.outputs[0].status !== 200) throw new Error(`first request: ${JSON.stringify(first.outputs[0] ?? first.console)}`);
  // The guest's compile alone, measured after (so warmer than inside the boot): a lower bound.
  const context = (vm as unknown as { context: { evalCode(code: string, name: string, options: object): { value?: { dispose(): void }; error?: { dispose(): void } } } }).context;
  const c0 = performance.now();
  const compiled = context.evalCode(config.sources.find((s) => s.name === config.entry)!.text, 'compile-only.js', { type: 'module', compileOnly: true });
  const compileOnlyMs = performance.now() - c0;
  (compiled.value ?? compiled.error)?.dispose();
  await defaultBootImageCache().flush();
  process.stdout.write(`${JSON.stringify({ importMs, bootMs, ...vm.bootTimings, image: vm.imageUse.source, firstRequestMs, compileOnlyMs })}\n`);
}

async function childNodeImport(file: string): Promise<void> {
  const t0 = performance.now();
  await import(pathToFileURL(file).href);
  process.stdout.write(`${JSON.stringify({ importMs: performance.now() - t0 })}\n`);
}

/** A VM worker from spawn to its first reply (thread start, its modules, the engine compile begun). */
async function childWorkerStart(): Promise<void> {
  const t0 = performance.now();
  const worker = new Worker(new URL('../hypervisor/worker/vm-worker.js', import.meta.url), { resourceLimits: { stackSizeMb: 16 } });
  let onlineMs = 0;
  worker.once('online', () => (onlineMs = performance.now() - t0));
  await new Promise<void>((resolve) => {
    worker.once('message', () => resolve());
    worker.postMessage({ id: 1, request: { op: 'checkpoint-drop', ids: [] } });
  });
  const replyMs = performance.now() - t0;
  await worker.terminate();
  process.stdout.write(`${JSON.stringify({ onlineMs, replyMs })}\n`);
}

async function childCliLoad(): Promise<void> {
  const t0 = performance.now();
  await Promise.all([import('commander'), import('../cli/run.js')]);
  process.stdout.write(`${JSON.stringify({ importMs: performance.now() - t0 })}\n`);
}

// ------------------------------------------------------------------------------------------ parent

function runChild(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Record<string, number | string>> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [new URL(import.meta.url).pathname, '--child', ...args], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!) as Record<string, number | string>) : reject(new Error(`child ${args.join(' ')} exited with ${code}`))));
  });
}

/**
 * Spawns a server, waits for its "serving" line, GETs / and returns ms from spawn to the 200; `cpu`
 * gets the CPU ms the server had used by then (the measure least moved by other load on the machine).
 */
function coldStart(argv: string[], env: NodeJS.ProcessEnv, cpu?: number[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, argv, { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let buffered = '';
    let done = false;
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      buffered += chunk;
      const match = done ? null : /"url":"(http:\/\/127\.0\.0\.1:\d+)"/.exec(buffered);
      if (!match) return;
      done = true;
      get(`${match[1]}/`).then(
        (status) => {
          const ms = performance.now() - started;
          cpu?.push(cpuMsOf(child.pid!));
          child.kill('SIGKILL');
          status === 200 ? resolve(ms) : reject(new Error(`${argv.join(' ')}: GET / gave ${status}`));
        },
        (error: Error) => {
          child.kill('SIGKILL');
          reject(error);
        },
      );
    });
    child.on('exit', (code) => {
      if (!done) reject(new Error(`${argv.join(' ')} exited with ${code} before serving`));
    });
  });
}

function processMs(argv: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn(process.execPath, argv, { stdio: 'ignore' });
    child.on('exit', (code) => (code === 0 ? resolve(performance.now() - started) : reject(new Error(`${argv.join(' ')} exited with ${code}`))));
  });
}

const med = (values: number[]) => Math.round(median(values) * 10) / 10;

function summarise(samples: Array<Record<string, number | string>>): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const key of Object.keys(samples[0]!)) {
    const values = samples.map((s) => s[key]);
    out[key] = typeof values[0] === 'number' ? med(values as number[]) : [...new Set(values)].join('/');
  }
  return out;
}

async function main(): Promise<void> {
  const runs = argNumber('--runs', 7);
  const baselineAt = process.argv.indexOf('--baseline');
  const baselineCli = baselineAt >= 0 ? path.resolve(process.argv[baselineAt + 1]!, 'dist/cli/ftjs.js') : null;
  const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-bench-boot-'));
  const cacheDir = path.join(dir, 'boot-images');
  const imageEnv = { ...process.env, FTJS_BOOT_CACHE_DIR: cacheDir };
  const fullEnv = { ...process.env, FTJS_BOOT_CACHE_DIR: 'off' };
  const report: Record<string, unknown> = { runs, node: process.version };
  try {
    const guests = await buildGuests(dir);
    const cli = projectPath('dist/cli/ftjs.js');
    const nodeServe = projectPath('dist/bench/node-serve.js');

    // The process-level pieces, alternating.
    const pieces = {
      nodeEmptyMs: [] as number[],
      ftjsHelpMs: [] as number[],
      baselineHelpMs: [] as number[],
      cliLoad: [] as Array<Record<string, number | string>>,
      workerStart: [] as Array<Record<string, number | string>>,
    };
    for (let i = 0; i < runs; i++) {
      pieces.nodeEmptyMs.push(await processMs(['-e', '0']));
      pieces.ftjsHelpMs.push(await processMs([cli, '--help']));
      pieces.cliLoad.push(await runChild(['cli-load']));
      pieces.workerStart.push(await runChild(['worker-start']));
      if (baselineCli) pieces.baselineHelpMs.push(await processMs([baselineCli, '--help']));
    }
    report.process = {
      nodeEmptyMs: med(pieces.nodeEmptyMs),
      ftjsHelpMs: med(pieces.ftjsHelpMs),
      ...(baselineCli ? { baselineHelpMs: med(pieces.baselineHelpMs) } : {}),
      runCommandModulesMs: summarise(pieces.cliLoad).importMs,
      vmWorker: summarise(pieces.workerStart),
    };
    process.stderr.write(`process: ${JSON.stringify(report.process)}\n`);

    for (const guest of guests) {
      // Keep an image for this build first (not counted), as any first boot does.
      await runChild(['vm-phases', guest.file, 'on'], imageEnv);
      await coldStart([cli, 'run', guest.file, '-p', '0', '--log-level', 'info'], imageEnv);
      const phases = { image: [] as Array<Record<string, number | string>>, full: [] as Array<Record<string, number | string>>, nodeImport: [] as Array<Record<string, number | string>> };
      const cold = { ftjsImage: [] as number[], ftjsFull: [] as number[], node: [] as number[], baseline: [] as number[] };
      const cpu = { ftjsImage: [] as number[], ftjsFull: [] as number[], node: [] as number[], baseline: [] as number[] };
      for (let i = 0; i < runs; i++) {
        phases.image.push(await runChild(['vm-phases', guest.file, 'on'], imageEnv));
        phases.full.push(await runChild(['vm-phases', guest.file, 'on'], fullEnv));
        phases.nodeImport.push(await runChild(['node-import', guest.file]));
        cold.ftjsImage.push(await coldStart([cli, 'run', guest.file, '-p', '0', '--log-level', 'info'], imageEnv, cpu.ftjsImage));
        cold.ftjsFull.push(await coldStart([cli, 'run', guest.file, '-p', '0', '--log-level', 'info'], fullEnv, cpu.ftjsFull));
        cold.node.push(await coldStart([nodeServe, guest.file], process.env, cpu.node));
        if (baselineCli) cold.baseline.push(await coldStart([baselineCli, 'run', guest.file, '-p', '0', '--log-level', 'info'], process.env, cpu.baseline));
      }
      const image = summarise(phases.image);
      const full = summarise(phases.full);
      const nodeImportMs = summarise(phases.nodeImport).importMs as number;
      const entry = {
        bytes: guest.bytes,
        vmBootImage: image,
        vmBootFull: full,
        nodeImportMs,
        bootRatioImage: Math.round(((image.bootMs as number) / nodeImportMs) * 100) / 100,
        bootRatioFull: Math.round(((full.bootMs as number) / nodeImportMs) * 100) / 100,
        coldStartMs: { ftjsImage: med(cold.ftjsImage), ftjsFull: med(cold.ftjsFull), node: med(cold.node), ...(baselineCli ? { baseline: med(cold.baseline) } : {}) },
        coldStartCpuMs: { ftjsImage: med(cpu.ftjsImage), ftjsFull: med(cpu.ftjsFull), node: med(cpu.node), ...(baselineCli ? { baseline: med(cpu.baseline) } : {}) },
        coldStartRatio: {
          image: Math.round((median(cold.ftjsImage) / median(cold.node)) * 100) / 100,
          full: Math.round((median(cold.ftjsFull) / median(cold.node)) * 100) / 100,
          ...(baselineCli ? { baseline: Math.round((median(cold.baseline) / median(cold.node)) * 100) / 100 } : {}),
        },
      };
      report[guest.name] = entry;
      process.stderr.write(`${guest.name} (${guest.bytes} B): ${JSON.stringify(entry)}\n`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

const childAt = process.argv.indexOf('--child');
if (childAt >= 0) {
  const [kind, ...args] = process.argv.slice(childAt + 1);
  if (kind === 'vm-phases') await childVmPhases(args[0]!, args[1] === 'on');
  else if (kind === 'node-import') await childNodeImport(args[0]!);
  else if (kind === 'worker-start') await childWorkerStart();
  else if (kind === 'cli-load') await childCliLoad();
  else throw new Error(`unknown child ${kind}`);
} else {
  await main();
}
