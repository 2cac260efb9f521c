// SiLU, GELU (erf), QuickGELU, GEGLU against double formulas and finite differences.
#include <stdlib.h>

#include "engine/kernels/activations.h"
#include "tests/kernel_check.h"

static double d_sig(double x) { return 1.0 / (1.0 + exp(-x)); }
static double d_silu(double x) { return x * d_sig(x); }
static double d_gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }
static double d_qgelu(double x) { return x * d_sig(1.702 * x); }

typedef struct {
    double (*f)(double);
    double *x;
    const float *R;
    int64_t n;
} act_ctx;

static double act_loss(void *p) {
    act_ctx *c = p;
    double s = 0;
    for (int64_t i = 0; i < c->n; i++) s += c->f(c->x[i]) * c->R[i];
    return s;
}

typedef void (*fwd_fn)(float *, const float *, int64_t);
typedef void (*bwd_fn)(float *, const float *, const float *, int64_t);

static void check_act(const char *name, fwd_fn fwd, bwd_fn bwd, double (*ref)(double)) {
    int64_t n = 1001;
    float *x = rand_f32(n, 21, -8, 8), *R = rand_f32(n, 22, -1, 1);
    x[0] = 0.0f, x[1] = -30.0f, x[2] = 30.0f;   // saturation ends must stay finite
    float *y = malloc(sizeof(float) * n);
    double *yr = malloc(sizeof(double) * n);
    fwd(y, x, n);
    for (int64_t i = 0; i < n; i++) yr[i] = ref((double)x[i]);
    char label[64];
    snprintf(label, sizeof label, "%s forward", name);
    check_close_f64(label, y, yr, n, 1e-5);   // |y| ≤ 30, f32 ulp-level errors: ≤ ~4e-6
    // in place
    float *xi = malloc(sizeof(float) * n);
    for (int64_t i = 0; i < n; i++) xi[i] = x[i];
    fwd(xi, xi, n);
    for (int64_t i = 0; i < n; i++) CHECK(xi[i] == y[i]);
    float *dx = const_f32(n, 0.5f);
    bwd(dx, R, x, n);
    act_ctx c = {ref, to_f64(x, n), R, n};
    double *g = malloc(sizeof(double) * n);
    fd_grad(act_loss, &c, c.x, n, g, 1e-6);
    snprintf(label, sizeof label, "%s backward", name);
    // f32 evaluation of the derivative formula: a few ulp of O(1) values → 1e-5 is ample.
    check_grad(label, dx, 0.5f, g, n, 1e-5);
    free(x), free(R), free(y), free(yr), free(xi), free(dx), free(c.x), free(g);
}

TEST(silu_forward_backward) { check_act("silu", silu_forward, silu_backward, d_silu); }
TEST(gelu_forward_backward) { check_act("gelu", gelu_forward, gelu_backward, d_gelu); }
TEST(quick_gelu_forward_backward) { check_act("quick_gelu", quick_gelu_forward, quick_gelu_backward, d_qgelu); }

typedef struct {
    double *h;
    const float *R;
    int M, F;
} geglu_ctx;

static void ref_geglu(const double *h, double *out, int M, int F) {
    for (int m = 0; m < M; m++)
        for (int f = 0; f < F; f++) out[m * F + f] = h[m * 2 * F + f] * d_gelu(h[m * 2 * F + F + f]);
}

static double geglu_loss(void *p) {
    geglu_ctx *c = p;
    double *o = malloc(sizeof(double) * c->M * c->F);
    ref_geglu(c->h, o, c->M, c->F);
    double s = dot_f64(o, c->R, (int64_t)c->M * c->F);
    free(o);
    return s;
}

TEST(geglu_forward_backward) {
    int M = 7, F = 13;
    float *h = rand_f32(M * 2 * F, 31, -4, 4), *R = rand_f32(M * F, 32, -1, 1);
    float *y = malloc(sizeof(float) * M * F);
    double *yr = malloc(sizeof(double) * M * F);
    geglu_forward(y, h, M, F);
    double *hd = to_f64(h, M * 2 * F);
    ref_geglu(hd, yr, M, F);
    check_close_f64("geglu forward", y, yr, M * F, 1e-5);
    float *dh = const_f32(M * 2 * F, 0.5f);
    geglu_backward(dh, R, h, M, F);
    geglu_ctx c = {hd, R, M, F};
    double *g = malloc(sizeof(double) * M * 2 * F);
    fd_grad(geglu_loss, &c, hd, M * 2 * F, g, 1e-6);
    check_grad("geglu backward", dh, 0.5f, g, M * 2 * F, 1e-5);
    free(h), free(R), free(y), free(yr), free(hd), free(dh), free(g);
}

#include "engine/kernels/fast_exp.h"

// fast_expf (softmax, SiLU, sigmoid) against double exp over its whole range.
TEST(fast_expf_accuracy) {
    double worst = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -87.0f + 175.0f * (float)i / 2000000.0f;
        double want = exp((double)x), rel = fabs(fast_expf(x) - want) / want;
        worst = rel > worst ? rel : worst;
    }
    fprintf(stderr, "    fast_expf max rel err %.3g on [-87, 88]\n", worst);
    CHECK(worst < 3.6e-7);   // 3 ulp of f32 (2⁻²³ ≈ 1.19e-7)
    CHECK(fast_expf(0.0f) == 1.0f);
    CHECK(fast_expf(-1000.0f) < 1e-37f && fast_expf(-1000.0f) >= 0.0f);
    CHECK(isfinite(fast_expf(1000.0f)));
}

#include "engine/kernels/fast_erf.h"

// fast_one_plus_erff (GELU) against double 1 + erf(x) = erfc(−x): relative error over [-9, 9]
// (1 + erf(−9) = 4e-37, near the bottom of f32's normal range), and the values at 0 and far out.
TEST(fast_one_plus_erff_accuracy) {
    double worst = 0, worst_abs = 0;
    for (int i = 0; i <= 2000000; i++) {
        float x = -9.0f + 18.0f * (float)i / 2000000.0f;
        double want = erfc(-(double)x), err = fabs(fast_one_plus_erff(x) - want);   // = 1 + erf(x), exact in the tail
        worst = err / want > worst ? err / want : worst;
        worst_abs = err > worst_abs ? err : worst_abs;
    }
    fprintf(stderr, "    fast_one_plus_erff max rel err %.3g, max abs err %.3g on [-9, 9]\n", worst, worst_abs);
    // relative: the f32 rounding of z² inside exp(−z² + …) costs up to ~z²·2⁻²⁴ (7.7e-6 at z = 9)
    CHECK(worst < 1e-5);
    CHECK(worst_abs < 5e-7);   // 4 ulp of values near 2
    CHECK(fabs(fast_one_plus_erff(0.0f) - 1.0f) < 3e-7);
    CHECK(fast_one_plus_erff(30.0f) == 2.0f);
    CHECK(fast_one_plus_erff(-30.0f) >= 0.0f && fast_one_plus_erff(-30.0f) < 1e-30f);
    CHECK(isnan(fast_one_plus_erff(NAN)));
}
