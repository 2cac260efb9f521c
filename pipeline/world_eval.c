#include "pipeline/world_eval.h"

#include <stdio.h>
#include <stdlib.h>

#include "data/world/heldout.h"
#include "engine/core/error.h"

world_eval_opts world_eval_defaults(void) {
    return (world_eval_opts){.n = 200, .seed = 1000, .train_seed = 0, .n_train = 16384, .steps = 25, .cfg = 5.0f};
}

int world_eval_model(const sd_model *m, const world_eval_opts *o, const char *dir, score_totals *t, int64_t *skipped) {
    char (*caps)[CAPTION_MAX] = sl_calloc((size_t)o->n, CAPTION_MAX);
    world_heldout_captions(o->train_seed, o->n_train, o->seed, o->n, caps, skipped);
    caption_sample_opts so = {64, o->steps, o->cfg, o->seed, o->quiet ? NULL : "held-out captions"};
    char json[4200];
    snprintf(json, sizeof json, "%s/scores.json", dir);
    int rc = sample_captions(m, (const char(*)[CAPTION_MAX])caps, o->n, &so, dir, NULL);
    if (rc == 0) rc = score_folder(dir, NULL, NULL, json, t);
    free(caps);
    return rc;
}
