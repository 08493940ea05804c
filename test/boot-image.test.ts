// Boot images (hypervisor/vm/boot-image.ts): a VM booted from an image of the pre-guest boot must be bit
// for bit the VM a full boot builds. Checked by state hashes and positions after every task, between
// VMs booted with and without images, live and in replay, from memory and from disk; a trace recorded
// with images replays on a VM without them, and the reverse. Math.random still differs per boot.

import { readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect, test } from 'vitest';
import { bootConfigFromTrace, makeBootConfig, traceHeaderFor } from '../dist/hypervisor/vm/boot-config.js';
import { BOOT_FORMAT, BootImageCache, bootImageKey, guestImageKey, readVerifiedImage } from '../dist/hypervisor/vm/boot-image.js';
import { glueHash, LAZY_MODULES_MARKER } from '../dist/hypervisor/vm/glue.js';
import { loadGuest } from '../dist/hypervisor/vm/sources.js';
import { type BootConfig, type LiveEvent, type TaskResult, Vm } from '../dist/hypervisor/vm/vm.js';
import { VmHost } from '../dist/hypervisor/worker/vm-host.js';
import type { Entry } from '../dist/logging-channel/entry.js';
import { LivePort } from '../dist/recorder/live-port.js';
import { Log } from '../dist/recorder/log.js';
import { ReplayPort } from '../dist/replayer/replay-port.js';
import { ROOT, replayJson, runSteps, startRun, tempDir, waitFor } from './helpers.js';

const request = (method: string, url: string, body = ''): LiveEvent => ({ kind: 'request', method, url: `http://vm${url}`, headers: [], body: new TextEncoder().encode(body) });
const RANDOM_EVENTS = [request('GET', '/roll?n=5'), request('GET', '/uuid?n=3'), request('GET', '/now'), request('POST', '/shuffle', '[1,2,3,4,5,6,7,8]'), request('GET', '/state')];
const KV_EVENTS = [request('PUT', '/kv/a', 'one'), request('PUT', '/kv/b', 'two'), request('GET', '/kv'), request('DELETE', '/kv/a'), request('GET', '/kv/b')];

const configOf = (app: string): BootConfig => makeBootConfig(loadGuest(path.join(ROOT, 'guest-apps', app)), {});
const body = (r: TaskResult) => r.outputs.map((o) => Buffer.from(o.body).toString());

interface Step {
  pos: number;
  stateHash: string;
}

interface Recording {
  tasks: Entry[][];
  steps: Step[];
  results: TaskResult[];
  vm: Vm;
}

/** Runs the boot task and `events` live, keeping the log split into tasks and the state after each. */
async function record(config: BootConfig, events: LiveEvent[], bootImages: BootImageCache | null): Promise<Recording> {
  const log = new Log();
  // eslint-disable-next-line prefer-const
  let vm: Vm;
  const port = new LivePort({ push: (e) => vm.sink.push(e) }, { taskBudgetMs: 10_000 });
  vm = await Vm.create(config, port, undefined, { bootImages });
  const tasks: Entry[][] = [];
  const steps: Step[] = [];
  const results: TaskResult[] = [];
  for (const run of [() => vm.bootLive(), ...events.map((e) => () => vm.runLive(e))]) {
    const result = run();
    expect(result.divergence).toBeNull();
    tasks.push(log.append(result.entries));
    results.push(result);
    steps.push({ pos: vm.pos, stateHash: vm.stateHash() });
  }
  return { tasks, steps, results, vm };
}

async function replay(config: BootConfig, tasks: Entry[][], bootImages: BootImageCache | null): Promise<{ steps: Step[]; vm: Vm }> {
  const vm = await Vm.create(config, new ReplayPort(), undefined, { bootImages });
  const steps: Step[] = [];
  for (const task of tasks) {
    const result = vm.replay(task);
    expect(result.divergence).toBeNull();
    steps.push({ pos: vm.pos, stateHash: vm.stateHash() });
  }
  return { steps, vm };
}

