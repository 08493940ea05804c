// The one command that replays a seed exactly (printed with every failure).

import type { Plant, Scenario } from './sim.js';

export function reproduce(seed: number, plant?: Plant, strictAccuracy = true, scenario?: Scenario, deflateJoins = false): string {
  return `npm run sim -- --seed ${seed}${plant ? ` --plant ${plant}` : ''}${scenario ? ` --scenario ${scenario}` : ''}${strictAccuracy ? '' : ' --lenient-accuracy'}${deflateJoins ? ' --deflate-joins' : ''} --verbose`;
}
