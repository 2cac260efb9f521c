// A grid of equally sized images, filled one cell at a time (sample grids, validation grids,
// evaluation sheets): cols = ceil(sqrt(n)), rows = ceil(n / cols), empty cells black.
#pragma once

typedef struct {
    int n, rows, cols;
    int C, H, W;       // one cell (C, H, W)
    float *pixels;     // (C, rows·H, cols·W) in [-1, 1]
} image_grid;

void image_grid_init(image_grid *g, int n, int C, int H, int W);
// Copies img (C, H, W) into cell k (row-major order).
void image_grid_put(image_grid *g, int k, const float *img);
// Writes the grid as a PNG. 0, or -1 with sl_error.
int image_grid_save(const image_grid *g, const char *path);
void image_grid_free(image_grid *g);
