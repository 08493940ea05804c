// `npm run sim -- --seeds N | --seed S [--plant NAME] [--scenario two-primaries|slow-join]
// [--lenient-accuracy] [--verbose]`: runs seeded simulations of the
// whole pair (test/sim/sim.ts) and prints one line per failing seed with the command that replays it.

import { reproduce } from './repro.js';
import { PLANTS, type Plant, SCENARIOS, type Scenario, Sim, type SimResult } from './sim.js';

interface Args {
  seeds: number[];
  plant?: Plant;
  scenario?: Scenario;
  verbose: boolean;
  strictAccuracy: boolean;
}

function parse(argv: string[]): Args {
  let seeds: number[] = [];
  let plant: Plant | undefined;
  let verbose = false;
  let strictAccuracy = true;
  let scenario: Scenario | undefined;
  let first = 1;
  let count = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--seed') seeds.push(Number(value()));
    else if (a === '--seeds') count = Number(value());
    else if (a === '--first-seed') first = Number(value());
    else if (a === '--plant') {
      const p = value();
      if (!PLANTS.includes(p as Plant)) throw new Error(`--plant must be one of ${PLANTS.join(', ')}, got ${p}`);
      plant = p as Plant;
    } else if (a === '--verbose') verbose = true;
    else if (a === '--strict-accuracy') strictAccuracy = true;
    else if (a === '--lenient-accuracy') strictAccuracy = false;
    else if (a === '--scenario') {
      const v = value();
      if (!SCENARIOS.includes(v as Scenario)) throw new Error(`--scenario must be one of ${SCENARIOS.join(', ')}, got ${v}`);
      scenario = v as Scenario;
    } else throw new Error(`unknown argument ${a} (use --seeds N | --seed S [--first-seed F] [--plant ${PLANTS.join('|')}] [--scenario ${SCENARIOS.join('|')}] [--lenient-accuracy] [--verbose])`);
  }
  if (count > 0) for (let s = first; s < first + count; s++) seeds.push(s);
  if (seeds.length === 0) seeds = [first];
  for (const s of seeds) if (!Number.isSafeInteger(s) || s < 0) throw new Error(`bad seed ${s}`);
  return { seeds, verbose, strictAccuracy, ...(plant ? { plant } : {}), ...(scenario ? { scenario } : {}) };
}

async function main(): Promise<void> {
  const args = parse(process.argv.slice(2));
  const started = performance.now();
  let failed = 0;
  let accuracy = 0;
  let compared = 0;
  let simMs = 0;
  for (const seed of args.seeds) {
    const result: SimResult = await new Sim({
      seed,
      verbose: args.verbose,
      ...(args.plant ? { plant: args.plant } : {}),
      strictAccuracy: args.strictAccuracy,
      ...(args.scenario ? { scenario: args.scenario } : {}),
    }).run();
    simMs += result.simMs;
    if (result.comparedStates) compared++;
    if (result.accuracy.length > 0) {
      accuracy++;
      if (args.verbose || args.seeds.length === 1) console.log(`seed ${seed}: ${result.accuracy.join('; ')}`);
    }
    if (!result.ok) {
      failed++;
      console.log(
        `seed ${seed} (${result.app}) FAILED: ${result.violations.join('; ')}\n  faults: ${result.faults.join(', ') || 'none'}\n  reproduce: ${reproduce(seed, args.plant, args.strictAccuracy, args.scenario)}`,
      );
    } else if (args.seeds.length === 1 || args.verbose) {
      console.log(
        `seed ${seed} (${result.app}) ok: ${result.steps} events, ${result.requests} requests, ${Math.round(result.simMs)} virtual ms, faults: ${result.faults.join(', ') || 'none'}, digest ${result.digest.slice(0, 16)}`,
      );
    }
  }
  const wallMs = performance.now() - started;
  console.log(
    `${args.seeds.length} seeds, ${failed} failed, ${compared} ended with the live node's and its backup's state hashes compared, ${accuracy} with a takeover on the backup's own stall (accuracy${args.strictAccuracy ? ', failing' : ', counted only (--lenient-accuracy)'}), in ${(wallMs / 1000).toFixed(1)} s: ${((args.seeds.length / wallMs) * 60_000).toFixed(0)} seeds/minute, ${(simMs / wallMs).toFixed(1)} simulated s per wall s`,
  );
  process.exitCode = failed > 0 ? 1 : 0;
}

await main();
