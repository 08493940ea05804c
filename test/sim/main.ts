// `npm run sim -- --seeds N | --seed S [--first-seed F] [--jobs J] [--plant NAME]
// [--scenario two-primaries|slow-join] [--lenient-accuracy] [--deflate-joins] [--verbose]`: runs seeded simulations of
// the whole pair (test/sim/sim.ts) and prints one line per failing seed with the command that replays
// it. --jobs J splits the seeds over J processes (seed first+k, first+k+J, ... in process k) and sums
// their results; SIGINT or SIGTERM stops the run and reports the seeds that completed.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { reproduce } from './repro.js';
import { PLANTS, type Plant, SCENARIOS, type Scenario, Sim, type SimResult } from './sim.js';

const USAGE = `usage: npm run sim -- --seeds N | --seed S [options]

Runs seeded simulations of the whole pair (primary, backup, a joining backup, clients, the front door
and the arbiter) on virtual time, with the production nodes and real QuickJS VMs, injecting crashes,
pauses, clock jumps, message loss/delay/reordering/duplication, partitions and disk faults. Every step
checks the Output Rule, one speaker per epoch, lineage, the client histories, exactly-once and
liveness. Each failing seed prints the one command that replays it. Exit 0: all clean; 1: a seed failed.

  --seeds N            run N seeds (from --first-seed, default 1)
  --seed S             run seed S alone (repeatable), printing its summary
  --first-seed F       first seed of --seeds
  --jobs J             split the seeds over J processes
  --plant NAME         plant a bug to check the simulator catches it: ${PLANTS.join(', ')}
  --scenario NAME      a fixed scenario instead of random faults: ${SCENARIOS.join(', ')}
  --lenient-accuracy   count a takeover on the backup's own stall instead of failing the seed
  --deflate-joins      deflate joins' snapshots as production does (the default leaves zero pages
                       out: cheaper, and another schedule; seeds named before it need this)
  --verbose            one line per seed, and each seed's accuracy findings
  --help               this text`;

interface Args {
  seeds: number[];
  jobs: number;
  /** A child of --jobs: a JSON line per 100 seeds and one at the end, for the parent. */
  child: boolean;
  argv: string[];
  plant?: Plant;
  scenario?: Scenario;
  verbose: boolean;
  strictAccuracy: boolean;
  deflateJoins: boolean;
}

function parse(argv: string[]): Args {
  let seeds: number[] = [];
  let plant: Plant | undefined;
  let verbose = false;
  let strictAccuracy = true;
  let deflateJoins = false;
  let scenario: Scenario | undefined;
  let first = 1;
  let count = 0;
  let stride = 1;
  let jobs = 1;
  let child = false;
  const passOn: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--help' || a === '-h') {
      console.log(USAGE);
      process.exit(0);
    }
    if (a === '--seed') seeds.push(Number(value()));
    else if (a === '--seeds') count = Number(value());
    else if (a === '--first-seed') first = Number(value());
    else if (a === '--stride') stride = Number(value());
    else if (a === '--jobs') jobs = Number(value());
    else if (a === '--child') child = true;
    else if (a === '--plant') {
      const p = value();
      if (!PLANTS.includes(p as Plant)) throw new Error(`--plant must be one of ${PLANTS.join(', ')}, got ${p}`);
      plant = p as Plant;
      passOn.push(a, p);
    } else if (a === '--verbose') verbose = true;
    else if (a === '--strict-accuracy') strictAccuracy = true;
    else if (a === '--deflate-joins') {
      deflateJoins = true;
      passOn.push(a);
    } else if (a === '--lenient-accuracy') {
      strictAccuracy = false;
      passOn.push(a);
    } else if (a === '--scenario') {
      const v = value();
      if (!SCENARIOS.includes(v as Scenario)) throw new Error(`--scenario must be one of ${SCENARIOS.join(', ')}, got ${v}`);
      scenario = v as Scenario;
      passOn.push(a, v);
    } else throw new Error(`unknown argument ${a}`);
  }
  if (!Number.isSafeInteger(jobs) || jobs < 1) throw new Error(`--jobs must be an integer >= 1, got ${jobs}`);
  if (!Number.isSafeInteger(stride) || stride < 1) throw new Error(`--stride must be an integer >= 1, got ${stride}`);
  if (jobs > 1) {
    if (count === 0) throw new Error('--jobs needs --seeds N');
    return { seeds: [], jobs, child, argv: passOn, verbose, strictAccuracy, deflateJoins, first, count } as Args & { first: number; count: number };
  }
  if (count > 0) for (let i = 0; i < count; i++) seeds.push(first + i * stride);
  if (seeds.length === 0) seeds = [first];
  for (const s of seeds) if (!Number.isSafeInteger(s) || s < 0) throw new Error(`bad seed ${s}`);
  return { seeds, jobs, child, argv: passOn, verbose, strictAccuracy, deflateJoins, ...(plant ? { plant } : {}), ...(scenario ? { scenario } : {}) };
}

interface Totals {
  seeds: number;
  failed: number;
  simMs: number;
  compared: number;
  accuracy: number;
}

