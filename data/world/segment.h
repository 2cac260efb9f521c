// Reading an image back into the world's terms, robustly enough for the blurry output of a
// small diffusion model: every pixel gets its nearest palette colour (or "unknown" when none is
// close), the background is the colour most pixels have (if it holds at least a quarter of
// them), background pixels are those of its colour with at least SEG_BG_NEIGHBOURS of their 3x3
// neighbourhood too (a hairline of blended colours inside an object is not background), and the
// objects are the 4-connected components of the other pixels, largest first, keeping those
// between SEG_MIN_AREA_DIV and SEG_MAX_AREA_PCT of the image.
#pragma once
#include <stdint.h>

#define SEG_MAX_COMPONENTS 8
#define SEG_MIN_AREA_DIV 200      // a component has at least w*h/200 pixels (20 at 64x64) ...
#define SEG_MAX_AREA_PCT 60       // ... and at most 60 % of the image (noise is one huge component)
#define SEG_MIN_BACKGROUND_PCT 25
#define SEG_BG_NEIGHBOURS 5

typedef struct {
    int label;              // its value in seg.label
    int area;               // pixels
    int x0, y0, x1, y1;     // bounding box, inclusive
} seg_component;

typedef struct {
    int w, h;
    int8_t *cls;            // (h, w) palette colour per pixel, or COL_UNKNOWN
    int *label;             // (h, w) component label, -1 for background / dropped pixels
    int background;         // palette colour, or -1 when no colour holds SEG_MIN_BACKGROUND_PCT
    int n_comp;
    seg_component comp[SEG_MAX_COMPONENTS];   // largest first
} world_segmentation;

// Segments rgb (h, w, 3). Free with segment_free.
void segment_image(world_segmentation *seg, const uint8_t *rgb, int w, int h);
void segment_free(world_segmentation *seg);
// 1 when pixel i lies inside component k and all four of its neighbours do too (the
// component's interior: its antialiased / blurred rim excluded).
int segment_interior(const world_segmentation *seg, int k, int i);
// The component's most frequent palette colour over its interior (the whole component when the
// interior is empty), ignoring unknown pixels; -1 when all are unknown.
int segment_colour(const world_segmentation *seg, int k);
