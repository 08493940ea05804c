// The one command that replays a seed exactly (printed with every failure).

import type { Plant } from './sim.js';

export function reproduce(seed: number, plant?: Plant, strictAccuracy = false): string {
  return `npm run sim -- --seed ${seed}${plant ? ` --plant ${plant}` : ''}${strictAccuracy ? ' --strict-accuracy' : ''} --verbose`;
}
