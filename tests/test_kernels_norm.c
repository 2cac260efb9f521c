// GroupNorm (+ fused SiLU) and LayerNorm against double loops and finite differences.
#include <stdlib.h>

#include "engine/kernels/norm.h"
#include "tests/kernel_check.h"
#include "tests/reference.h"


TEST(groupnorm_forward_matches_naive) {
    int cfg[][4] = {{1, 4, 1, 1}, {2, 6, 15, 3}, {3, 12, 7, 4}, {2, 32, 35, 8}};   // N, C, HW, G
    for (int t = 0; t < 4; t++)
        for (int silu = 0; silu < 2; silu++) {
            int N = cfg[t][0], C = cfg[t][1], HW = cfg[t][2], G = cfg[t][3];
            int64_t n = (int64_t)N * C * HW;
            // an offset of 3 and scale 2 exercise the two-pass variance
            float *x = rand_f32(n, 51 + t, 1, 5), *gm = rand_f32(C, 52, -2, 2), *bt = rand_f32(C, 53, -1, 1);
            float *y = malloc(sizeof(float) * n), *mean = malloc(sizeof(float) * N * G), *rstd = malloc(sizeof(float) * N * G);
            groupnorm_forward(y, mean, rstd, x, gm, bt, N, C, HW, G, 1e-5f, silu);
            double *xd = to_f64(x, n), *gd = to_f64(gm, C), *bd = to_f64(bt, C), *yr = malloc(sizeof(double) * n);
            ref_groupnorm(yr, xd, gd, bd, N, C, HW, G, 1e-5, silu);
            char label[80];
            snprintf(label, sizeof label, "groupnorm N%d C%d HW%d G%d silu=%d", N, C, HW, G, silu);
            // |y| ≲ 2·1.8 + 1: a few f32 ulps of values ≤ 5 → 2e-6
            check_close_f64(label, y, yr, n, 2e-6);
            // saved statistics
            int cg = C / G;
            for (int ng = 0; ng < N * G; ng++) {
                double mu = 0;
                for (int i = 0; i < cg * HW; i++) mu += xd[(int64_t)ng * cg * HW + i];
                CHECK_NEAR(mean[ng], mu / (cg * HW), 1e-6);
            }
            free(x), free(gm), free(bt), free(y), free(mean), free(rstd), free(xd), free(gd), free(bd), free(yr);
        }
}

typedef struct {
    double *x, *gamma, *beta, *y;
    const float *R;
    int N, C, HW, G, layer;   // layer: LayerNorm over (M = N, C) rows
    double eps;
} norm_ctx;


static double norm_loss(void *p) {
    norm_ctx *c = p;
    if (c->layer) {
        ref_layernorm(c->y, c->x, c->gamma, c->beta, c->N, c->C, c->eps);
        return dot_f64(c->y, c->R, (int64_t)c->N * c->C);
    }
    ref_groupnorm(c->y, c->x, c->gamma, c->beta, c->N, c->C, c->HW, c->G, c->eps, 0);
    return dot_f64(c->y, c->R, (int64_t)c->N * c->C * c->HW);
}

TEST(groupnorm_backward_matches_finite_differences) {
    int N = 2, C = 6, HW = 5, G = 3;
    int64_t n = (int64_t)N * C * HW;
    float *x = rand_f32(n, 61, -1, 2), *gm = rand_f32(C, 62, -2, 2), *bt = rand_f32(C, 63, -1, 1);
    float *R = rand_f32(n, 64, -1, 1);
    float *y = malloc(sizeof(float) * n), *mean = malloc(sizeof(float) * N * G), *rstd = malloc(sizeof(float) * N * G);
    groupnorm_forward(y, mean, rstd, x, gm, bt, N, C, HW, G, 1e-5f, 0);
    float *dx = const_f32(n, 0.5f), *dg = const_f32(C, 0.5f), *db = const_f32(C, 0.5f);
    groupnorm_backward(dx, dg, db, R, x, mean, rstd, gm, N, C, HW, G);
    norm_ctx c = {to_f64(x, n), to_f64(gm, C), to_f64(bt, C), malloc(sizeof(double) * n), R, N, C, HW, G, 0, 1e-5};
    double *g = malloc(sizeof(double) * n);
    // The kernel uses the f32-rounded mean/rstd (rel. error ~6e-8) and f32 outputs: ~1e-6 relative;
    // 1e-5 (10× under the project's 1e-4 gradient limit) still catches any wrong term (those are O(1)).
    fd_grad(norm_loss, &c, c.x, n, g, 1e-6);
    check_grad("groupnorm dx", dx, 0.5f, g, n, 1e-5);
    fd_grad(norm_loss, &c, c.gamma, C, g, 1e-6);
    check_grad("groupnorm dgamma", dg, 0.5f, g, C, 1e-5);
    fd_grad(norm_loss, &c, c.beta, C, g, 1e-6);
    check_grad("groupnorm dbeta", db, 0.5f, g, C, 1e-5);
    free(x), free(gm), free(bt), free(R), free(y), free(mean), free(rstd), free(dx), free(dg), free(db), free(g);
    free(c.x), free(c.gamma), free(c.beta), free(c.y);
}

