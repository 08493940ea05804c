// A tiny seeded PRNG (a mulberry32 variant) for drills and test workloads: the same seed gives the
// same fault timing and the same requests on any machine.

/** Floats in [0, 1), a fixed sequence for each seed. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
