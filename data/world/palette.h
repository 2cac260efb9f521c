// The toy world's named colours: twelve RGB entries at least 96 apart (Euclidean, 0..255), so
// that a pixel is classified by its nearest entry even through the background texture (at most
// ±13 per channel) and the blur of a small diffusion model.
#pragma once
#include <stdint.h>

typedef enum {
    COL_RED, COL_ORANGE, COL_YELLOW, COL_GREEN, COL_BLUE, COL_PURPLE,
    COL_PINK, COL_MAGENTA, COL_WHITE, COL_BLACK, COL_BROWN, COL_CYAN,
    N_COLOURS
} world_colour;

// A pixel too far from every entry (squared distance above this) is "unknown" to the scorer.
#define PALETTE_UNKNOWN_DIST2 (100 * 100)
#define COL_UNKNOWN (-1)

// "red", ... ; NULL for an index out of range.
const char *palette_name(int colour);
// The colour named `name` (exact lower-case word), or -1.
int palette_find(const char *name);
// rgb[3] of a colour.
const uint8_t *palette_rgb(int colour);
// The nearest entry to (r, g, b) by squared RGB distance (ties: the lower index), and that
// distance in *dist2 when not NULL.
int palette_nearest(int r, int g, int b, int *dist2);
// palette_nearest, or COL_UNKNOWN when the distance is above PALETTE_UNKNOWN_DIST2.
int palette_classify(int r, int g, int b);
// "red, orange, ..." (all names, for error messages).
const char *palette_list(void);
