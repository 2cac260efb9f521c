#include "data/world/blur.h"

#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"

void blur_box3(uint8_t *rgb, int w, int h, int passes) {
    if (passes <= 0) return;
    size_t n = (size_t)w * h * 3;
    uint8_t *t = sl_malloc(n);
    for (int it = 0; it < passes; it++) {
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++)
                for (int c = 0; c < 3; c++) {
                    int s = 0, m = 0;
                    for (int yy = y - 1; yy <= y + 1; yy++)
                        for (int xx = x - 1; xx <= x + 1; xx++)
                            if (xx >= 0 && yy >= 0 && xx < w && yy < h) s += rgb[((size_t)yy * w + xx) * 3 + c], m++;
                    t[((size_t)y * w + x) * 3 + c] = (uint8_t)((s + m / 2) / m);
                }
        memcpy(rgb, t, n);
    }
    free(t);
}
