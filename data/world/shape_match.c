#include "data/world/shape_match.h"

#include <stdlib.h>
#include <string.h>

#include "data/world/blur.h"
#include "data/world/palette.h"
#include "data/world/scene.h"
#include "engine/core/error.h"

#define SUB 4   // samples per grid cell side

void match_normalize(const world_segmentation *seg, int k, float *grid) {
    const seg_component *c = &seg->comp[k];
    int bw = c->x1 - c->x0 + 1, bh = c->y1 - c->y0 + 1, side = bw > bh ? bw : bh;
    // source position of grid sample s (of MATCH_GRID * SUB along an axis), box centred
    double ox = c->x0 - (side - bw) / 2.0, oy = c->y0 - (side - bh) / 2.0, step = (double)side / (MATCH_GRID * SUB);
    for (int gy = 0; gy < MATCH_GRID; gy++)
        for (int gx = 0; gx < MATCH_GRID; gx++) {
            int hit = 0;
            for (int sy = 0; sy < SUB; sy++)
                for (int sx = 0; sx < SUB; sx++) {
                    int x = (int)(ox + ((gx * SUB + sx) + 0.5) * step), y = (int)(oy + ((gy * SUB + sy) + 0.5) * step);
                    if (x >= 0 && y >= 0 && x < seg->w && y < seg->h && seg->label[y * seg->w + x] == k) hit++;
                }
            grid[gy * MATCH_GRID + gx] = (float)hit / (SUB * SUB);
        }
}

float match_iou(const float *a, const float *b) {
    double mn = 0, mx = 0;
    for (int i = 0; i < MATCH_GRID * MATCH_GRID; i++) {
        mn += a[i] < b[i] ? a[i] : b[i];
        mx += a[i] > b[i] ? a[i] : b[i];
    }
    return mx > 0 ? (float)(mn / mx) : 0.f;
}

// templates[N_SHAPES][N_TEMPLATES][MATCH_GRID * MATCH_GRID]: each shape drawn white on black,
// centred, at 64 px with the sizes the world uses (8, 12, 16 px) and at 128 px large (r = 45 px),
// each crisp and after 1, 2 and 3 box-blur passes
#define N_SIZES 4
#define N_BLURS 4
#define N_TEMPLATES (N_SIZES * N_BLURS)
static float templates[N_SHAPES][N_TEMPLATES][MATCH_GRID * MATCH_GRID];
static int template_ok[N_SHAPES][N_TEMPLATES];
static int templates_ready;

static void build_templates(void) {
    static const int SIZE[N_SIZES] = {64, 64, 64, 128}, R[N_SIZES] = {128, 192, 256, 360};
    uint8_t *rgb = sl_malloc(128 * 128 * 3);
    for (int s = 0; s < N_SHAPES; s++)
        for (int z = 0; z < N_SIZES; z++)
            for (int b = 0; b < N_BLURS; b++) {
                world_scene sc = {.n_objects = 1, .background = COL_BLACK, .texture_seed = 1};
                sc.obj[0] = (world_object){.shape = s, .colour = COL_WHITE, .cx = WORLD_UNITS / 2, .cy = WORLD_UNITS / 2, .r = R[z]};
                scene_render(&sc, SIZE[z], rgb);
                blur_box3(rgb, SIZE[z], SIZE[z], b);
                world_segmentation seg;
                segment_image(&seg, rgb, SIZE[z], SIZE[z]);
                int t = z * N_BLURS + b;
                if (seg.n_comp > 0) match_normalize(&seg, 0, templates[s][t]), template_ok[s][t] = 1;
                segment_free(&seg);
            }
    free(rgb);
    templates_ready = 1;
}

int match_shape(const world_segmentation *seg, int k, float *iou) {
    #pragma omp critical(world_templates)
    if (!templates_ready) build_templates();
    float grid[MATCH_GRID * MATCH_GRID];
    match_normalize(seg, k, grid);
    int best = 0;
    for (int s = 0; s < N_SHAPES; s++) {
        iou[s] = 0;
        for (int t = 0; t < N_TEMPLATES; t++)
            if (template_ok[s][t]) {
                float v = match_iou(grid, templates[s][t]);
                if (v > iou[s]) iou[s] = v;
            }
        if (iou[s] > iou[best]) best = s;
    }
    return best;
}
