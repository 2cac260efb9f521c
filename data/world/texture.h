// The world's mild texture: a smooth brightness variation over the background (a bilinear
// field of random offsets on a 4x4-cell grid, within ±8) and a per-pixel grain (±3) over the
// whole image. Both shift the three channels together, in integers, and stay far inside the
// palette's spacing, so every pixel keeps its nearest palette colour.
#pragma once
#include <stdint.h>

#include "engine/core/rng.h"

#define TEXTURE_FIELD_MAX 8
#define TEXTURE_GRAIN_MAX 3

// rgb (h, w, 3) = the palette colour with the smooth field added.
void texture_background(uint8_t *rgb, int w, int h, int colour, sl_rng *r);
// Adds the grain to every pixel of rgb (h, w, 3).
void texture_grain(uint8_t *rgb, int w, int h, sl_rng *r);
