// CPU per kv.js request of `Vm.runLive` alone, in process (no worker, no HTTP): the engine, the glue,
// the guest and the VM's own code around them. With --baseline <another checkout, built>, the same
// workload runs on that checkout's Vm too, rounds alternating in one process, so the two share the
// machine's load; medians and the ratio are printed. CPU is this thread's own (Linux schedstat: the
// GC's helper threads are left out), so a round preempted by other work on the host does not count
// the wait. Issue 19: what one crossing per event saves.
//
// --guest PATH[,PATH...] serves those guests instead of kv.js (the same mix of requests: PUT with a
// text body, GET, on /kv/<key>); bench/guests/ holds one per piece of the guest path (the glue's
// floor, new URL, a Response with headers, text(), ...). Every guest runs on both checkouts, all
// rounds alternating, so the pieces' figures share the machine's load.
// --http-headers gives each request the headers `ftjs run`'s front door passes on from node:http for
// the kv mix (host; for a PUT also content-type and content-length) instead of none (GET) or one (PUT).
//
//   npm run build && node dist/bench/vm-request.js [--requests N] [--rounds R] [--baseline DIR] [--guest PATH[,PATH...]]

import { readFileSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { argNumber, exitOnHelp, median, projectPath } from './util.js';

exitOnHelp('node dist/bench/vm-request.js [--requests N] [--rounds R] [--baseline DIR] [--guest PATH[,PATH...]] [--http-headers]');
const requests = argNumber('--requests', 5000);
const rounds = argNumber('--rounds', 7);
const baselineAt = process.argv.indexOf('--baseline');
const baseline = baselineAt >= 0 ? path.resolve(process.argv[baselineAt + 1]!) : null;
const guestAt = process.argv.indexOf('--guest');
const httpHeaders = process.argv.includes('--http-headers');
const guests = guestAt >= 0 ? process.argv[guestAt + 1]!.split(',').map((p) => path.resolve(p)) : [null];

interface Subject {
  name: string;
  serve: (i: number) => void;
}

/** A booted VM of the checkout at `root` (its dist/) running `guest` (its own kv.js when null), serving requests in process. */
async function subject(name: string, root: string, guest: string | null): Promise<Subject> {
  const load = (file: string) => import(pathToFileURL(path.join(root, 'dist', file)).href);
  const { makeBootConfig } = await load('hypervisor/vm/boot-config.js');
  const { loadGuest } = await load('hypervisor/vm/sources.js');
  const { Vm } = await load('hypervisor/vm/vm.js');
  const { LivePort } = await load('recorder/live-port.js');
  const config = makeBootConfig(loadGuest(guest ?? path.join(root, 'guest-apps/kv.js')), {});
  // Two checkouts' Vm classes, typed by neither.
  let vm: any = null;
  const port = new LivePort({ push: (e: unknown) => vm.sink.push(e) }, { taskBudgetMs: 10_000 });
  vm = await Vm.create(config, port);
  vm.bootLive();
  const encoder = new TextEncoder();
  const host = httpHeaders ? '127.0.0.1:8080' : 'bench';
  const getHeaders = httpHeaders ? [['host', host]] : [];
  const putHeaders = (i: number) =>
    httpHeaders
      ? [
          ['host', host],
          ['content-type', 'text/plain'],
          ['content-length', String(`value-${i}`.length)],
        ]
      : [['content-type', 'text/plain']];
  const serve = (i: number) => {
    const key = `k${i % 1000}`;
    const result =
      i % 2 === 0
        ? vm.runLive({ kind: 'request', method: 'PUT', url: `http://${host}/kv/${key}`, headers: putHeaders(i), body: encoder.encode(`value-${i}`) })
        : vm.runLive({ kind: 'request', method: 'GET', url: `http://${host}/kv/${key}`, headers: getHeaders, body: new Uint8Array(0) });
    const status = result.outputs[0]?.status;
    if (status !== 200 && status !== 404) throw new Error(`${name}: request ${i} answered ${status}`);
  };
  for (let i = 0; i < 2000; i++) serve(i); // warm: lazy glue, JIT
  return { name, serve };
}

function threadCpuNs(): number {
  try {
    return Number(readFileSync(`/proc/self/task/${process.pid}/schedstat`, 'utf8').split(' ')[0]);
  } catch {
    const u = process.cpuUsage();
    return (u.user + u.system) * 1000;
  }
}

const subjects: Subject[] = [];
for (const guest of guests) {
  const label = guest === null ? '' : `${path.basename(guest)} `;
  subjects.push(await subject(`${label}this`, projectPath('.'), guest));
  if (baseline) subjects.push(await subject(`${label}baseline`, baseline, guest));
}
const perRequestUs = new Map<string, number[]>(subjects.map((s) => [s.name, []]));
let next = 10_000;
// The measured window's start on the monotonic clock (V8 profiles use it): for `--cpu-prof` runs.
if (process.argv.includes('--mark')) console.error(`measuring from ${process.hrtime.bigint() / 1000n} us`);
for (let round = 0; round < rounds; round++) {
  // Alternate which goes first, so neither always runs right after the other's garbage.
  const order = round % 2 === 0 ? subjects : [...subjects].reverse();
  for (const s of order) {
    const before = threadCpuNs();
    for (let i = 0; i < requests; i++) s.serve(next + i);
    perRequestUs.get(s.name)!.push((threadCpuNs() - before) / 1000 / requests);
  }
  next += requests;
}
/** this / baseline for each guest. */
function ratios(of: Record<string, number>): number | Record<string, number> {
  const pairs = guests.map((g) => {
    const label = g === null ? '' : `${path.basename(g)} `;
    return [label.trim() || 'kv.js', Number((of[`${label}this`]! / of[`${label}baseline`]!).toFixed(3))] as const;
  });
  return pairs.length === 1 ? pairs[0]![1] : Object.fromEntries(pairs);
}
const medians = Object.fromEntries([...perRequestUs].map(([name, v]) => [name, Number(median(v).toFixed(2))]));
console.log(
  JSON.stringify(
    {
      benchmark: 'vm-request',
      headers: httpHeaders ? 'as node:http gives them (host; content-type, content-length)' : 'none (GET), content-type (PUT)',
      guest: `${guests[0] === null ? 'kv.js' : guests.map((g) => path.basename(g!)).join(', ')} (50% PUT, 50% GET, 1000 keys)`,
      requests,
      rounds,
      cpuUsPerRequest: medians,
      ...(baseline ? { ratio: ratios(medians), baseline } : {}),
      rounds_us: Object.fromEntries([...perRequestUs].map(([name, v]) => [name, v.map((x) => Number(x.toFixed(1)))])),
    },
    null,
    2,
  ),
);
