// The VM worker as the node drives it: a replay may stop after a time slice and continue in the next
// message (the backup's main thread gets the CPU between them to acknowledge the primary), and the
// worker thread runs at a lower priority than the node's main thread.

import { readdirSync, readFileSync } from 'node:fs';
import { getPriority } from 'node:os';
import path from 'node:path';
import { afterEach, expect, test } from 'vitest';
import { makeBootConfig } from '../dist/hypervisor/vm/boot-config.js';
import { loadGuest } from '../dist/hypervisor/vm/sources.js';
import type { LiveEvent } from '../dist/hypervisor/vm/vm.js';
import { VmHost } from '../dist/hypervisor/worker/vm-host.js';
import type { Entry } from '../dist/logging-channel/entry.js';
import { Log } from '../dist/recorder/log.js';
import { ROOT } from './helpers.js';

const hosts: VmHost[] = [];
afterEach(async () => {
  await Promise.all(hosts.splice(0).map((h) => h.terminate()));
});

const kv = () => makeBootConfig(loadGuest(path.join(ROOT, 'guest-apps', 'kv.js')), {});
const put = (key: string, value: string): LiveEvent => ({ kind: 'request', method: 'PUT', url: `http://vm/kv/${key}`, headers: [], body: new TextEncoder().encode(value) });
const get = (key: string): LiveEvent => ({ kind: 'request', method: 'GET', url: `http://vm/kv/${key}`, headers: [], body: new Uint8Array() });

test('a replay sliced into one task per message reaches the live VM state, with every task checked', async () => {
  const config = kv();
  const live = VmHost.start(config.limits);
  hosts.push(live);
  const log = new Log();
  const boot = await live.boot(config, 'live');
  const events: LiveEvent[] = [];
  for (let i = 0; i < 12; i++) events.push(put(`k${i % 5}`, `v${i}`), get(`k${(i * 3) % 5}`));
  const run = await live.run(events);
  // A replaying VM starts before its boot task: that task is replayed too.
  const results = [...boot.results, ...run.results];
  const tasks: Entry[][] = results.map((r) => log.append(r.entries));
  const liveState = await live.state(true);

  const replica = VmHost.start(config.limits);
  hosts.push(replica);
  await replica.boot(config, 'replay');
  let next = 0;
  let messages = 0;
  while (next < tasks.length) {
    // A zero slice has passed after any task: each message replays exactly one.
    const sliced = await replica.replay(tasks.slice(next), 0);
    expect(sliced.results).toHaveLength(1);
    expect(sliced.results[0]!.divergence).toBeNull();
    expect(sliced.results[0]!.outputs).toEqual(results[next]!.outputs);
    next += sliced.results.length;
    messages++;
  }
  expect(messages).toBe(tasks.length);
  const replicaState = await replica.state(true);
  expect(replicaState.pos).toBe(liveState.pos);
  expect(replicaState.stateHash).toBe(liveState.stateHash);

  // Without a slice, one message replays them all.
  const whole = VmHost.start(config.limits);
  hosts.push(whole);
  await whole.boot(config, 'replay');
  const all = await whole.replay(tasks);
  expect(all.results).toHaveLength(tasks.length);
  expect((await whole.state(true)).stateHash).toBe(liveState.stateHash);
});

/** Nice value of each thread of this process, by thread id (Linux: field 19 of /proc/self/task/<tid>/stat). */
function threadNice(): Map<string, number> {
  const nice = new Map<string, number>();
  for (const tid of readdirSync('/proc/self/task')) {
    try {
      const stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
      // The command name (field 2) may hold spaces: count from the ')' that closes it.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      nice.set(tid, Number(fields[19 - 3]));
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return nice;
}

test.runIf(process.platform === 'linux')('the VM worker thread runs 10 nice levels below the thread that started it', async () => {
  const base = getPriority(0);
  const before = threadNice();
  const config = kv();
  const vm = VmHost.start(config.limits);
  hosts.push(vm);
  await vm.boot(config, 'live');
  const added = [...threadNice()].filter(([tid]) => !before.has(tid)).map(([, nice]) => nice);
  // The worker's own thread is niced; threads it brought with it (none, or helpers) keep the base.
  expect(added).toContain(Math.min(19, base + 10));
  // The main thread (this one) keeps its priority.
  expect(threadNice().get(String(process.pid)) ?? base).toBe(base);
});
