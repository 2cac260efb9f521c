// Per-example random streams: every random choice an example makes (its image, flip, posterior
// noise, diffusion noise, timestep) comes from a torch-exact generator (engine/rng.h) seeded
// from (run seed, optimizer step, example index in the global batch) alone, so the same run
// split over several processes, or resumed from a checkpoint, draws the same numbers.
#pragma once
#include <stdint.h>

#include "engine/core/rng.h"

// A 64-bit key of the triple (splitmix64 mixing, so nearby triples give unrelated seeds).
uint64_t example_stream_key(uint64_t seed, int64_t step, int64_t index);
// r = the stream of example `index` of optimizer step `step` (1-based) of run `seed`.
void example_stream(sl_rng *r, uint64_t seed, int64_t step, int64_t index);
