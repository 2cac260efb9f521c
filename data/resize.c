// PIL-compatible bicubic resampling (the algorithm of Pillow's Resample.c, 8-bit path).
#include "data/resize.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"

#define PRECISION_BITS (32 - 8 - 2)   // Pillow's fixed-point precision for 8-bit images

// Keys cubic with a = -0.5 (PIL's BICUBIC); support 2.
static double bicubic(double x) {
    const double a = -0.5;
    if (x < 0) x = -x;
    if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
    if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
    return 0.0;
}

// For each of the out_size outputs: first input index bounds[2i], tap count bounds[2i+1], and
// ksize fixed-point weights k[i·ksize ..]. Returns ksize; *bounds and *k are malloc'd.
static int precompute_coeffs(int in_size, int out_size, int **bounds_out, int32_t **k_out) {
    double scale = (double)in_size / out_size;
    double filterscale = scale < 1.0 ? 1.0 : scale;
    double support = 2.0 * filterscale;
    int ksize = (int)ceil(support) * 2 + 1;
    double *w = sl_malloc(sizeof(double) * ksize);   // w[ksize]
    int *bounds = sl_malloc(sizeof(int) * 2 * out_size);
    int32_t *k = sl_calloc((size_t)out_size * ksize, sizeof(int32_t));   // (out_size, ksize)
    for (int xx = 0; xx < out_size; xx++) {
        double center = (xx + 0.5) * scale;
        double ss = 1.0 / filterscale, ww = 0.0;
        int xmin = (int)(center - support + 0.5);
        if (xmin < 0) xmin = 0;
        int xmax = (int)(center + support + 0.5);
        if (xmax > in_size) xmax = in_size;
        xmax -= xmin;
        for (int x = 0; x < xmax; x++) {
            w[x] = bicubic((x + xmin - center + 0.5) * ss);
            ww += w[x];
        }
        for (int x = 0; x < xmax; x++) {
            double v = ww != 0.0 ? w[x] / ww : w[x];
            v *= (double)(1 << PRECISION_BITS);
            k[(size_t)xx * ksize + x] = (int32_t)(v < 0 ? -0.5 + v : 0.5 + v);
        }
        bounds[2 * xx] = xmin;
        bounds[2 * xx + 1] = xmax;
    }
    free(w);
    *bounds_out = bounds;
    *k_out = k;
    return ksize;
}

static inline uint8_t clip8(int32_t v) {
    if (v >= (1 << PRECISION_BITS << 8)) return 255;
    if (v <= 0) return 0;
    return (uint8_t)(v >> PRECISION_BITS);
}

void image_resize_bicubic_u8(uint8_t *dst, int dw, int dh, const uint8_t *src, int sw, int sh, int channels) {
    const int C = channels;
    int need_h = dw != sw, need_v = dh != sh;
    if (!need_h && !need_v) { memcpy(dst, src, (size_t)sw * sh * C); return; }
    int *bh = NULL, *bv = NULL;
    int32_t *kh = NULL, *kv = NULL;
    int ksh = need_h ? precompute_coeffs(sw, dw, &bh, &kh) : 0;
    int ksv = need_v ? precompute_coeffs(sh, dh, &bv, &kv) : 0;
    // The horizontal pass runs over the rows the vertical pass reads (as Pillow does).
    int y0 = need_v ? bv[0] : 0;
    int y1 = need_v ? bv[2 * dh - 2] + bv[2 * dh - 1] : sh;
    const uint8_t *mid = src;   // (rows, dw, C), rows starting at source row `mid_row0`
    int mid_row0 = 0;
    uint8_t *tmp = NULL;
    if (need_h) {
        uint8_t *out = need_v ? (tmp = sl_malloc((size_t)(y1 - y0) * dw * C)) : dst;
#pragma omp parallel for schedule(static)
        for (int y = y0; y < y1; y++) {
            const uint8_t *row = src + (size_t)y * sw * C;
            uint8_t *o = out + (size_t)(y - y0) * dw * C;
            for (int xx = 0; xx < dw; xx++) {
                int xmin = bh[2 * xx], n = bh[2 * xx + 1];
                const int32_t *k = kh + (size_t)xx * ksh;
                for (int c = 0; c < C; c++) {
                    int32_t ss = 1 << (PRECISION_BITS - 1);
                    for (int x = 0; x < n; x++) ss += (int32_t)row[(size_t)(x + xmin) * C + c] * k[x];
                    o[(size_t)xx * C + c] = clip8(ss);
                }
            }
        }
        mid = out;
        mid_row0 = y0;
    }
    if (need_v) {
        const int W = need_h ? dw : sw;   // == dw
#pragma omp parallel for schedule(static)
        for (int yy = 0; yy < dh; yy++) {
            int ymin = bv[2 * yy] - mid_row0, n = bv[2 * yy + 1];
            const int32_t *k = kv + (size_t)yy * ksv;
            uint8_t *o = dst + (size_t)yy * W * C;
            for (int i = 0; i < W * C; i++) {
                int32_t ss = 1 << (PRECISION_BITS - 1);
                for (int y = 0; y < n; y++) ss += (int32_t)mid[(size_t)(y + ymin) * W * C + i] * k[y];
                o[i] = clip8(ss);
            }
        }
    }
    free(tmp);
    free(bh);
    free(kh);
    free(bv);
    free(kv);
}

void resize_short_side_hw(int h, int w, int size, int *rh, int *rw) {
    int s = w <= h ? w : h, l = w <= h ? h : w;
    int nl = (int)((double)((int64_t)size * l) / (double)s);   // Python int(size * long / short)
    if (w <= h) { *rw = size; *rh = nl; }
    else { *rh = size; *rw = nl; }
}

int center_crop_offset(int len, int crop) { return (int)rint((len - crop) / 2.0); }
