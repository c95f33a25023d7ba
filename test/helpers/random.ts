// A seeded random number in [0, 1), from the same Mulberry32 generator the sparse-random
// backend uses: tests that pick random moments or cases get the same ones on every run of a seed.
import { rng as rngU32 } from '../../src/server/backends/sparse-random.js';

export function rng(seed: number): () => number {
  const next = rngU32(seed);
  return () => next() / 4294967296;
}
