// Held-out captions (data/world/heldout.h): none of the training set's, in a fixed order.
#include <stdlib.h>
#include <string.h>

#include "data/world/dataset.h"
#include "data/world/heldout.h"
#include "tests/test.h"

TEST(world_heldout_captions_avoid_the_training_set) {
    enum { N_TRAIN = 3000, N = 60, S = 16 };
    char (*train)[CAPTION_MAX] = calloc(N_TRAIN, CAPTION_MAX);
    char (*caps)[CAPTION_MAX] = calloc(N, CAPTION_MAX), (*again)[CAPTION_MAX] = calloc(N, CAPTION_MAX);
    uint8_t rgb[S * S * 3];
    for (int i = 0; i < N_TRAIN; i++) world_example(7, (uint64_t)i, S, rgb, train[i], NULL);
    int64_t skipped = -1, none = -1;
    world_heldout_captions(7, N_TRAIN, 11, N, caps, &skipped);
    world_heldout_captions(7, N_TRAIN, 11, N, again, NULL);
    // most one-object captions (660 of them) are in a 3000-example training set: some were skipped
    CHECK_MSG(skipped > 0, "skipped %lld", (long long)skipped);
    int two_objects = 0;
    for (int k = 0; k < N; k++) {
        CHECK(!strcmp(caps[k], again[k]));
        for (int i = 0; i < N_TRAIN; i++) CHECK_MSG(strcmp(caps[k], train[i]) != 0, "held-out caption %d is training example %d", k, i);
        two_objects += strstr(caps[k], " and ") != NULL;
        world_scene s;
        CHECK(caption_parse(caps[k], NULL, &s, "caption") == 0);
    }
    CHECK(two_objects > 0);
    // the held-out list is the caption stream (no training set: all of it) with the seen ones removed
    const int n_all = N + (int)skipped;
    char (*all)[CAPTION_MAX] = calloc((size_t)n_all, CAPTION_MAX);
    world_heldout_captions(7, 0, 11, n_all, all, &none);
    CHECK_EQ_INT(none, 0);
    int j = 0;
    for (int k = 0; k < n_all; k++) {
        int seen = 0;
        for (int i = 0; i < N_TRAIN && !seen; i++) seen = !strcmp(all[k], train[i]);
        if (!seen) CHECK_MSG(j < N && !strcmp(all[k], caps[j++]), "stream caption %d", k);
    }
    CHECK_EQ_INT(j, N);
    free(train), free(caps), free(again), free(all);
}
