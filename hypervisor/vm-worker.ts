// The VM worker thread: owns one VM. Running the guest here keeps the node's main thread (heartbeats,
// logging channel, arbiter, front door) responsive while the guest computes, and gives QuickJS a host
// stack large enough that deep guest recursion is a guest error, not a host crash.

import { parentPort } from 'node:worker_threads';
import { LivePort } from '../recorder/live-port.js';
import { ReplayPort } from '../replayer/replay-port.js';
import { Vm } from './vm.js';
import type { RunReply, VmReply, VmRequest, VmState } from './vm-protocol.js';

if (!parentPort) throw new Error('vm-worker must run as a worker thread');
const port = parentPort;
let vm: Vm | null = null;

function state(vm: Vm, hash: boolean): VmState {
  return {
    pos: vm.pos,
    tasks: vm.taskCount,
    guestTimeMs: vm.guestTimeMs,
    memoryBytes: vm.memoryBytes,
    nextTimer: vm.nextTimer(),
    ...(hash ? { stateHash: vm.stateHash() } : {}),
  };
}

function need(): Vm {
  if (!vm) throw new Error('VM not booted');
  return vm;
}

async function handle(request: VmRequest): Promise<unknown> {
  switch (request.op) {
    case 'boot': {
      if (vm) throw new Error('VM already booted');
      const live = request.mode === 'live';
      let v: Vm;
      const inputPort = live ? new LivePort({ push: (e) => v.sink.push(e) }, { taskBudgetMs: request.config.limits.taskBudgetMs }) : new ReplayPort();
      v = await Vm.create(request.config, inputPort, request.snapshot);
      vm = v;
      if (live && !request.snapshot) {
        const result = v.bootLive();
        return { results: [result], state: state(v, false) } satisfies RunReply;
      }
      return { results: [], state: state(v, false) } satisfies RunReply;
    }
    case 'run': {
      const v = need();
      const results = request.events.map((event) => v.runLive(event));
      return { results, state: state(v, false) } satisfies RunReply;
    }
    case 'replay': {
      const v = need();
      const results = [];
      for (const task of request.tasks) {
        const result = v.replay(task);
        results.push(result);
        if (result.divergence) break;
      }
      return { results, state: state(v, false) } satisfies RunReply;
    }
    case 'go-live': {
      const v = need();
      v.setPort(new LivePort(v.sink, { taskBudgetMs: request.limits?.taskBudgetMs ?? v.config.limits.taskBudgetMs }));
      return state(v, false);
    }
    case 'state':
      return state(need(), request.hash);
    case 'snapshot':
      return need().snapshot();
    case 'pending-fetches':
      return need().pendingFetches();
  }
}

// Requests are handled strictly one at a time, in order: the VM is single-threaded by nature.
let queue: Promise<void> = Promise.resolve();
port.on('message', (message: { id: number; request: VmRequest }) => {
  queue = queue.then(async () => {
    let reply: VmReply;
    try {
      reply = { id: message.id, ok: true, value: await handle(message.request) };
    } catch (error) {
      const e = error as Error;
      reply = { id: message.id, ok: false, error: { name: e.name, message: e.message, stack: e.stack } };
      if (e.name === 'VmFatal' || !['BootError', 'GuestLoadError'].includes(e.name)) {
        // A host exception escaped the engine: the VM's state is suspect. Report and stop.
        port.postMessage(reply);
        port.postMessage({ fatal: reply.error });
        process.exit(70);
      }
    }
    port.postMessage(reply);
  });
});
