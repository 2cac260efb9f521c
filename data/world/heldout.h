// Held-out prompts for a model trained on the world: captions of fresh random scenes that are
// none of the captions of its training set (world_example(train_seed, 0 .. n_train-1)), so that
// a score on them measures words bound to pixels, not memorised captions.
#pragma once
#include <stdint.h>

#include "data/world/caption.h"

// captions (n, CAPTION_MAX): scene k of `seed` (the world's caption stream) in order, skipping
// any caption the training set has. *skipped (may be NULL) gets how many were skipped.
void world_heldout_captions(uint64_t train_seed, int64_t n_train, uint64_t seed, int n, char (*captions)[CAPTION_MAX],
                            int64_t *skipped);
