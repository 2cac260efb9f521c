#include "data/world/segment.h"

#include <stdlib.h>
#include <string.h>

#include "data/world/palette.h"
#include "engine/core/error.h"

void segment_free(world_segmentation *seg) {
    free(seg->cls);
    free(seg->label);
    memset(seg, 0, sizeof *seg);
}

static int by_area_desc(const void *a, const void *b) {
    const seg_component *x = a, *y = b;
    if (x->area != y->area) return y->area - x->area;
    return x->label - y->label;
}

void segment_image(world_segmentation *seg, const uint8_t *rgb, int w, int h) {
    memset(seg, 0, sizeof *seg);
    int n = w * h;
    seg->w = w, seg->h = h;
    seg->cls = sl_malloc((size_t)n);
    seg->label = sl_malloc(sizeof(int) * (size_t)n);
    int count[N_COLOURS] = {0};
    for (int i = 0; i < n; i++) {
        int c = palette_classify(rgb[3 * i], rgb[3 * i + 1], rgb[3 * i + 2]);
        seg->cls[i] = (int8_t)c;
        if (c >= 0) count[c]++;
        seg->label[i] = -1;
    }
    int bg = 0;
    for (int c = 1; c < N_COLOURS; c++)
        if (count[c] > count[bg]) bg = c;
    seg->background = (int64_t)count[bg] * 100 >= (int64_t)n * SEG_MIN_BACKGROUND_PCT ? bg : -1;
    if (seg->background < 0) return;

    // background pixels: of the background colour with at least SEG_BG_NEIGHBOURS of the 3x3
    // around them too (outside the image counts as background), so that the hairlines where
    // two colours of an object blend into something near the background's colour (black on
    // yellow reads as brown) stay inside the object
    uint8_t *is_bg = sl_malloc((size_t)n);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int i = y * w + x, m = 0;
            if (seg->cls[i] == bg)
                for (int dy = -1; dy <= 1; dy++)
                    for (int dx = -1; dx <= 1; dx++) {
                        int xx = x + dx, yy = y + dy;
                        m += xx < 0 || yy < 0 || xx >= w || yy >= h || seg->cls[yy * w + xx] == bg;
                    }
            is_bg[i] = m >= SEG_BG_NEIGHBOURS;
        }
    // 4-connected components of the other pixels (flood fill with an explicit stack)
    int *stack = sl_malloc(sizeof(int) * (size_t)n);
    int *tmp = sl_malloc(sizeof(int) * (size_t)n);   // provisional labels
    for (int i = 0; i < n; i++) tmp[i] = -1;
    seg_component all[SEG_MAX_COMPONENTS + 1];
    int n_all = 0, next = 0;
    int min_area = n / SEG_MIN_AREA_DIV, max_area = (int)((int64_t)n * SEG_MAX_AREA_PCT / 100);
    for (int i = 0; i < n; i++) {
        if (is_bg[i] || tmp[i] >= 0) continue;
        int lab = next++, sp = 0, area = 0;
        seg_component c = {.label = lab, .x0 = w, .y0 = h, .x1 = -1, .y1 = -1};
        stack[sp++] = i;
        tmp[i] = lab;
        while (sp) {
            int p = stack[--sp], x = p % w, y = p / w;
            area++;
            if (x < c.x0) c.x0 = x;
            if (x > c.x1) c.x1 = x;
            if (y < c.y0) c.y0 = y;
            if (y > c.y1) c.y1 = y;
            int nb[4] = {x > 0 ? p - 1 : -1, x < w - 1 ? p + 1 : -1, y > 0 ? p - w : -1, y < h - 1 ? p + w : -1};
            for (int k = 0; k < 4; k++) {
                int q = nb[k];
                if (q >= 0 && tmp[q] < 0 && !is_bg[q]) {
                    tmp[q] = lab;
                    stack[sp++] = q;
                }
            }
        }
        c.area = area;
        if (area < min_area || area > max_area) continue;
        // keep the SEG_MAX_COMPONENTS largest
        all[n_all++] = c;
        qsort(all, (size_t)n_all, sizeof all[0], by_area_desc);
        if (n_all > SEG_MAX_COMPONENTS) n_all = SEG_MAX_COMPONENTS;
    }
    seg->n_comp = n_all;
    memcpy(seg->comp, all, sizeof all[0] * (size_t)n_all);
    // final labels: the index k in comp[] of the component each kept pixel belongs to
    for (int i = 0; i < n; i++) {
        if (tmp[i] < 0) continue;
        for (int k = 0; k < n_all; k++)
            if (all[k].label == tmp[i]) { seg->label[i] = k; break; }
    }
    for (int k = 0; k < n_all; k++) seg->comp[k].label = k;
    free(stack);
    free(tmp);
    free(is_bg);
}

int segment_interior(const world_segmentation *seg, int k, int i) {
    int w = seg->w, x = i % w, y = i / w;
    if (seg->label[i] != k || x == 0 || y == 0 || x == w - 1 || y == seg->h - 1) return 0;
    return seg->label[i - 1] == k && seg->label[i + 1] == k && seg->label[i - w] == k && seg->label[i + w] == k;
}

int segment_colour(const world_segmentation *seg, int k) {
    const seg_component *c = &seg->comp[k];
    for (int pass = 0; pass < 2; pass++) {
        int count[N_COLOURS] = {0}, any = 0;
        for (int y = c->y0; y <= c->y1; y++)
            for (int x = c->x0; x <= c->x1; x++) {
                int i = y * seg->w + x;
                if (pass == 0 ? !segment_interior(seg, k, i) : seg->label[i] != k) continue;
                if (seg->cls[i] >= 0) count[seg->cls[i]]++, any = 1;
            }
        if (!any) continue;
        int best = 0;
        for (int q = 1; q < N_COLOURS; q++)
            if (count[q] > count[best]) best = q;
        return best;
    }
    return -1;
}
