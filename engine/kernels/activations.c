// Element-wise activations (SiLU, exact GELU, QuickGELU) and GEGLU, forward and backward.
#include "engine/kernels/activations.h"

#include <math.h>

#include "engine/core/profile.h"
#include "engine/kernels/fast_erf.h"
#include "engine/kernels/fast_exp.h"

#define INV_SQRT2 0.70710678118654752440f
#define INV_SQRT_2PI 0.39894228040143267794f

static inline float sigmoidf(float x) { return 1.0f / (1.0f + fast_expf(-x)); }
static inline float gelu1(float x) { return 0.5f * x * fast_one_plus_erff(x * INV_SQRT2); }
// d/dx [x·Φ(x)] = Φ(x) + x·φ(x)
static inline float gelu1_grad(float x) {
    return 0.5f * fast_one_plus_erff(x * INV_SQRT2) + x * INV_SQRT_2PI * fast_expf(-0.5f * x * x);
}

static void silu_forward_run(float *out, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * sigmoidf(x[i]);
}

// d/dx [x·σ(x)] = σ(x)·(1 + x·(1 − σ(x)))
static void silu_backward_run(float *dx, const float *dout, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float s = sigmoidf(x[i]);
        dx[i] += dout[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

static void gelu_forward_run(float *out, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = gelu1(x[i]);
}

static void gelu_backward_run(float *dx, const float *dout, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) dx[i] += dout[i] * gelu1_grad(x[i]);
}

static void quick_gelu_forward_run(float *out, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) out[i] = x[i] * sigmoidf(1.702f * x[i]);
}

// d/dx [x·σ(a·x)] = σ(a·x) + a·x·σ(a·x)·(1 − σ(a·x))
static void quick_gelu_backward_run(float *dx, const float *dout, const float *x, int64_t n) {
#pragma omp parallel for simd schedule(static)
    for (int64_t i = 0; i < n; i++) {
        float s = sigmoidf(1.702f * x[i]);
        dx[i] += dout[i] * (s + 1.702f * x[i] * s * (1.0f - s));
    }
}

static void geglu_forward_run(float *out, const float *h, int M, int F) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *a = h + (int64_t)m * 2 * F;   // (F) value half
        const float *g = a + F;                    // (F) gate half
        float *o = out + (int64_t)m * F;
#pragma omp simd
        for (int f = 0; f < F; f++) o[f] = a[f] * gelu1(g[f]);
    }
}

static void geglu_backward_run(float *dh, const float *dout, const float *h, int M, int F) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *a = h + (int64_t)m * 2 * F, *g = a + F;
        const float *d = dout + (int64_t)m * F;
        float *da = dh + (int64_t)m * 2 * F, *dg = da + F;
#pragma omp simd
        for (int f = 0; f < F; f++) {
            da[f] += d[f] * gelu1(g[f]);
            dg[f] += d[f] * a[f] * gelu1_grad(g[f]);
        }
    }
}

// ---------------------------------------------------------------- entry points (counted by --profile)

void silu_forward(float *out, const float *x, int64_t n) {
    PROFILED(PROF_ACTIVATION, 0, 0, silu_forward_run(out, x, n));
}

void silu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    PROFILED(PROF_ACTIVATION, 1, 0, silu_backward_run(dx, dout, x, n));
}

void gelu_forward(float *out, const float *x, int64_t n) {
    PROFILED(PROF_ACTIVATION, 0, 0, gelu_forward_run(out, x, n));
}

void gelu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    PROFILED(PROF_ACTIVATION, 1, 0, gelu_backward_run(dx, dout, x, n));
}

void quick_gelu_forward(float *out, const float *x, int64_t n) {
    PROFILED(PROF_ACTIVATION, 0, 0, quick_gelu_forward_run(out, x, n));
}

void quick_gelu_backward(float *dx, const float *dout, const float *x, int64_t n) {
    PROFILED(PROF_ACTIVATION, 1, 0, quick_gelu_backward_run(dx, dout, x, n));
}

void geglu_forward(float *out, const float *h, int M, int F) {
    PROFILED(PROF_ACTIVATION, 0, 0, geglu_forward_run(out, h, M, F));
}

void geglu_backward(float *dh, const float *dout, const float *h, int M, int F) {
    PROFILED(PROF_ACTIVATION, 1, 0, geglu_backward_run(dh, dout, h, M, F));
}
