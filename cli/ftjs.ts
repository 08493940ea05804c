#!/usr/bin/env node
// The `ftjs` command.

import type { Command } from 'commander';
import { startupMark } from '../hypervisor/vm/startup-marks.js';
import { prestartForArgv } from '../hypervisor/worker/worker-spawn.js';
import { watchParent } from './parent-watch.js';

startupMark('cli entered');

// A node started by `ftjs up` or a drill stops when its parent dies (no orphans).
watchParent();

type Register = (program: Command) => void;

// Each command's modules load only when that command runs: loading all of them (pino, ws, the node
// roles, the replayer) cost more than a third of `ftjs run`'s cold start. Help and unknown commands
// load every command, in this order.
const COMMANDS: Array<[names: string[], load: () => Promise<Register>]> = [
  [['run'], async () => (await import('./run.js')).registerRun],
  [['replay'], async () => (await import('./replay.js')).registerReplay],
  [['inspect'], async () => (await import('./inspect.js')).registerInspect],
  [['primary', 'backup'], async () => (await import('./pair.js')).registerPair],
  // `up` forwards its flags to the nodes by reading the primary and backup commands' options.
  [
    ['up'],
    async () => {
      const [{ registerPair }, { registerUp }] = await Promise.all([import('./pair.js'), import('./up.js')]);
      return (program: Command) => {
        // Help loads every command: the primary and backup commands are then registered already.
        if (!program.commands.some((c) => c.name() === 'primary')) registerPair(program);
        registerUp(program);
      };
    },
  ],
  [['drill'], async () => (await import('./drill.js')).registerDrill],
];

const named = process.argv.slice(2).find((arg) => !arg.startsWith('-'));
// A command that runs a VM starts its worker first, so that the worker's start overlaps loading the
// command's modules. Built, the command's loader has done it already, before loading this script.
prestartForArgv();
const chosen = COMMANDS.filter(([names]) => named !== undefined && names.includes(named));
// No top-level await: the built command is one CommonJS script (cli/cli-bundle-build.ts).
void Promise.all([import('commander'), ...(chosen.length === 1 ? chosen : COMMANDS).map(([, load]) => load())])
  .then(([{ Command: CommandClass }, ...registers]) => {
    startupMark('command modules loaded');
    const program = new CommandClass();
    program.name('ftjs').description('Fault-tolerant runtime for JavaScript services: record/replay QuickJS VMs, primary/backup lock-step, failover.').version('0.1.0').showHelpAfterError();
    for (const register of registers) register(program);
    return program.parseAsync(process.argv);
  })
  .catch((error: Error) => {
    process.stderr.write(`ftjs: ${error.name === 'Error' ? '' : `${error.name}: `}${error.message}\n`);
    process.exit(process.exitCode && process.exitCode !== 0 ? process.exitCode : 1);
  });
