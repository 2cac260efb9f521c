// Antialiased compositing in integers: every pixel holds RASTER_SS x RASTER_SS samples, a
// paint function says which palette colour (or none) covers each sample, and the pixel becomes
// the rounded mean of the painted colours and its own value for the uncovered samples.
#pragma once
#include <stdint.h>

#define RASTER_SS 4                    // samples per pixel side (16 per pixel)
#define RASTER_UNIT (2 * RASTER_SS)    // coordinate units per pixel; sample centres are odd units

// The palette colour painted at the sample (x, y) (in RASTER_UNIT units), or -1 for none.
typedef int (*raster_paint_fn)(const void *ctx, int64_t x, int64_t y);

// Paints the pixels of rgb (h, w, 3) inside the box [x0, x1) x [y0, y1) (clipped to the image).
void raster_paint(uint8_t *rgb, int w, int h, int x0, int y0, int x1, int y1, raster_paint_fn paint,
                  const void *ctx);
