#!/usr/bin/env node
// The `ftjs` command.

import { Command } from 'commander';
import { registerReplay } from './replay.js';
import { registerInspect } from './inspect.js';
import { registerRun } from './run.js';
import { registerPair } from './pair.js';
import { registerUp } from './up.js';
import { registerDrill } from './drill.js';
import { watchParent } from './parent-watch.js';

watchParent();

const program = new Command();
program
  .name('ftjs')
  .description('Fault-tolerant runtime for JavaScript services: record/replay QuickJS VMs, primary/backup lock-step, failover.')
  .version('0.1.0')
  .showHelpAfterError();
registerRun(program);
registerReplay(program);
registerInspect(program);
registerPair(program);
registerUp(program);
registerDrill(program);

program.parseAsync(process.argv).catch((error: Error) => {
  process.stderr.write(`ftjs: ${error.name === 'Error' ? '' : `${error.name}: `}${error.message}\n`);
  process.exit(process.exitCode && process.exitCode !== 0 ? process.exitCode : 1);
});
