// The first request after a boot from images, in process (issue 19, cold start): what a cold start's
// first request costs the VM thread, against the same request served again (warm). Each sample is a
// fresh process (one V8 platform thread, as the bin starts Node) that boots the guest from the images
// in this run's cache directory (kept by one uncounted process per build), then serves GET / twice.
// Per request: this thread's CPU (schedstat), the process's CPU (every thread: V8's background compiles
// of the wasm the request made hot), and wall ms. With --baseline, another built checkout's VM runs the
// same samples, alternating, so load on the machine falls on both alike.
//
//   node dist/bench/first-request.js [--runs 7] [--guests kv.js,hono-60k] [--baseline <other built checkout>]

import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { buildGuests } from './boot-guests.js';
import { argNumber, median, projectPath } from './util.js';

interface Sample {
  image: string;
  bootCpuMs: number;
  /** [thread CPU ms, process CPU ms, wall ms] of the first and the second request. */
  first: [number, number, number];
  second: [number, number, number];
}

/** In a fresh process: boots `guest` from the images of `root`'s build and serves GET / twice. */
async function child(root: string, guest: string): Promise<void> {
  const threadCpu = () => Number(readFileSync('/proc/thread-self/schedstat', 'utf8').split(' ')[0]) / 1e6;
  const processCpu = () => {
    const u = process.cpuUsage();
    return (u.user + u.system) / 1000;
  };
  const load = (file: string) => import(pathToFileURL(path.join(root, 'dist', file)).href);
  const [{ Vm }, { LivePort }, { makeBootConfig }, { loadGuest }, { defaultBootImageCache }] = await Promise.all([
    load('hypervisor/vm/vm.js'),
    load('recorder/live-port.js'),
    load('hypervisor/vm/boot-config.js'),
    load('hypervisor/vm/sources.js'),
    load('hypervisor/vm/boot-image.js'),
  ]);
  const config = makeBootConfig(loadGuest(guest), {});
  const bootStarted = threadCpu();
  let vm: { sink: { push(e: unknown): void }; bootLive(): unknown; runLive(e: unknown): { outputs: Array<{ status?: number }> }; imageUse: { source: string; guest?: string } };
  const port = new LivePort({ push: (e: unknown) => vm.sink.push(e) }, { taskBudgetMs: 60_000 });
  vm = await Vm.create(config, port, undefined, { bootImages: defaultBootImageCache() });
  vm.bootLive();
  const bootCpuMs = threadCpu() - bootStarted;
  const serve = (): [number, number, number] => {
    const [t, p, w] = [threadCpu(), processCpu(), performance.now()];
    const result = vm.runLive({ kind: 'request', method: 'GET', url: 'http://vm/', headers: [['accept', '*/*']], body: new Uint8Array() });
    const measured: [number, number, number] = [threadCpu() - t, processCpu() - p, performance.now() - w];
    if (result.outputs[0]?.status !== 200) throw new Error(`GET / gave ${JSON.stringify(result.outputs[0])}`);
    return measured;
  };
  const first = serve();
  const second = serve();
  await defaultBootImageCache().flush();
  const image = `${vm.imageUse.source}/${vm.imageUse.guest ?? 'none'}`;
  process.stdout.write(`${JSON.stringify({ image, bootCpuMs, first, second } satisfies Sample)}\n`);
}

function sample(root: string, guest: string, env: NodeJS.ProcessEnv): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--v8-pool-size=1', fileURLToPath(import.meta.url), '--child', root, guest], { env, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    proc.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    proc.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()!) as Sample) : reject(new Error(`child for ${root} exited with ${code}`))));
  });
}

const round1 = (x: number) => Math.round(x * 10) / 10;

async function main(): Promise<void> {
  const runs = argNumber('--runs', 7);
  const guestsAt = process.argv.indexOf('--guests');
  const wanted = guestsAt >= 0 ? process.argv[guestsAt + 1]!.split(',') : ['kv.js', 'hono-60k'];
  const baselineAt = process.argv.indexOf('--baseline');
  const roots: Array<[string, string]> = [['this', projectPath('.')], ...(baselineAt >= 0 ? [['baseline', path.resolve(process.argv[baselineAt + 1]!)] as [string, string]] : [])];
  const dir = mkdtempSync(path.join(tmpdir(), 'ftjs-bench-first-'));
  const env = { ...process.env, FTJS_BOOT_CACHE_DIR: path.join(dir, 'cache') };
  const report: Record<string, unknown> = { runs, load: readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ') };
  try {
    for (const guest of (await buildGuests(dir)).filter((g) => wanted.includes(g.name))) {
      for (const [, root] of roots) await sample(root, guest.file, env); // keeps the images
      const samples = new Map<string, Sample[]>(roots.map(([name]) => [name, []]));
      for (let i = 0; i < runs; i++) for (const [name, root] of roots) samples.get(name)!.push(await sample(root, guest.file, env));
      const entry: Record<string, unknown> = {};
      process.stderr.write(`\n${guest.name}, ${runs} alternating processes, medians (thread CPU / process CPU / wall ms):\n`);
      for (const [name] of roots) {
        const of = samples.get(name)!;
        const med = (pick: (s: Sample) => number) => round1(median(of.map(pick)));
        const first = [0, 1, 2].map((i) => med((s) => s.first[i]!));
        const second = [0, 1, 2].map((i) => med((s) => s.second[i]!));
        const images = [...new Set(of.map((s) => s.image))].join(',');
        entry[name] = { images, bootCpuMs: med((s) => s.bootCpuMs), first, second };
        process.stderr.write(`  ${name.padEnd(9)} boot (${images}) ${med((s) => s.bootCpuMs)} ms CPU   first request ${first.join(' / ')}   second ${second.join(' / ')}\n`);
      }
      report[guest.name] = entry;
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  report.loadAfter = readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
  process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
}

if (process.argv[2] === '--child') await child(process.argv[3]!, process.argv[4]!);
else await main();
