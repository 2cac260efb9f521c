// The world as a data set: example i of a seed is a pure function of (seed, i, size), so a
// data loader can draw any example in any order, on any thread, and get the same bytes.
// Each kind of example draws from its own stream of the generator, so the world, a subject's
// photos and captions rendered with one seed never share scenes.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "data/world/caption.h"
#include "data/world/scene.h"

typedef enum { WORLD_STREAM_WORLD = 1, WORLD_STREAM_SUBJECT = 2, WORLD_STREAM_CAPTION = 3, WORLD_STREAM_VAE = 4 } world_stream;

// The generator for example `index` of `seed` in a stream (seeded from a 64-bit mix of the three).
void world_rng(sl_rng *r, uint64_t seed, uint64_t index, world_stream stream);

// A random world scene: rgb (size, size, 3) and its caption (CAPTION_MAX bytes); scene may be NULL.
void world_example(uint64_t seed, uint64_t index, int size, uint8_t *rgb, char *caption, world_scene *scene);
// A photo of the subject on a varied background, captioned "a photo of TOKEN SHAPE on a C background".
void world_subject_example(const world_subject *sub, const char *token, uint64_t seed, uint64_t index, int size,
                           uint8_t *rgb, char *caption, world_scene *scene);
// An image for the VAE, which sees no captions: even indices are world_example's scenes, odd
// ones a photo of a random subject (any shape, colours, pattern and accent; the subject drawn
// from the index) — the image codec has to carry the stripes, dots and outlines subjects have,
// though no world caption names one.
void world_vae_example(uint64_t seed, uint64_t index, int size, uint8_t *rgb, world_scene *scene);   // scene may be NULL
// An image matching a caption (a world caption: no subject), objects placed at random.
// -1 with sl_error(what, ...) when the caption does not parse.
int world_caption_example(const char *caption, uint64_t seed, uint64_t index, int size, uint8_t *rgb,
                          world_scene *scene, const char *what);

// Writes DIR/NNNNN.png (with the caption as its `parameters` text, as `singlora sample` does)
// and DIR/NNNNN.txt (the caption and a newline). 0, or -1 with sl_error.
int world_write_example(const char *dir, long index, const uint8_t *rgb, int size, const char *caption);
