// Linear layer: y = x·Wᵀ + b with W (d_out, d_in) row-major (PyTorch layout). All work is GEMM.
#include "engine/kernels/linear.h"

#include "engine/core/profile.h"
#include "engine/kernels/gemm.h"
#include <stdint.h>

static void linear_forward_run(float *y, const float *x, const float *w, const float *b, int M, int d_in, int d_out) {
    if (M <= 0 || d_out <= 0) return;
    // y (M, d_out) starts as the bias rows so the GEMM can accumulate into it (beta = 1).
    if (b) {
#pragma omp parallel for schedule(static)
        for (int m = 0; m < M; m++) {
            float *yr = y + (int64_t)m * d_out;
            for (int o = 0; o < d_out; o++) yr[o] = b[o];
        }
    }
    if (d_in <= 0) {
        if (!b)
            for (int64_t i = 0; i < (int64_t)M * d_out; i++) y[i] = 0.0f;
        return;
    }
    gemm(GEMM_N, GEMM_T, M, d_out, d_in, 1.0f, x, d_in, w, d_in, b ? 1.0f : 0.0f, y, d_out);
}

static void linear_backward_run(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M,
                     int d_in, int d_out) {
    if (M <= 0 || d_out <= 0) return;
    // dx (M, d_in) += dy (M, d_out) · W (d_out, d_in)
    if (dx && d_in > 0)
        gemm(GEMM_N, GEMM_N, M, d_in, d_out, 1.0f, dy, d_out, w, d_in, 1.0f, dx, d_in);
    // dw (d_out, d_in) += dyᵀ (d_out, M) · x (M, d_in)
    if (dw && d_in > 0)
        gemm(GEMM_T, GEMM_N, d_out, d_in, M, 1.0f, dy, d_out, x, d_in, 1.0f, dw, d_in);
    // db (d_out) += column sums of dy; each thread owns a block of columns and sums rows in order,
    // so the result does not depend on the thread count.
    if (db) {
        const int CB = 64;
        int nblk = (d_out + CB - 1) / CB;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < nblk; blk++) {
            int o0 = blk * CB, o1 = o0 + CB < d_out ? o0 + CB : d_out;
            double acc[64] = {0};
            for (int m = 0; m < M; m++) {
                const float *r = dy + (int64_t)m * d_out;
                for (int o = o0; o < o1; o++) acc[o - o0] += r[o];
            }
            for (int o = o0; o < o1; o++) db[o] += (float)acc[o - o0];
        }
    }
}

// ---------------------------------------------------------------- entry points (counted by --profile)

void linear_forward(float *y, const float *x, const float *w, const float *b, int M, int d_in, int d_out) {
    PROFILED(PROF_LINEAR, 0, 2.0 * M * (double)d_in * d_out, linear_forward_run(y, x, w, b, M, d_in, d_out));
}

void linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w, int M,
                     int d_in, int d_out) {
    PROFILED(PROF_LINEAR, 1, 2.0 * M * (double)d_in * d_out * ((dx != NULL) + (dw != NULL)), linear_backward_run(dx, dw, db, dy, x, w, M, d_in, d_out));
}
