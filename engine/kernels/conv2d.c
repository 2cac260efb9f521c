// 2-D convolution as im2col + GEMM on OpenBLAS.
//
// Per image n: col (K = C_in·k·k, P) holds the input patch of every output pixel, and
//   out_n (C_out, P) = W (C_out, K) · col (K, P) [+ b].
// A 1×1 / stride 1 / pad 0 conv needs no im2col: the image (C_in, H·W) is already col.
// The col buffer is limited to col_max_floats: larger images are done in bands of output rows
// (GEMM writes into out_n's columns [p0, p1) with ldc = P). The buffer is kept per thread and
// reused across calls, so the hot path does not fault in tens of MB of fresh pages every call;
// conv2d_release_workspace() frees it.
#include "engine/kernels/conv2d.h"

#include "engine/core/profile.h"
#include "engine/kernels/gemm.h"
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/tensor.h"

// 16 MB: measured as fast as a whole-image im2col for 320 ch × 64² (bands of 22 rows) with a
// third of the memory.
static int64_t col_max_floats = (int64_t)4 << 20;

void conv2d_set_workspace_limit(int64_t floats) { col_max_floats = floats > 0 ? floats : 1; }

int conv2d_out_h(conv2d_shape s) { return (s.H + 2 * s.pad - s.k) / s.stride + 1; }
int conv2d_out_w(conv2d_shape s) { return (s.W + 2 * s.pad - s.k) / s.stride + 1; }

static _Thread_local float *tl_ws;
static _Thread_local int64_t tl_ws_n;

static float *workspace(int64_t n) {
    if (n > tl_ws_n) {
        sl_free_aligned(tl_ws);
        tl_ws = sl_alloc_f32(n);
        tl_ws_n = n;
    }
    return tl_ws;
}

void conv2d_release_workspace(void) {
    sl_free_aligned(tl_ws);
    tl_ws = NULL;
    tl_ws_n = 0;
}

static int is_pointwise(conv2d_shape s) { return s.k == 1 && s.stride == 1 && s.pad == 0; }

// Output rows per band so that K · rows · W_out ≤ col_max_floats (when possible), bands of near-equal size.
static int band_rows(conv2d_shape s) {
    int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
    int64_t K = (int64_t)s.C_in * s.k * s.k;
    int64_t total = K * Ho * Wo;
    int64_t nb = (total + col_max_floats - 1) / col_max_floats;
    if (nb < 1) nb = 1;
    if (nb > Ho) nb = Ho;
    return (int)((Ho + nb - 1) / nb);
}

// col (C_in·k·k, rows·Wo) for output rows [y0, y0 + rows) of image x (C_in, H, W).
static void im2col(float *col, const float *x, conv2d_shape s, int y0, int rows, int parallel) {
    int Wo = conv2d_out_w(s), k = s.k, st = s.stride, pad = s.pad;
    int64_t P = (int64_t)rows * Wo;
    int R = s.C_in * k * k;
#pragma omp parallel for schedule(static) if (parallel)
    for (int r = 0; r < R; r++) {
        int c = r / (k * k), ki = (r / k) % k, kj = r % k;
        const float *xc = x + (int64_t)c * s.H * s.W;
        float *cr = col + (int64_t)r * P;
        // output columns ox with 0 <= ox·st − pad + kj < W
        int ox_lo = pad - kj > 0 ? (pad - kj + st - 1) / st : 0;
        int ox_hi = (s.W - 1 + pad - kj) >= 0 ? (s.W - 1 + pad - kj) / st + 1 : 0;
        if (ox_hi > Wo) ox_hi = Wo;
        if (ox_lo > ox_hi) ox_lo = ox_hi;
        for (int oy = y0; oy < y0 + rows; oy++) {
            float *dst = cr + (int64_t)(oy - y0) * Wo;
            int iy = oy * st - pad + ki;
            if (iy < 0 || iy >= s.H) {
                memset(dst, 0, sizeof(float) * Wo);
                continue;
            }
            int64_t off = (int64_t)iy * s.W - pad + kj;   // input index of output column 0
            for (int ox = 0; ox < ox_lo; ox++) dst[ox] = 0.0f;
            if (st == 1) {
                if (ox_hi > ox_lo) memcpy(dst + ox_lo, xc + off + ox_lo, sizeof(float) * (ox_hi - ox_lo));
            } else {
                for (int ox = ox_lo; ox < ox_hi; ox++) dst[ox] = xc[off + (int64_t)ox * st];
            }
            for (int ox = ox_hi; ox < Wo; ox++) dst[ox] = 0.0f;
        }
    }
}

