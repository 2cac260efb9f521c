#include "data/image_grid.h"

#include <string.h>

#include "data/image.h"
#include "engine/core/tensor.h"

void image_grid_init(image_grid *g, int n, int C, int H, int W) {
    int cols = 1;
    while (cols * cols < n) cols++;
    *g = (image_grid){.n = n, .rows = (n + cols - 1) / cols, .cols = cols, .C = C, .H = H, .W = W};
    int64_t total = (int64_t)C * g->rows * H * cols * W;
    g->pixels = sl_alloc_f32(total);
    for (int64_t k = 0; k < total; k++) g->pixels[k] = -1.0f;   // black
}

void image_grid_put(image_grid *g, int k, const float *img) {
    int gx = k % g->cols, gy = k / g->cols, GW = g->cols * g->W, GH = g->rows * g->H;
    for (int c = 0; c < g->C; c++)
        for (int y = 0; y < g->H; y++)
            memcpy(g->pixels + ((size_t)c * GH + (size_t)gy * g->H + y) * GW + (size_t)gx * g->W,
                   img + ((size_t)c * g->H + y) * g->W, sizeof(float) * (size_t)g->W);
}

int image_grid_save(const image_grid *g, const char *path) {
    return image_save_png(path, g->pixels, g->C, g->rows * g->H, g->cols * g->W);
}

void image_grid_free(image_grid *g) {
    sl_free_aligned(g->pixels);
    g->pixels = NULL;
}
