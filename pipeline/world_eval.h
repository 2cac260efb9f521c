// How well a model draws the toy world: N held-out world captions (data/world/heldout.h)
// sampled into a folder and scored by the world's scorer. The shipped base model's targets:
// background colour >= 95 %, object colour >= 85 %, shape >= 75 % on 200 captions.
#pragma once
#include <stdint.h>

#include "data/world/score_folder.h"
#include "pipeline/caption_samples.h"

typedef struct {
    int n;                 // captions (200)
    uint64_t seed;         // caption and image seed
    uint64_t train_seed;   // the training set whose captions are left out (pretrain's --seed)
    int64_t n_train;       // its size (pretrain's --latents); 0: leave none out
    int steps;             // DDIM steps
    float cfg;
    int quiet;
} world_eval_opts;

world_eval_opts world_eval_defaults(void);
// Samples into dir (NNNNN.png + .txt, scores.json). *skipped: captions left out as seen in
// training. 0, or -1 with sl_error.
int world_eval_model(const sd_model *m, const world_eval_opts *o, const char *dir, score_totals *t, int64_t *skipped);