// dx (C_in, H, W) += col2im(dcol (C_in·k·k, rows·Wo)) for output rows [y0, y0 + rows).
// Parallel over input channels: channel c owns rows c·k·k .. and writes only plane c.
static void col2im_add(float *dx, const float *dcol, conv2d_shape s, int y0, int rows, int parallel) {
    int Wo = conv2d_out_w(s), k = s.k, st = s.stride, pad = s.pad;
    int64_t P = (int64_t)rows * Wo;
#pragma omp parallel for schedule(static) if (parallel)
    for (int c = 0; c < s.C_in; c++) {
        float *xc = dx + (int64_t)c * s.H * s.W;
        for (int ki = 0; ki < k; ki++)
            for (int kj = 0; kj < k; kj++) {
                const float *cr = dcol + ((int64_t)(c * k + ki) * k + kj) * P;
                int ox_lo = pad - kj > 0 ? (pad - kj + st - 1) / st : 0;
                int ox_hi = (s.W - 1 + pad - kj) >= 0 ? (s.W - 1 + pad - kj) / st + 1 : 0;
                if (ox_hi > Wo) ox_hi = Wo;
                for (int oy = y0; oy < y0 + rows; oy++) {
                    int iy = oy * st - pad + ki;
                    if (iy < 0 || iy >= s.H) continue;
                    const float *src = cr + (int64_t)(oy - y0) * Wo;
                    int64_t off = (int64_t)iy * s.W - pad + kj;
                    if (st == 1)
#pragma omp simd
                        for (int ox = ox_lo; ox < ox_hi; ox++) xc[off + ox] += src[ox];
                    else
                        for (int ox = ox_lo; ox < ox_hi; ox++) xc[off + (int64_t)ox * st] += src[ox];
                }
            }
    }
}

// One image. `inner_parallel`: im2col/col2im may open their own OpenMP region (false when the
// caller already runs one image per thread; the GEMM then runs single-threaded inside it).
// w: the weights (C_out, K) as a GEMM A operand, converted once per call (gemm_pack_a).
static void forward_one(float *out, const float *x, const gemm_packed_a *w, const float *b, conv2d_shape s,
                        int inner_parallel) {
    int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
    int64_t P = (int64_t)Ho * Wo;
    int K = s.C_in * s.k * s.k;
    if (b) {
        for (int co = 0; co < s.C_out; co++) {
            float *o = out + co * P;
            for (int64_t p = 0; p < P; p++) o[p] = b[co];
        }
    }
    float beta = b ? 1.0f : 0.0f;
    if (is_pointwise(s)) {
        gemm_with_packed_a(w, GEMM_N, (int)P, 1.0f, x, (int)P, beta, out, (int)P);
        return;
    }
    int rows = band_rows(s);
    float *col = workspace((int64_t)K * rows * Wo);
    for (int y0 = 0; y0 < Ho; y0 += rows) {
        int r = Ho - y0 < rows ? Ho - y0 : rows;
        int Pc = r * Wo;
        im2col(col, x, s, y0, r, inner_parallel);
        gemm_with_packed_a(w, GEMM_N, Pc, 1.0f, col, Pc, beta, out + (int64_t)y0 * Wo, (int)P);
    }
}

// Work per image below which images are spread over threads (each GEMM single-threaded) rather
// than one multi-threaded GEMM per image.
#define SMALL_IMAGE_FLOPS 2e7

static void conv2d_forward_run(float *out, const float *inp, const float *w, const float *b, conv2d_shape s) {
    int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
    if (s.N <= 0 || s.C_out <= 0 || Ho <= 0 || Wo <= 0) return;
    int64_t in_sz = (int64_t)s.C_in * s.H * s.W, out_sz = (int64_t)s.C_out * Ho * Wo;
    double flops = 2.0 * s.C_out * (double)s.C_in * s.k * s.k * Ho * Wo;
    gemm_packed_a wa;   // every image and band multiplies by the same weights
    gemm_pack_a(&wa, GEMM_N, s.C_out, s.C_in * s.k * s.k, w, s.C_in * s.k * s.k);
    if (s.N > 1 && flops < SMALL_IMAGE_FLOPS && omp_get_max_threads() > 1) {
#pragma omp parallel for schedule(static)
        for (int n = 0; n < s.N; n++) forward_one(out + n * out_sz, inp + n * in_sz, &wa, b, s, 0);
    } else {
        for (int n = 0; n < s.N; n++) forward_one(out + n * out_sz, inp + n * in_sz, &wa, b, s, 1);
    }
    gemm_packed_a_free(&wa);
}

