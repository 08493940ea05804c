// `node dist/test/sim/plants.js [--max-seeds N] [--plant NAME]`: plants each bug (test/sim/sim.ts
// plantFaults: a faulty node or environment inside the simulator, never a production switch) and
// runs seeds from 1 until the simulator catches it, or N seeds pass. Prints, per plant, after how
// many seeds it was caught and by which check; with --rate N, how many of seeds 1..N catch it.

import { reproduce } from './repro.js';
import { PLANTS, type Plant, Sim } from './sim.js';

async function hunt(plant: Plant, maxSeeds: number): Promise<{ plant: Plant; caughtAtSeed: number | null; by: string; wallS: number }> {
  const started = performance.now();
  const strictAccuracy = true;
  for (let seed = 1; seed <= maxSeeds; seed++) {
    const result = await new Sim({ seed, plant, strictAccuracy }).run();
    if (!result.ok) {
      return { plant, caughtAtSeed: seed, by: `${result.violations[0]}  [${reproduce(seed, plant, strictAccuracy)}]`, wallS: (performance.now() - started) / 1000 };
    }
  }
  return { plant, caughtAtSeed: null, by: `not caught in ${maxSeeds} seeds`, wallS: (performance.now() - started) / 1000 };
}

/** How many of seeds 1..n catch `plant` (the catch rate, not only the first). */
async function rate(plant: Plant, n: number): Promise<string> {
  let caught = 0;
  const by = new Map<string, number>();
  for (let seed = 1; seed <= n; seed++) {
    const result = await new Sim({ seed, plant }).run();
    if (result.ok) continue;
    caught++;
    const check = result.violations[0]!.replace(/^t=[\d.]+ ms: /, '').split(':')[0]!;
    by.set(check, (by.get(check) ?? 0) + 1);
  }
  return `${plant}: caught by ${caught} of ${n} seeds (${[...by].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'})`;
}

const argv = process.argv.slice(2);
let rateSeeds = 0;
let maxSeeds = 1000;
let only: Plant[] = [...PLANTS];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--max-seeds') maxSeeds = Number(argv[++i]);
  else if (argv[i] === '--plant') only = [argv[++i] as Plant];
  else if (argv[i] === '--rate') rateSeeds = Number(argv[++i]);
  else throw new Error(`unknown argument ${argv[i]} (--max-seeds N | --rate N, --plant ${PLANTS.join('|')})`);
}
for (const plant of only) {
  if (!PLANTS.includes(plant)) throw new Error(`unknown plant ${plant}`);
  if (rateSeeds > 0) {
    console.log(await rate(plant, rateSeeds));
    continue;
  }
  const r = await hunt(plant, maxSeeds);
  console.log(`${plant}: ${r.caughtAtSeed === null ? 'NOT CAUGHT' : `caught at seed ${r.caughtAtSeed}`} (${r.wallS.toFixed(1)} s): ${r.by}`);
}
