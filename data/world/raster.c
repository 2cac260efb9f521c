#include "data/world/raster.h"

#include "data/world/palette.h"

void raster_paint(uint8_t *rgb, int w, int h, int x0, int y0, int x1, int y1, raster_paint_fn paint,
                  const void *ctx) {
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > w) x1 = w;
    if (y1 > h) y1 = h;
    for (int py = y0; py < y1; py++)
        for (int px = x0; px < x1; px++) {
            uint8_t *p = rgb + ((int64_t)py * w + px) * 3;
            int sum[3] = {0, 0, 0}, covered = 0;
            for (int sy = 0; sy < RASTER_SS; sy++)
                for (int sx = 0; sx < RASTER_SS; sx++) {
                    int64_t x = (int64_t)px * RASTER_UNIT + 2 * sx + 1, y = (int64_t)py * RASTER_UNIT + 2 * sy + 1;
                    int c = paint(ctx, x, y);
                    if (c < 0) continue;
                    const uint8_t *q = palette_rgb(c);
                    for (int k = 0; k < 3; k++) sum[k] += q[k];
                    covered++;
                }
            if (!covered) continue;
            const int n = RASTER_SS * RASTER_SS;
            for (int k = 0; k < 3; k++) p[k] = (uint8_t)((sum[k] + (n - covered) * p[k] + n / 2) / n);
        }
}
