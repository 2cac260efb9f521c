// Helpers shared by the kernel tests: double copies of f32 data, central finite differences of a
// double-precision reference loss, and a normalised gradient comparison.
#pragma once
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "tests/test.h"

static inline double *to_f64(const float *x, int64_t n) {
    double *d = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

static inline float *f32_of(const double *x, int64_t n) {
    float *f = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) f[i] = (float)x[i];
    return f;
}

static inline float *rand_f32(int64_t n, uint64_t seed, float lo, float hi) {
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    fill_uniform(x, (size_t)n, seed, lo, hi);
    return x;
}

static inline float *const_f32(int64_t n, float c) {
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    for (int64_t i = 0; i < n; i++) x[i] = c;
    return x;
}

// g[i] = (L(x + h·e_i) − L(x − h·e_i)) / 2h for the double reference loss L(ctx), which reads x.
// With a double forward and h = 1e-6 the truncation error is O(h²·L''') ≈ 1e-12 and the rounding
// error O(1e-16·|L|/h) ≈ 1e-10·|L|, far below the f32 error of the kernel under test.
static inline void fd_grad(double (*loss)(void *), void *ctx, double *x, int64_t n, double *g, double h) {
    for (int64_t i = 0; i < n; i++) {
        double x0 = x[i];
        x[i] = x0 + h;
        double lp = loss(ctx);
        x[i] = x0 - h;
        double lm = loss(ctx);
        x[i] = x0;
        g[i] = (lp - lm) / (2 * h);
    }
}

// Compares an analytic f32 gradient that was accumulated onto `base` (checks += semantics) with a
// finite-difference gradient. Error is relative to the largest |reference| entry (entries near zero
// would make a per-entry ratio meaningless). Prints and returns it; fails the test above tol.
static inline double check_grad(const char *label, const float *got, float base, const double *want, int64_t n,
                                double tol) {
    double mx = 0, err = 0;
    for (int64_t i = 0; i < n; i++) mx = fabs(want[i]) > mx ? fabs(want[i]) : mx;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs(((double)got[i] - base) - want[i]);
        if (isnan(got[i])) e = INFINITY;
        err = e > err ? e : err;
    }
    double rel = err / (mx > 0 ? mx : 1.0);
    fprintf(stderr, "    %-40s grad rel err %.3g  (max |ref| %.3g, tol %.3g)\n", label, rel, mx, tol);
    if (!(rel <= tol)) test_fail_at(__FILE__, __LINE__, "%s: gradient rel error %.3g > %.3g", label, rel, tol);
    return rel;
}

// Forward comparison against a double reference.
static inline void check_close_f64(const char *label, const float *got, const double *want, int64_t n, double tol) {
    float *w = f32_of(want, n);
    check_close(label, got, w, (size_t)n, tol);
    free(w);
}

// L = Σ out·R in double.
static inline double dot_f64(const double *a, const float *r, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * r[i];
    return s;
}
