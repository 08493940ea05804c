// The per-event engine calls on quickjs-emscripten's low-level FFI (hypervisor/vm/engine-calls.ts) must
// leave the VM exactly as the handle API did: same memory, so the same state hash, after every task.
// A workload is recorded on one kind of VM and replayed on the other, both ways, over guests that
// exercise every kind of crossing: requests with and without bodies, responses (whole and streamed),
// console, timers, entropy, outbound fetches and their results, crypto, a host call that throws, a
// promise job that throws. Traces recorded before the change replay bit for bit because of this.

import path from 'node:path';
import { expect, test } from 'vitest';
import { makeBootConfig } from '../dist/hypervisor/vm/boot-config.js';
import { loadGuest } from '../dist/hypervisor/vm/sources.js';
import { type BootConfig, type LiveEvent, Vm } from '../dist/hypervisor/vm/vm.js';
import type { Entry } from '../dist/logging-channel/entry.js';
import { LivePort } from '../dist/recorder/live-port.js';
import { Log } from '../dist/recorder/log.js';
import { ReplayPort } from '../dist/replayer/replay-port.js';
import { ROOT } from './helpers.js';

const encoder = new TextEncoder();
const request = (method: string, url: string, body = '', headers: Array<[string, string]> = []): LiveEvent => ({
  kind: 'request',
  method,
  url: `http://vm${url}`,
  headers,
  body: encoder.encode(body),
});

interface Step {
  pos: number;
  stateHash: string;
  outputs: string;
}

/** Runs `events` live, then every timer due and every outbound fetch (answered here), keeping each task. */
async function record(config: BootConfig, events: LiveEvent[], handleApi: boolean): Promise<{ tasks: Entry[][]; steps: Step[] }> {
  const log = new Log();
  let vm: Vm | null = null;
  const port = new LivePort({ push: (e) => vm!.sink.push(e) }, { taskBudgetMs: 10_000 });
  vm = await Vm.create(config, port, undefined, { handleApi, bootImages: null });
  const tasks: Entry[][] = [];
  const steps: Step[] = [];
  const queue: LiveEvent[] = [...events];
  const run = (result: ReturnType<Vm['bootLive']>) => {
    expect(result.divergence).toBeNull();
    tasks.push(log.append(result.entries));
    steps.push({
      pos: vm!.pos,
      stateHash: vm!.stateHash(),
      outputs: JSON.stringify(result.outputs.map((o) => ({ ...o, body: Buffer.from(o.body).toString('hex') }))) + JSON.stringify(result.console),
    });
    for (const o of result.outputs) {
      if (o.kind === 'fetch') {
        const failed = o.url.includes('fail');
        queue.push({
          kind: 'fetch-result',
          result: {
            fetchId: o.fetchId,
            error: failed ? 'connection refused' : null,
            status: failed ? 0 : 200,
            statusText: failed ? '' : 'OK',
            headers: failed ? [] : [['content-type', 'application/json']],
            body: failed ? new Uint8Array(0) : encoder.encode('{"ok":true}'),
          },
        });
      }
    }
  };
  run(vm.bootLive());
  for (let guard = 0; guard < 500; guard++) {
    const event = queue.shift();
    if (event) {
      run(vm.runLive(event));
      continue;
    }
    const timer = vm.nextTimer();
    if (!timer) break;
    run(vm.runLive({ kind: 'timer', timerId: timer.timerId }));
  }
  return { tasks, steps };
}

async function replay(config: BootConfig, tasks: Entry[][], handleApi: boolean): Promise<Step[]> {
  const vm = await Vm.create(config, new ReplayPort(), undefined, { handleApi, bootImages: null });
  const steps: Step[] = [];
  for (const task of tasks) {
    const result = vm.replay(task);
    expect(result.divergence).toBeNull();
    steps.push({ pos: vm.pos, stateHash: vm.stateHash(), outputs: JSON.stringify(result.outputs.map((o) => ({ ...o, body: Buffer.from(o.body).toString('hex') }))) + JSON.stringify(result.console) });
  }
  return steps;
}

