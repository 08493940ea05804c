// `npm run bench`: every benchmark, one after the other, each printing its figures (JSON) to stdout.
// Figures and the exact commands are recorded in BENCHMARKS.md.

import { spawnSync } from 'node:child_process';
import { projectPath } from './util.js';

const benches: Array<[string, string[]]> = [
  ['record-overhead', ['--requests', '20000', '--rounds', '5']],
  ['ffi-calls', []],
  ['pair-vs-run', ['--seconds', '5', '--rounds', '3']],
  ['checkpoint', ['--keys', '20000', '--rounds', '10']],
  ['snapshot-delta', ['--keys', '20480', '--rounds', '3']],
  ['join', ['--mib', '20', '--joins', '3']],
  ['replay-speed', []],
  ['boot', ['--runs', '7']],
];
let failed = 0;
for (const [name, args] of benches) {
  process.stderr.write(`\n== ${name} ${args.join(' ')}\n`);
  const result = spawnSync(process.execPath, [projectPath(`dist/bench/${name}.js`), ...args], { stdio: 'inherit' });
  if (result.status !== 0) failed++;
}
process.stderr.write('\nfailover drills: node dist/cli/ftjs.js drill --rounds 20 --fault <kind> (see BENCHMARKS.md)\n');
process.exitCode = failed ? 1 : 0;
