#include "data/world/heldout.h"

#include <stdlib.h>
#include <string.h>

#include "data/world/dataset.h"
#include "engine/core/error.h"

static int cmp_caption(const void *a, const void *b) { return strcmp(a, b); }

// The caption of a world_example without rendering it (the same scene: the same stream).
static void scene_caption(uint64_t seed, uint64_t index, world_stream stream, char *caption) {
    sl_rng r;
    world_rng(&r, seed, index, stream);
    world_scene s;
    scene_random(&s, &r);
    caption_write(&s, NULL, caption, CAPTION_MAX);
}

void world_heldout_captions(uint64_t train_seed, int64_t n_train, uint64_t seed, int n, char (*captions)[CAPTION_MAX],
                            int64_t *skipped) {
    char (*train)[CAPTION_MAX] = sl_calloc((size_t)(n_train > 0 ? n_train : 1), CAPTION_MAX);
    for (int64_t i = 0; i < n_train; i++) scene_caption(train_seed, (uint64_t)i, WORLD_STREAM_WORLD, train[i]);
    qsort(train, (size_t)n_train, CAPTION_MAX, cmp_caption);
    int64_t skip = 0;
    uint64_t index = 0;
    for (int k = 0; k < n; index++) {
        scene_caption(seed, index, WORLD_STREAM_CAPTION, captions[k]);
        if (n_train > 0 && bsearch(captions[k], train, (size_t)n_train, CAPTION_MAX, cmp_caption)) skip++;
        else k++;
    }
    free(train);
    if (skipped) *skipped = skip;
}
