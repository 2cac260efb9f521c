#include "data/world/dataset.h"

#include <stdio.h>
#include <string.h>

#include "data/png.h"
#include "engine/io/atomic_file.h"
#include "engine/core/error.h"

static uint64_t splitmix64(uint64_t x) {
    x += 0x9E3779B97F4A7C15ull;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
    return x ^ (x >> 31);
}

void world_rng(sl_rng *r, uint64_t seed, uint64_t index, world_stream stream) {
    uint64_t h = splitmix64(splitmix64(splitmix64(seed) ^ index) ^ (uint64_t)stream);
    sl_rng_seed(r, (uint32_t)(h ^ (h >> 32)));
}

void world_example(uint64_t seed, uint64_t index, int size, uint8_t *rgb, char *caption, world_scene *scene) {
    sl_rng r;
    world_rng(&r, seed, index, WORLD_STREAM_WORLD);
    world_scene s;
    scene_random(&s, &r);
    scene_render(&s, size, rgb);
    if (caption) caption_write(&s, NULL, caption, CAPTION_MAX);
    if (scene) *scene = s;
}

void world_subject_example(const world_subject *sub, const char *token, uint64_t seed, uint64_t index, int size,
                           uint8_t *rgb, char *caption, world_scene *scene) {
    sl_rng r;
    world_rng(&r, seed, index, WORLD_STREAM_SUBJECT);
    world_scene s;
    scene_random_subject(&s, sub, &r);
    scene_render(&s, size, rgb);
    if (caption) caption_write(&s, token, caption, CAPTION_MAX);
    if (scene) *scene = s;
}

void world_vae_example(uint64_t seed, uint64_t index, int size, uint8_t *rgb, world_scene *scene) {
    if (index % 2 == 0) {
        char cap[CAPTION_MAX];
        world_example(seed, index / 2, size, rgb, cap, scene);
        return;
    }
    sl_rng r;
    world_rng(&r, seed, index / 2, WORLD_STREAM_VAE);
    world_subject sub;
    subject_random(&sub, &r);
    world_scene s;
    scene_random_subject(&s, &sub, &r);
    scene_render(&s, size, rgb);
    if (scene) *scene = s;
}

int world_caption_example(const char *caption, uint64_t seed, uint64_t index, int size, uint8_t *rgb,
                          world_scene *scene, const char *what) {
    world_scene s;
    if (caption_parse(caption, NULL, &s, what) != 0) return -1;
    sl_rng r;
    world_rng(&r, seed, index, WORLD_STREAM_CAPTION);
    scene_place(&s, &r);
    scene_render(&s, size, rgb);
    if (scene) *scene = s;
    return 0;
}

int world_write_example(const char *dir, long index, const uint8_t *rgb, int size, const char *caption) {
    char png[4200], txt[4200];
    snprintf(png, sizeof png, "%s/%05ld.png", dir, index);
    snprintf(txt, sizeof txt, "%s/%05ld.txt", dir, index);
    const char *keys[] = {"parameters"}, *vals[] = {caption};
    if (png_write(png, rgb, size, size, 3, keys, vals, 1) != 0) return -1;
    char line[CAPTION_MAX + 2];
    int n = snprintf(line, sizeof line, "%s\n", caption);
    const void *bufs[] = {line};
    size_t lens[] = {(size_t)n};
    return atomic_write(txt, bufs, lens, 1);
}
