// The toy world's renderer: deterministic bytes (golden hashes), captions that parse back to the
// scene, the background dominating, shapes of the areas their geometry says, any size.
#include <stdlib.h>
#include <string.h>

#include "data/world/caption.h"
#include "data/world/dataset.h"
#include "data/world/palette.h"
#include "engine/core/sha256.h"
#include "tests/test.h"

static void hash_hex(const uint8_t *p, size_t n, char hex[65]) {
    sha256_ctx c;
    uint8_t d[32];
    sha256_init(&c);
    sha256_update(&c, p, n);
    sha256_final(&c, d);
    for (int i = 0; i < 32; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
}

// Goldens of this renderer (integer-only: the same bytes on every machine and compiler). A
// change here is a change of the world: the shipped base model was trained on these pixels.
TEST(world_render_golden_hashes) {
    static const struct { uint64_t seed, index; int size; const char *caption, *sha; } G[] = {
        {0, 0, 64, "a yellow triangle on a magenta background", "eaed23fe363275be2b2f845b0433fdff83914e9780d3fa3a83385729795aab3f"},
        {1, 5, 64, "a red square and a blue ring on a green background", "aee05d9726dbf49af29b82429da27dc3da188e9afa8736c5ec50f325f0d5c676"},
        {42, 1000, 64, "a purple ring on a magenta background", "37f8fdcaf772f49db96430117667330626b7161742722b65d21ec3b8b75c01be"},
        {3, 2, 128, "a red square on a purple background", "490b5f4c4e1663e2ea2729d4cb4451332e4b76262691f279872ca312dea7ac6a"},
    };
    uint8_t *rgb = malloc(128 * 128 * 3);
    char cap[CAPTION_MAX], hex[65];
    for (size_t i = 0; i < sizeof G / sizeof G[0]; i++) {
        world_example(G[i].seed, G[i].index, G[i].size, rgb, cap, NULL);
        hash_hex(rgb, (size_t)G[i].size * G[i].size * 3, hex);
        CHECK_MSG(!strcmp(cap, G[i].caption), "example %zu: caption '%s', want '%s'", i, cap, G[i].caption);
        CHECK_MSG(!strcmp(hex, G[i].sha), "example %zu: sha256 %s, want %s", i, hex, G[i].sha);
    }
    world_subject s;
    REQUIRE(subject_parse("star:magenta:stripes-white:outline-orange", &s, "test") == 0);
    world_subject_example(&s, "sks", 7, 3, 64, rgb, cap, NULL);
    hash_hex(rgb, 64 * 64 * 3, hex);
    CHECK(!strcmp(cap, "a photo of sks star on a blue background"));
    CHECK_MSG(!strcmp(hex, "44b9e34f68ee1e10aede7818bcf2b86d5899cf95a12157e72fca16033a874639"), "subject photo: sha256 %s", hex);
    free(rgb);
}

TEST(world_render_is_a_function_of_seed_and_index) {
    uint8_t a[64 * 64 * 3], b[64 * 64 * 3];
    char ca[CAPTION_MAX], cb[CAPTION_MAX];
    world_example(9, 17, 64, a, ca, NULL);
    world_example(9, 16, 64, b, cb, NULL);   // another example in between changes nothing
    world_example(9, 17, 64, b, cb, NULL);
    CHECK(memcmp(a, b, sizeof a) == 0 && !strcmp(ca, cb));
    world_example(10, 17, 64, b, cb, NULL);
    CHECK(memcmp(a, b, sizeof a) != 0);
}

TEST(world_caption_parses_back_to_the_scene) {
    uint8_t rgb[64 * 64 * 3];
    char cap[CAPTION_MAX];
    int n_two = 0;
    for (int i = 0; i < 300; i++) {
        world_scene s, p;
        world_example(5, (uint64_t)i, 64, rgb, cap, &s);
        REQUIRE(caption_parse(cap, NULL, &p, "test") == 0);
        CHECK_EQ_INT(p.n_objects, s.n_objects);
        CHECK_EQ_INT(p.background, s.background);
        for (int k = 0; k < s.n_objects; k++) {
            CHECK_EQ_INT(p.obj[k].shape, s.obj[k].shape);
            CHECK_EQ_INT(p.obj[k].colour, s.obj[k].colour);
            CHECK(s.obj[k].colour != s.background);
        }
        n_two += s.n_objects == 2;
        // and the image of the parsed caption has the same caption
        world_scene q;
        REQUIRE(world_caption_example(cap, 1, (uint64_t)i, 64, rgb, &q, "test") == 0);
        char cap2[CAPTION_MAX];
        caption_write(&q, NULL, cap2, sizeof cap2);
        CHECK(!strcmp(cap, cap2));
    }
    CHECK(n_two > 100 && n_two < 200);   // both kinds of scene are common
}

TEST(world_background_dominates_and_areas_match_the_geometry) {
    // area of each shape in units of r^2 (shapes.h): pi, (1.76)^2, sqrt(3)/4 (1.2 sqrt 3)^2,
    // 10 * 1/2 * 1.2 * 0.55 * sin 36deg, pi (1 - 0.45^2)
    static const double AREA[N_SHAPES] = {3.14159, 3.0976, 1.8706, 1.9397, 2.5054};
    uint8_t rgb[64 * 64 * 3];
    int checked[N_SHAPES] = {0};
    for (int i = 0; i < 400; i++) {
        world_scene s;
        world_example(77, (uint64_t)i, 64, rgb, NULL, &s);
        int count[N_COLOURS] = {0};
        for (int p = 0; p < 64 * 64; p++) count[palette_nearest(rgb[3 * p], rgb[3 * p + 1], rgb[3 * p + 2], NULL)]++;
        CHECK_MSG(count[s.background] * 100 >= 64 * 64 * 55, "example %d: background %d %% of the pixels", i,
                  count[s.background] * 100 / (64 * 64));
        if (s.n_objects != 1) continue;
        double r = s.obj[0].r * 64.0 / WORLD_UNITS, want = AREA[s.obj[0].shape] * r * r;
        double got = count[s.obj[0].colour];
        CHECK_MSG(got > 0.88 * want && got < 1.12 * want, "example %d: %s of r %.1f px covers %.0f px, geometry %.0f", i,
                  shape_name(s.obj[0].shape), r, got, want);
        checked[s.obj[0].shape]++;
    }
    for (int k = 0; k < N_SHAPES; k++) CHECK_MSG(checked[k] >= 10, "shape %s seen %d times", shape_name(k), checked[k]);
}

TEST(world_render_scales_with_size) {
    // one scene at 64 and 256 px: the object covers the same fraction of the image
    world_scene s;
    uint8_t *small = malloc(64 * 64 * 3), *big = malloc(256 * 256 * 3);
    world_example(3, 4, 64, small, NULL, &s);
    scene_render(&s, 256, big);
    int a = 0, b = 0;
    for (int p = 0; p < 64 * 64; p++) a += palette_nearest(small[3 * p], small[3 * p + 1], small[3 * p + 2], NULL) != s.background;
    for (int p = 0; p < 256 * 256; p++) b += palette_nearest(big[3 * p], big[3 * p + 1], big[3 * p + 2], NULL) != s.background;
    CHECK_NEAR(b / 16.0, a, 0.06 * a);
    free(small);
    free(big);
}

TEST(world_objects_never_overlap) {
    for (int i = 0; i < 2000; i++) {
        sl_rng r;
        world_rng(&r, 1, (uint64_t)i, WORLD_STREAM_WORLD);
        world_scene s;
        scene_random(&s, &r);
        for (int k = 0; k < s.n_objects; k++) {
            int e = s.obj[k].r * SHAPE_EXTENT_NUM / SHAPE_EXTENT_DEN;
            CHECK(s.obj[k].cx - e >= 0 && s.obj[k].cx + e <= WORLD_UNITS && s.obj[k].cy - e >= 0 && s.obj[k].cy + e <= WORLD_UNITS);
        }
        if (s.n_objects == 2) {
            int gap = s.obj[0].r * 5 / 4 + s.obj[1].r * 5 / 4;
            CHECK(abs(s.obj[0].cx - s.obj[1].cx) >= gap || abs(s.obj[0].cy - s.obj[1].cy) >= gap);
        }
    }
}