const WORKLOADS: Array<[string, string, LiveEvent[]]> = [
  [
    'kv',
    'guest-apps/kv.js',
    [
      request('PUT', '/kv/a', 'one', [['content-type', 'text/plain']]),
      request('PUT', '/kv/ü', 'zwei ☃', [['idempotency-key', 'k1']]),
      request('PUT', '/kv/ü', 'zwei ☃', [['idempotency-key', 'k1']]),
      request('GET', '/kv'),
      request('DELETE', '/kv/a'),
      request('GET', '/kv/a'),
    ],
  ],
  [
    'random',
    'guest-apps/random.js',
    [request('GET', '/roll?n=5'), request('GET', '/uuid?n=3'), request('GET', '/bytes?n=300'), request('POST', '/shuffle', '[1,2,3,4,5,6,7,8]'), request('GET', '/now')],
  ],
  ['timers', 'guest-apps/timers.js', [request('POST', '/schedule?ms=50&tag=a'), request('POST', '/interval?ms=20&count=3'), request('GET', '/delay?ms=10'), request('GET', '/events')]],
  ['outbound', 'guest-apps/outbound.js', [request('GET', '/fetch?url=http://upstream.test/x'), request('GET', '/fetch?url=http://fail.test/y'), request('GET', '/fetch?url=not-a-url')]],
  ['streaming', 'test/guests/streaming.js', [request('GET', '/stream?n=3&gap=5'), request('GET', '/fail'), request('POST', '/echo', 'abc'.repeat(100))]],
  ['console and crypto', 'test/guests/console.js', [request('GET', '/groups'), request('GET', '/timers')]],
  ['crypto', 'test/guests/crypto-lab.js', [request('GET', '/globals'), request('GET', '/digest?data=abc')]],
];

test.each(WORKLOADS)('%s: direct engine calls and the handle API leave the same memory after every task, both ways', async (_name, app, events) => {
  const config = makeBootConfig(loadGuest(path.join(ROOT, app)), {});
  for (const recordWithHandleApi of [true, false]) {
    const recorded = await record(config, events, recordWithHandleApi);
    expect(recorded.tasks.length).toBeGreaterThan(events.length);
    const replayed = await replay(config, recorded.tasks, !recordWithHandleApi);
    expect(replayed).toEqual(recorded.steps);
  }
});

test('a boot config of boot format 1 (traces from before boot formats) too', async () => {
  const { bootFormat: _, ...config } = makeBootConfig(loadGuest(path.join(ROOT, 'guest-apps/random.js')), {});
  const events = [request('GET', '/roll?n=5'), request('PUT', '/kv/x', 'y'), request('GET', '/uuid?n=2')];
  for (const recordWithHandleApi of [true, false]) {
    const recorded = await record(config, events, recordWithHandleApi);
    const replayed = await replay(config, recorded.tasks, !recordWithHandleApi);
    expect(replayed).toEqual(recorded.steps);
  }
});

test('a host call that throws into the guest, and a guest that patched the builtins, end alike on both', async () => {
  // With one timer allowed, the second setTimeout makes the host throw (too many timers) into the guest.
  const timers = makeBootConfig(loadGuest(path.join(ROOT, 'guest-apps/timers.js')), {}, { maxTimers: 1 });
  const hostile = makeBootConfig(loadGuest(path.join(ROOT, 'test/guests/hostile-patches.js')), {});
  for (const [config, events] of [
    [timers, [request('POST', '/schedule?ms=50&tag=a'), request('POST', '/schedule?ms=60&tag=b'), request('GET', '/pending')]],
    [hostile, [request('GET', '/'), request('GET', '/patched'), request('POST', '/x', 'body')]],
  ] as const) {
    const recorded = await record(config, [...events], true);
    if (config === timers) expect(recorded.steps.some((s) => s.outputs.includes('too many timers'))).toBe(true);
    const replayed = await replay(config, recorded.tasks, false);
    expect(replayed).toEqual(recorded.steps);
  }
});