/** The seeds over `jobs` processes; prints their failures as they come and the sum at the end (or at SIGINT/SIGTERM). */
async function runJobs(args: Args & { first: number; count: number }): Promise<void> {
  const started = performance.now();
  const totals: Totals = { seeds: 0, failed: 0, simMs: 0, compared: 0, accuracy: 0 };
  const script = fileURLToPath(import.meta.url);
  let lastReport = 0;
  let broken = false;
  const children = Array.from({ length: args.jobs }, (_, k) => {
    const count = Math.ceil((args.count - k) / args.jobs);
    const child = spawn(process.execPath, [script, '--child', '--seeds', String(count), '--first-seed', String(args.first + k), '--stride', String(args.jobs), ...args.argv], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    const seen: Totals = { seeds: 0, failed: 0, simMs: 0, compared: 0, accuracy: 0 };
    let buffered = '';
    child.stdout.on('data', (chunk: Buffer) => {
      buffered += chunk.toString('utf8');
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (!line.startsWith('{"totals"')) {
          console.log(line);
          continue;
        }
        // Cumulative per child: add what is new since its last report.
        const now = (JSON.parse(line) as { totals: Totals }).totals;
        for (const key of Object.keys(totals) as Array<keyof Totals>) {
          totals[key] += now[key] - seen[key];
          seen[key] = now[key];
        }
        if (totals.seeds - lastReport >= 500) {
          lastReport = totals.seeds;
          console.log(`  ... ${summary(totals, performance.now() - started)}`);
        }
      }
    });
    return new Promise<void>((resolve) =>
      child.on('close', (code, signal) => {
        // 0: clean, 1: failing seeds (already printed); anything else is the run itself failing.
        if (code !== 0 && code !== 1) {
          console.log(`process ${k} of ${args.jobs} ended with ${signal ?? `exit code ${code}`}`);
          broken = true;
        }
        resolve();
      }),
    );
  });
  const stop = (): void => {
    console.log('stopping: the seeds completed so far are counted');
  };
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  await Promise.all(children);
  console.log(summary(totals, performance.now() - started, args.strictAccuracy));
  process.exitCode = broken ? 2 : totals.failed > 0 ? 1 : 0;
}

function summary(t: Totals, wallMs: number, strictAccuracy = true): string {
  return (
    `${t.seeds} seeds, ${t.failed} failed, ${t.compared} ended with the live node's and its backup's state hashes compared, ${t.accuracy} with a takeover on the backup's own stall (accuracy${strictAccuracy ? ', failing' : ', counted only (--lenient-accuracy)'}), ` +
    `in ${(wallMs / 1000).toFixed(1)} s: ${((t.seeds / wallMs) * 60_000).toFixed(0)} seeds/minute, ${(t.simMs / wallMs).toFixed(1)} simulated s per wall s`
  );
}

async function main(): Promise<void> {
  let args: Args;
  try {
    args = parse(process.argv.slice(2));
  } catch (error) {
    console.error(`npm run sim: ${(error as Error).message}\n\n${USAGE}`);
    process.exitCode = 2;
    return;
  }
  if (args.jobs > 1) return runJobs(args as Args & { first: number; count: number });
  const started = performance.now();
  let failed = 0;
  let accuracy = 0;
  let compared = 0;
  let simMs = 0;
  let stopping = false;
  const report = (): void => {
    if (args.child) console.log(JSON.stringify({ totals: { seeds: done, failed, simMs, compared, accuracy } }));
  };
  // Stopped (the parent's or a terminal's signal): the seeds completed so far still count.
  const stop = (): void => void (stopping = true);
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  let done = 0;
  for (const seed of args.seeds) {
    if (stopping) break;
    const result: SimResult = await new Sim({
      seed,
      verbose: args.verbose,
      ...(args.plant ? { plant: args.plant } : {}),
      strictAccuracy: args.strictAccuracy,
      deflateJoins: args.deflateJoins,
      ...(args.scenario ? { scenario: args.scenario } : {}),
    }).run();
    simMs += result.simMs;
    if (result.comparedStates) compared++;
    if (result.accuracy.length > 0) {
      accuracy++;
      if (args.verbose || args.seeds.length === 1) console.log(`seed ${seed}: ${result.accuracy.join('; ')}`);
    }
    // Rare, and a judgement worth seeing in a sweep: say each one.
    if (result.unavailable !== null) console.log(`seed ${seed}: liveness not judged: ${result.unavailable}`);
    if (!result.ok) {
      failed++;
      console.log(
        `seed ${seed} (${result.app}) FAILED: ${result.violations.join('; ')}\n  faults: ${result.faults.join(', ') || 'none'}\n  reproduce: ${reproduce(seed, args.plant, args.strictAccuracy, args.scenario, args.deflateJoins)}`,
      );
    } else if (args.seeds.length === 1 || args.verbose) {
      console.log(
        `seed ${seed} (${result.app}) ok: ${result.steps} events, ${result.requests} requests, ${Math.round(result.simMs)} virtual ms, faults: ${result.faults.join(', ') || 'none'}, digest ${result.digest.slice(0, 16)}`,
      );
    }
    done++;
    if (done % 100 === 0) report();
  }
  report();
  if (!args.child) console.log(summary({ seeds: done, failed, simMs, compared, accuracy }, performance.now() - started, args.strictAccuracy));
  process.exitCode = failed > 0 ? 1 : 0;
}

await main();