test.each([
  ['random.js', RANDOM_EVENTS],
  ['kv.js', KV_EVENTS],
])('%s: VMs booted from an image and in full reach the same state hash and position after every task', async (app, events) => {
  const config = configOf(app);
  expect(config.bootFormat).toBe(BOOT_FORMAT);
  const images = new BootImageCache({ dir: null });

  // Recorded without images; replayed from an image (kept by the first replay's full boot) and in full.
  const plain = await record(config, events, null);
  expect(plain.vm.imageUse.source).toBe('none');
  const capturing = await replay(config, plain.tasks, images);
  const fromImage = await replay(config, plain.tasks, images);
  const full = await replay(config, plain.tasks, null);
  expect(capturing.vm.imageUse).toMatchObject({ source: 'captured', guest: 'captured' });
  // The guest's boot task itself comes from the image: its module is not even compiled.
  expect(fromImage.vm.imageUse).toMatchObject({ source: 'memory', guest: 'memory' });
  expect(capturing.steps).toEqual(plain.steps);
  expect(fromImage.steps).toEqual(plain.steps);
  expect(full.steps).toEqual(plain.steps);

  // Recorded with an image; replayed on a VM without images.
  const imaged = await record(config, events, images);
  expect(imaged.vm.imageUse.source).toBe('memory');
  const check = await replay(config, imaged.tasks, null);
  expect(check.steps).toEqual(imaged.steps);
  expect(imaged.results.map(body).length).toBe(events.length + 1);
});

test('the VM worker (the glue as CommonJS) replays an in-process recording (the glue as an ES module) to the same state after every task', async () => {
  const config = configOf('kv.js');
  const plain = await record(config, KV_EVENTS, null);
  const host = VmHost.start(config.limits);
  try {
    await host.boot(config, 'replay');
    const steps: Step[] = [];
    for (const task of plain.tasks) {
      const reply = await host.replay([task]);
      expect(reply.results[0]?.divergence ?? null).toBeNull();
      const state = await host.state(true);
      steps.push({ pos: state.pos, stateHash: state.stateHash! });
    }
    expect(steps).toEqual(plain.steps);
  } finally {
    await host.terminate();
  }
});

