// Snapshot and restore: a VM restored from a snapshot into a fresh WebAssembly instance (a fresh
// worker) continues exactly where the original was: fed the original's following inputs, it produces
// the same outputs, byte for byte, and reaches the same state hash. Pending timers, the entropy pool,
// Math.random's state and the position counter all travel with the snapshot.

import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { makeBootConfig } from '../dist/hypervisor/vm/boot-config.js';
import { loadGuest } from '../dist/hypervisor/vm/sources.js';
import type { LiveEvent, TaskResult } from '../dist/hypervisor/vm/vm.js';
import { VmHost } from '../dist/hypervisor/worker/vm-host.js';
import type { Entry } from '../dist/logging-channel/entry.js';
import { Log } from '../dist/recorder/log.js';
import { ROOT } from './helpers.js';

const hosts: VmHost[] = [];
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.terminate()));
});

const request = (method: string, url: string, body = ''): LiveEvent => ({ kind: 'request', method, url: `http://vm${url}`, headers: [], body: new TextEncoder().encode(body) });
const bodyOf = (r: TaskResult) => r.outputs.map((o) => `${o.kind === 'response' ? o.status : o.kind === 'fetch' ? o.url : o.kind} ${Buffer.from(o.body).toString()}`);

/** Splits a run of entries into tasks (each from its start entry through its TaskEnd). */
function tasksOf(entries: Entry[]): Entry[][] {
  const tasks: Entry[][] = [];
  let current: Entry[] = [];
  for (const e of entries) {
    current.push(e);
    if (e.kind === 7) {
      tasks.push(current);
      current = [];
    }
  }
  expect(current).toEqual([]);
  return tasks;
}

test.each([
  [
    'random.js',
    [request('GET', '/roll?n=5'), request('GET', '/uuid?n=3'), request('GET', '/now')],
    [request('GET', '/bytes?n=300'), request('GET', '/roll?n=9'), request('POST', '/shuffle', '[1,2,3,4,5,6,7,8]'), request('GET', '/state')],
  ],
  ['timers.js', [request('POST', '/schedule?ms=5&tag=before'), request('POST', '/interval?ms=5&count=3')], [request('GET', '/pending'), request('GET', '/events')]],
])('%s: a restored VM continues exactly like the original', async (app, before, after) => {
  const config = makeBootConfig(loadGuest(path.join(ROOT, 'guest-apps', app)), {});
  const original = VmHost.start(config.limits);
  hosts.push(original);
  const log = new Log();
  const boot = await original.boot(config, 'live');
  log.append(boot.results[0]!.entries);
  const run = async (events: LiveEvent[]) => {
    const reply = await original.run(events);
    return reply.results.map((r) => ({ result: r, entries: log.append(r.entries) }));
  };
  await run(before);

  const snapshot = await original.snapshot();
  const stateAtSnapshot = await original.state(true);

  // After the snapshot: the requests, then every timer that comes due (fired by hand, in order).
  const followed: Array<{ result: TaskResult; entries: Entry[] }> = [];
  followed.push(...(await run(after)));
  for (let i = 0; i < 10; i++) {
    const next = (await original.state()).nextTimer;
    if (!next) break;
    followed.push(...(await run([{ kind: 'timer', timerId: next.timerId }])));
  }
  followed.push(...(await run([request('GET', '/')])));
  const finalOriginal = await original.state(true);

  const restored = VmHost.start(config.limits);
  hosts.push(restored);
  await restored.boot(config, 'replay', snapshot);
  const restoredState = await restored.state(true);
  expect(restoredState.stateHash).toBe(stateAtSnapshot.stateHash);
  expect(restoredState.pos).toBe(stateAtSnapshot.pos);

  const tasks = tasksOf(followed.flatMap((f) => f.entries));
  const reply = await restored.replay(tasks);
  expect(reply.results.map((r) => r.divergence)).toEqual(tasks.map(() => null));
  expect(reply.results.map(bodyOf)).toEqual(followed.map((f) => bodyOf(f.result)));
  const finalRestored = await restored.state(true);
  expect(finalRestored.stateHash).toBe(finalOriginal.stateHash);
  expect(finalRestored.pos).toBe(finalOriginal.pos);
  if (app === 'timers.js') expect(followed.some((f) => f.result.kind === 'Timer')).toBe(true);
});
