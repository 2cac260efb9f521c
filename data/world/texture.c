#include "data/world/texture.h"

#include "data/world/palette.h"

#define CELLS 4

static uint8_t clamp_u8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

void texture_background(uint8_t *rgb, int w, int h, int colour, sl_rng *r) {
    int node[CELLS + 1][CELLS + 1];   // offsets + TEXTURE_FIELD_MAX, in [0, 2 * TEXTURE_FIELD_MAX]
    for (int j = 0; j <= CELLS; j++)
        for (int i = 0; i <= CELLS; i++) node[j][i] = (int)sl_rng_randint(r, 2 * TEXTURE_FIELD_MAX + 1);
    const uint8_t *c = palette_rgb(colour);
    int64_t W = w > 1 ? w - 1 : 1, H = h > 1 ? h - 1 : 1;
    for (int y = 0; y < h; y++) {
        int64_t ty = (int64_t)y * CELLS, cy = ty / H, fy = ty % H;
        if (cy >= CELLS) cy = CELLS - 1, fy = H;
        for (int x = 0; x < w; x++) {
            int64_t tx = (int64_t)x * CELLS, cx = tx / W, fx = tx % W;
            if (cx >= CELLS) cx = CELLS - 1, fx = W;
            int64_t v = node[cy][cx] * (W - fx) * (H - fy) + node[cy][cx + 1] * fx * (H - fy) +
                        node[cy + 1][cx] * (W - fx) * fy + node[cy + 1][cx + 1] * fx * fy;
            int off = (int)((v + W * H / 2) / (W * H)) - TEXTURE_FIELD_MAX;
            uint8_t *p = rgb + ((int64_t)y * w + x) * 3;
            for (int k = 0; k < 3; k++) p[k] = clamp_u8(c[k] + off);
        }
    }
}

void texture_grain(uint8_t *rgb, int w, int h, sl_rng *r) {
    for (int64_t i = 0; i < (int64_t)w * h; i++) {
        int off = (int)sl_rng_randint(r, 2 * TEXTURE_GRAIN_MAX + 1) - TEXTURE_GRAIN_MAX;
        for (int k = 0; k < 3; k++) rgb[i * 3 + k] = clamp_u8(rgb[i * 3 + k] + off);
    }
}