test('a guest naming streams or a body gets them loaded by its boot task, into its image; one naming neither keeps them lazy', async () => {
  const dir = tempDir('ftjs-guest-');
  // The preload reads the ReadableStream global (which then becomes a data property), as a first use would.
  // (Spelled in two halves: a guest that names it gets the preload.)
  const probe = "const d = () => 'value' in Object.getOwnPropertyDescriptor(globalThis, 'Readable' + 'Stream');";
  writeFileSync(path.join(dir, 'named.js'), `${probe}\nconst atTop = d();\nexport default { fetch(r) { void r.body; return new Response(String([atTop, d()])); } };\n`);
  writeFileSync(path.join(dir, 'plain.js'), `${probe}\nconst atTop = d();\nexport default { fetch() { return new Response(String([atTop, d()])); } };\n`);
  for (const [file, preload, answer] of [
    ['named.js', ['streams'], 'true,true'],
    ['plain.js', undefined, 'false,false'],
  ] as const) {
    const config = makeBootConfig(loadGuest(path.join(dir, file)), {});
    expect(config.preload).toEqual(preload);
    const images = new BootImageCache({ dir: null });
    const captured = await record(config, [request('GET', '/')], images);
    expect(body(captured.results[1]!)).toEqual([answer]);
    const fromImage = await replay(config, captured.tasks, images);
    expect(fromImage.vm.imageUse).toMatchObject({ source: 'memory', guest: 'memory' });
    expect(fromImage.steps).toEqual(captured.steps);
    expect((await replay(config, captured.tasks, null)).steps).toEqual(captured.steps);
  }
  // The list travels in the boot config (trace header, welcome, checkpoint); an unknown name is refused.
  const named = makeBootConfig(loadGuest(path.join(dir, 'named.js')), {});
  expect(bootConfigFromTrace(traceHeaderFor(named), 'test').preload).toEqual(['streams']);
  const header = traceHeaderFor(named);
  header.boot.preload = ['intl'];
  expect(() => bootConfigFromTrace(header, 'test.trace')).toThrow(/test.trace: the boot config's preload \["intl"\] names a module this ftjs cannot load at boot/);
});

test('an image does not fix Math.random or the entropy: each boot from it draws its own seed', async () => {
  const config = configOf('random.js');
  const images = new BootImageCache({ dir: null });
  await record(config, [], images); // keeps the image
  const rolls = async () => {
    const r = await record(config, [request('GET', '/roll?n=8'), request('GET', '/uuid?n=2')], images);
    expect(r.vm.imageUse.source).toBe('memory');
    return r.results.slice(1).map(body);
  };
  const [a, b] = [await rolls(), await rolls()];
  expect(a[0]).not.toEqual(b[0]);
  expect(a[1]).not.toEqual(b[1]);
});

test('a guest that calls Math.random at its top level is not kept as an image: every boot gets its own numbers', async () => {
  const dir = tempDir('ftjs-guest-');
  writeFileSync(path.join(dir, 'id.js'), 'const id = Math.random();\nexport default { fetch() { return new Response(String(id)); } };\n');
  const config = makeBootConfig(loadGuest(path.join(dir, 'id.js')), {});
  const images = new BootImageCache({ dir: null });
  const ids = [];
  for (let i = 0; i < 2; i++) {
    const r = await record(config, [request('GET', '/')], images);
    expect(r.vm.imageUse.guest).toBe('none');
    expect(r.vm.imageUse.guestReason).toMatch(/Math.random/);
    ids.push(body(r.results[1]!)[0]);
    const check = await replay(config, r.tasks, null);
    expect(check.steps).toEqual(r.steps);
  }
  expect(ids[0]).not.toBe(ids[1]);
});

test('a guest that uses streams at its top level is kept as an image (a lazy module is no input, the boot task preloads them), the same state as a full boot', async () => {
  const dir = tempDir('ftjs-guest-');
  writeFileSync(
    path.join(dir, 'upper.js'),
    `class Upper extends TransformStream { constructor() { super({ transform(chunk, c) { c.enqueue(chunk.toUpperCase()); } }); } }
const decoder = new TextDecoderStream();
export default { async fetch() {
  const piped = new Response('abc').body.pipeThrough(new TextDecoderStream()).pipeThrough(new Upper()).pipeThrough(new TextEncoderStream());
  return new Response((await new Response(piped).text()) + ' ' + typeof decoder.readable + ' ' + typeof CompressionStream);
} };\n`,
  );
  const config = makeBootConfig(loadGuest(path.join(dir, 'upper.js')), {});
  expect(config.preload).toEqual(['streams']);
  const events = [request('GET', '/'), request('GET', '/')];
  const images = new BootImageCache({ dir: null });
  const capturing = await record(config, events, images);
  expect(capturing.vm.imageUse).toMatchObject({ source: 'captured', guest: 'captured' });
  expect(body(capturing.results[1]!)).toEqual(['ABC object function']);
  // Its recording replayed from the image and in full: the same state and position after every task.
  const fromImage = await replay(config, capturing.tasks, images);
  expect(fromImage.vm.imageUse).toMatchObject({ source: 'memory', guest: 'memory' });
  expect(fromImage.steps).toEqual(capturing.steps);
  expect((await replay(config, capturing.tasks, null)).steps).toEqual(capturing.steps);
  // Recorded from the image, replayed in full.
  const imaged = await record(config, events, images);
  expect(imaged.vm.imageUse).toMatchObject({ source: 'memory', guest: 'memory' });
  expect(imaged.results.slice(1).map(body)).toEqual(capturing.results.slice(1).map(body));
  expect((await replay(config, imaged.tasks, null)).steps).toEqual(imaged.steps);
});

test('an image file is reused by another cache on the same directory, verified, and a corrupt one is dropped', async () => {
  const dir = tempDir('ftjs-images-');
  const config = configOf('kv.js');
  const writer = new BootImageCache({ dir });
  const first = await record(config, KV_EVENTS, writer);
  expect(first.vm.imageUse).toMatchObject({ source: 'captured', guest: 'captured' });
  await writer.flush();
  expect(writer.problems).toEqual([]);
  // One image of the pre-guest boot (any guest), one of the guest's boot task.
  const files = readdirSync(dir).filter((f) => f.endsWith('.img'));
  expect(files.length).toBe(2);

  // A fresh cache (as in a new process) boots from the file and replays the recording exactly.
  const reader = new BootImageCache({ dir });
  const fromDisk = await replay(config, first.tasks, reader);
  expect(fromDisk.vm.imageUse).toMatchObject({ source: 'disk', guest: 'disk' });
  expect(fromDisk.steps).toEqual(first.steps);

  // One flipped byte in the page data of each: the files fail their checksums, are removed, and the boot is a full one.
  for (const name of files) {
    const file = path.join(dir, name);
    const bytes = readFileSync(file);
    bytes[bytes.length - 100] ^= 0xff;
    writeFileSync(file, bytes);
  }
  const third = new BootImageCache({ dir });
  const rebooted = await replay(config, first.tasks, third);
  expect(rebooted.vm.imageUse).toMatchObject({ source: 'captured', guest: 'captured' });
  expect(rebooted.vm.imageUse.problems?.join('\n')).toMatch(/checksum mismatch/);
  expect(rebooted.steps).toEqual(first.steps);
  await third.flush();
});

test('an image another thread read and verified is what the next boot takes (not the file); a corrupt file is never handed over', async () => {
  const dir = tempDir('ftjs-images-');
  const config = configOf('kv.js');
  const writer = new BootImageCache({ dir });
  const first = await record(config, KV_EVENTS, writer);
  await writer.flush();

  // As the main thread does for its VM worker (VmHost.boot): read and verify the guest's image.
  const key = guestImageKey(config);
  const read = readVerifiedImage(key, dir);
  expect(read?.key).toBe(key);
  // Its file gone (evicted meanwhile), only the adopted image can give a boot from the guest's image.
  rmSync(path.join(dir, `${key}.img`));
  const reader = new BootImageCache({ dir });
  reader.adoptRead(read!);
  const adopted = await replay(config, first.tasks, reader);
  expect(adopted.vm.imageUse).toMatchObject({ source: 'disk', guest: 'disk' });
  expect(adopted.steps).toEqual(first.steps);

  // A flipped byte in the pre-guest image: not handed over; the reading cache finds it bad itself.
  const preGuest = path.join(dir, `${bootImageKey(config)}.img`);
  const bytes = readFileSync(preGuest);
  bytes[bytes.length - 100] ^= 0xff;
  writeFileSync(preGuest, bytes);
  expect(readVerifiedImage(bootImageKey(config), dir)).toBeNull();
  expect(readVerifiedImage(key, dir)).toBeNull(); // and no file, no image
});

test('a snapshot restored through an image layout (no glue evaluation) continues like the original', async () => {
  const config = configOf('random.js');
  const images = new BootImageCache({ dir: null });
  const original = await record(config, RANDOM_EVENTS, images);
  const snapshot = original.vm.snapshot();
  const after = [request('GET', '/roll?n=3'), request('GET', '/bytes?n=40'), request('GET', '/state')];
  const log = new Log();
  log.append(original.tasks.flat().map(({ kind, pos, payload }) => ({ kind, pos, payload })));
  const tail: Entry[][] = [];
  for (const event of after) tail.push(log.append(original.vm.runLive(event).entries));
  const finalHash = original.vm.stateHash();

  for (const bootImages of [images, null]) {
    const restored = await Vm.create(config, new ReplayPort(), snapshot, { bootImages });
    expect(restored.stateHash()).toBe(original.steps.at(-1)!.stateHash);
    for (const task of tail) expect(restored.replay(task).divergence).toBeNull();
    expect(restored.stateHash()).toBe(finalHash);
  }
});

test('a glue that reads the clock while booting is booted in full and no image is kept', async () => {
  const base = configOf('kv.js');
  // The clock read goes at the end of the boot script, before the lazy modules that follow the marker.
  const web = base.glue.web.replace(LAZY_MODULES_MARKER, `\nglobalThis.__bootTime = Date.now(); delete globalThis.__bootTime;\n${LAZY_MODULES_MARKER}`);
  expect(web).not.toBe(base.glue.web);
  const config: BootConfig = { ...base, glue: { ...base.glue, web, sha256: glueHash(web, base.glue.runtime, base.glue.lazy) } };
  const images = new BootImageCache({ dir: null });
  const first = await record(config, KV_EVENTS, images);
  expect(first.vm.imageUse.source).toBe('none');
  expect(first.vm.imageUse.reason).toMatch(/read the clock/);
  expect(first.vm.imageUse.guest).toBeUndefined();
  const again = await replay(config, first.tasks, images);
  expect(again.vm.imageUse.source).toBe('none');
  expect(again.steps).toEqual(first.steps);
});

test('a guest whose top level reads the clock boots from the glue image only, and replays exactly', async () => {
  const dir = tempDir('ftjs-guest-');
  writeFileSync(path.join(dir, 'clock.js'), 'const bootedAt = Date.now();\nexport default { fetch() { return new Response(String(Date.now() - bootedAt)); } };\n');
  const config = makeBootConfig(loadGuest(path.join(dir, 'clock.js')), {});
  const images = new BootImageCache({ dir: null });
  const first = await record(config, [request('GET', '/')], images);
  expect(first.vm.imageUse).toMatchObject({ source: 'captured', guest: 'none' });
  expect(first.vm.imageUse.guestReason).toMatch(/read the clock/);
  const again = await replay(config, first.tasks, images);
  expect(again.vm.imageUse).toMatchObject({ source: 'memory', guest: 'none' });
  expect(again.steps).toEqual(first.steps);
  const full = await replay(config, first.tasks, null);
  expect(full.steps).toEqual(first.steps);
});

test('a boot config without a boot format (older traces) boots the original sequence and replays', async () => {
  const { bootFormat: _format, ...legacy } = configOf('random.js');
  const images = new BootImageCache({ dir: null });
  const recorded = await record(legacy, RANDOM_EVENTS, images);
  expect(recorded.vm.imageUse.source).toBe('none');
  const replayed = await replay(legacy, recorded.tasks, images);
  expect(replayed.steps).toEqual(recorded.steps);
  // The original sequence reads the clock inside JS_NewContext, before the position is calibrated.
  expect(recorded.tasks[0]![1]).toMatchObject({ kind: 4, pos: 0 });
});

test('ftjs run booted from disk images records a trace that a process without images replays bit for bit', async () => {
  const cache = tempDir('ftjs-cache-');
  const trace = path.join(tempDir(), 'kv.trace');
  const withImages = { FTJS_BOOT_CACHE_DIR: cache };
  // The first run keeps the images; the second boots from them and records.
  const warm = await startRun('guest-apps/kv.js', { processEnv: withImages });
  expect((await warm.waitForLog((l) => l.msg === 'guest booted', 'boot')).bootImage).toMatchObject({ source: 'captured', guest: 'captured' });
  // The worker writes its images in the background; a node stopped sooner leaves none (or a temp file).
  await waitFor(() => readdirSync(cache).filter((f) => f.endsWith('.img')).length === 2, 'both images on disk');
  await warm.stop();
  const node = await startRun('guest-apps/kv.js', { record: trace, processEnv: withImages });
  try {
    expect((await node.waitForLog((l) => l.msg === 'guest booted', 'boot')).bootImage).toMatchObject({ source: 'disk', guest: 'disk' });
    await runSteps(node.url, [
      { method: 'PUT', path: '/kv/a', body: '1' },
      { method: 'GET', path: '/kv/a' },
      { method: 'GET', path: '/kv' },
    ]);
  } finally {
    await node.stop();
  }
  const replayed = await replayJson(trace, { FTJS_BOOT_CACHE_DIR: 'off' });
  expect(replayed.code).toBe(0);
  expect(replayed.summary.divergence).toBeNull();
  expect(replayed.summary.stateHashesVerified).toBe(1);
});

test('a Hono bundle boots from its images and serves what a full boot serves', async () => {
  const { build } = await import('esbuild');
  const dir = tempDir('ftjs-hono-');
  const source =
    "import { Hono } from 'hono';\nimport { cors } from 'hono/cors';\nconst app = new Hono();\napp.use('*', cors());\napp.get('/', (c) => c.json({ hello: 'world' }));\napp.get('/p/:x', (c) => c.text('p=' + c.req.param('x')));\nexport default app;\n";
  await build({
    stdin: { contents: source, resolveDir: ROOT, loader: 'js' },
    bundle: true,
    format: 'esm',
    platform: 'neutral',
    conditions: ['workerd', 'worker', 'browser'],
    mainFields: ['module', 'main'],
    minifyWhitespace: true,
    outfile: path.join(dir, 'app.js'),
    logLevel: 'error',
  });
  const config = makeBootConfig(loadGuest(path.join(dir, 'app.js')), {});
  const events = [request('GET', '/'), request('GET', '/p/42'), request('OPTIONS', '/p/1')];
  const images = new BootImageCache({ dir: null });
  const full = await record(config, events, null);
  await replay(config, full.tasks, images); // keeps the images
  const fromImages = await record(config, events, images);
  expect(fromImages.vm.imageUse).toMatchObject({ source: 'memory', guest: 'memory' });
  expect(fromImages.results.map(body)).toEqual(full.results.map(body));
  expect(body(fromImages.results[1]!)).toEqual(['{"hello":"world"}']);
  const check = await replay(config, fromImages.tasks, null);
  expect(check.steps).toEqual(fromImages.steps);
});