// One image's dinp (C_in, H, W) += convᵀ and dw (C_out, K) += dout_n · colᵀ.
// wt: Wᵀ (K, C_out) as a GEMM A operand, converted once per call (gemm_pack_a; unused when dx is NULL).
static void backward_one(float *dx, float *dw, const float *dout, const float *x, const gemm_packed_a *wt, conv2d_shape s,
                         int inner_parallel) {
    int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
    int64_t P = (int64_t)Ho * Wo;
    int K = s.C_in * s.k * s.k;
    if (is_pointwise(s)) {
        if (dw)   // dw (C_out, C_in) += dout_n (C_out, P) · x_nᵀ (P, C_in)
            gemm(GEMM_N, GEMM_T, s.C_out, K, (int)P, 1.0f, dout, (int)P, x, (int)P, 1.0f, dw, K);
        if (dx)   // dx_n (C_in, P) += Wᵀ (C_in, C_out) · dout_n (C_out, P)
            gemm_with_packed_a(wt, GEMM_N, (int)P, 1.0f, dout, (int)P, 1.0f, dx, (int)P);
        return;
    }
    int rows = band_rows(s);
    float *col = workspace((int64_t)K * rows * Wo);   // col for dw, then reused as dcol for dx
    for (int y0 = 0; y0 < Ho; y0 += rows) {
        int r = Ho - y0 < rows ? Ho - y0 : rows;
        int Pc = r * Wo;
        const float *dout_b = dout + (int64_t)y0 * Wo;   // (C_out, Pc) with row stride P
        if (dw) {
            im2col(col, x, s, y0, r, inner_parallel);
            gemm(GEMM_N, GEMM_T, s.C_out, K, Pc, 1.0f, dout_b, (int)P, col, Pc, 1.0f, dw, K);
        }
        if (dx) {   // dcol (K, Pc) = Wᵀ (K, C_out) · dout_b (C_out, Pc)
            gemm_with_packed_a(wt, GEMM_N, Pc, 1.0f, dout_b, (int)P, 0.0f, col, Pc);
            col2im_add(dx, col, s, y0, r, inner_parallel);
        }
    }
}

static void conv2d_backward_run(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                     conv2d_shape s) {
    int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
    if (s.N <= 0 || s.C_out <= 0 || Ho <= 0 || Wo <= 0) return;
    int64_t in_sz = (int64_t)s.C_in * s.H * s.W, out_sz = (int64_t)s.C_out * Ho * Wo;
    int64_t P = (int64_t)Ho * Wo;
    if (db) {   // db[co] += Σ_{n,p} dout; a thread per channel block, batch summed in order
#pragma omp parallel for schedule(static)
        for (int co = 0; co < s.C_out; co++) {
            double acc = 0.0;
            for (int n = 0; n < s.N; n++) {
                const float *d = dout + n * out_sz + co * P;
                for (int64_t p = 0; p < P; p++) acc += d[p];
            }
            db[co] += (float)acc;
        }
    }
    if (!dinp && !dw) return;
    // dw sums over the batch, so images run one after another (the GEMMs are multi-threaded);
    // with dw == NULL small images could run per thread, but one path keeps results identical.
    gemm_packed_a wt = {0};
    if (dinp) gemm_pack_a(&wt, GEMM_T, s.C_in * s.k * s.k, s.C_out, w, s.C_in * s.k * s.k);
    for (int n = 0; n < s.N; n++)
        backward_one(dinp ? dinp + n * in_sz : NULL, dw, dout + n * out_sz, inp + n * in_sz, &wt, s, 1);
    gemm_packed_a_free(&wt);
}

// ---------------------------------------------------------------- entry points (counted by --profile)

// FLOPs of `passes` GEMMs of the convolution's size (forward: 1; backward: dinp and/or dw).
static double conv_flops(conv2d_shape s, int passes) {
    return 2.0 * s.N * s.C_out * (double)s.C_in * s.k * s.k * conv2d_out_h(s) * conv2d_out_w(s) * passes;
}

void conv2d_forward(float *out, const float *inp, const float *w, const float *b, conv2d_shape s) {
    PROFILED(PROF_CONV, 0, conv_flops(s, 1), conv2d_forward_run(out, inp, w, b, s));
}

void conv2d_backward(float *dinp, float *dw, float *db, const float *dout, const float *inp, const float *w,
                     conv2d_shape s) {
    PROFILED(PROF_CONV, 1, conv_flops(s, (dinp != NULL) + (dw != NULL)), conv2d_backward_run(dinp, dw, db, dout, inp, w, s));
}