TEST(layernorm_forward_matches_naive) {
    int cfg[][2] = {{1, 1}, {3, 7}, {77, 32}, {5, 130}};
    for (int t = 0; t < 4; t++) {
        int M = cfg[t][0], C = cfg[t][1];
        int64_t n = (int64_t)M * C;
        float *x = rand_f32(n, 71 + t, -3, 5), *gm = rand_f32(C, 72, -2, 2), *bt = rand_f32(C, 73, -1, 1);
        float *y = malloc(sizeof(float) * n), *mean = malloc(sizeof(float) * M), *rstd = malloc(sizeof(float) * M);
        layernorm_forward(y, mean, rstd, x, gm, bt, M, C, 1e-5f);
        double *xd = to_f64(x, n), *gd = to_f64(gm, C), *bd = to_f64(bt, C), *yr = malloc(sizeof(double) * n);
        ref_layernorm(yr, xd, gd, bd, M, C, 1e-5);
        char label[64];
        snprintf(label, sizeof label, "layernorm %dx%d", M, C);
        check_close_f64(label, y, yr, n, 2e-6);
        free(x), free(gm), free(bt), free(y), free(mean), free(rstd), free(xd), free(gd), free(bd), free(yr);
    }
}

TEST(layernorm_backward_matches_finite_differences) {
    int M = 7, C = 70;   // C > 64 exercises two column blocks of the dgamma/dbeta reduction
    int64_t n = (int64_t)M * C;
    float *x = rand_f32(n, 81, -1, 2), *gm = rand_f32(C, 82, -2, 2), *bt = rand_f32(C, 83, -1, 1);
    float *R = rand_f32(n, 84, -1, 1);
    float *y = malloc(sizeof(float) * n), *mean = malloc(sizeof(float) * M), *rstd = malloc(sizeof(float) * M);
    layernorm_forward(y, mean, rstd, x, gm, bt, M, C, 1e-5f);
    float *dx = const_f32(n, 0.5f), *dg = const_f32(C, 0.5f), *db = const_f32(C, 0.5f);
    layernorm_backward(dx, dg, db, R, x, mean, rstd, gm, M, C);
    norm_ctx c = {to_f64(x, n), to_f64(gm, C), to_f64(bt, C), malloc(sizeof(double) * n), R, M, C, 1, 1, 1, 1e-5};
    double *g = malloc(sizeof(double) * n);
    // same reasoning as the GroupNorm test
    fd_grad(norm_loss, &c, c.x, n, g, 1e-6);
    check_grad("layernorm dx", dx, 0.5f, g, n, 1e-5);
    fd_grad(norm_loss, &c, c.gamma, C, g, 1e-6);
    check_grad("layernorm dgamma", dg, 0.5f, g, C, 1e-5);
    fd_grad(norm_loss, &c, c.beta, C, g, 1e-6);
    check_grad("layernorm dbeta", db, 0.5f, g, C, 1e-5);
    free(x), free(gm), free(bt), free(R), free(y), free(mean), free(rstd), free(dx), free(dg), free(db), free(g);
    free(c.x), free(c.gamma), free(c.beta), free(c.y);
}
