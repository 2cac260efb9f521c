// linear_forward / linear_backward against a double loop and finite differences.
#include <stdlib.h>

#include "engine/kernels/linear.h"
#include "tests/kernel_check.h"
#include "tests/reference.h"

typedef struct {
    double *x, *w, *b;   // (M, din), (dout, din), (dout) or NULL
    const float *R;      // (M, dout) loss weights
    int M, din, dout;
    double *y;           // (M, dout) scratch
} lin_ctx;


static double lin_loss(void *p) {
    lin_ctx *c = p;
    ref_linear(c->y, c->x, c->w, c->b, c->M, c->din, c->dout);
    return dot_f64(c->y, c->R, (int64_t)c->M * c->dout);
}

TEST(linear_forward_matches_naive) {
    int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {17, 33, 9}, {64, 40, 96}};
    for (int t = 0; t < 4; t++) {
        for (int with_b = 0; with_b < 2; with_b++) {
            int M = shapes[t][0], din = shapes[t][1], dout = shapes[t][2];
            float *x = rand_f32(M * din, 1 + t, -1, 1), *w = rand_f32(dout * din, 2 + t, -1, 1);
            float *b = with_b ? rand_f32(dout, 3 + t, -1, 1) : NULL;
            float *y = const_f32(M * dout, 123.0f);   // forward overwrites
            linear_forward(y, x, w, b, M, din, dout);
            lin_ctx c = {to_f64(x, M * din), to_f64(w, dout * din), b ? to_f64(b, dout) : NULL, NULL, M, din, dout,
                         malloc(sizeof(double) * M * dout)};
            ref_linear(c.y, c.x, c.w, c.b, c.M, c.din, c.dout);
            char label[64];
            snprintf(label, sizeof label, "linear %dx%d->%d bias=%d", M, din, dout, with_b);
            // f32 dot products of ≤ 40 terms of size ≤ 1: error ≲ din·2⁻²⁴·|terms| ≈ 1e-5
            check_close_f64(label, y, c.y, M * dout, 2e-5);
            free(x), free(w), free(b), free(y), free(c.x), free(c.w), free(c.b), free(c.y);
        }
    }
}

TEST(linear_backward_matches_finite_differences) {
    int M = 5, din = 7, dout = 6;
    float *x = rand_f32(M * din, 11, -1, 1), *w = rand_f32(dout * din, 12, -1, 1), *b = rand_f32(dout, 13, -1, 1);
    float *R = rand_f32(M * dout, 14, -1, 1);
    // Gradients start at 0.5 to check the += contract.
    float *dx = const_f32(M * din, 0.5f), *dw = const_f32(dout * din, 0.5f), *db = const_f32(dout, 0.5f);
    linear_backward(dx, dw, db, R, x, w, M, din, dout);
    lin_ctx c = {to_f64(x, M * din), to_f64(w, dout * din), to_f64(b, dout), R, M, din, dout,
                 malloc(sizeof(double) * M * dout)};
    double *g = malloc(sizeof(double) * 64);
    // f32 GEMM sums of ≤ 6 terms: ~1e-7 relative; 1e-5 leaves margin and would catch any indexing bug.
    fd_grad(lin_loss, &c, c.x, M * din, g, 1e-6);
    check_grad("linear dx", dx, 0.5f, g, M * din, 1e-5);
    fd_grad(lin_loss, &c, c.w, dout * din, g, 1e-6);
    check_grad("linear dw", dw, 0.5f, g, dout * din, 1e-5);
    fd_grad(lin_loss, &c, c.b, dout, g, 1e-6);
    check_grad("linear db", db, 0.5f, g, dout, 1e-5);
    // NULL outputs are skipped (dx only: a frozen layer).
    float *dx2 = const_f32(M * din, 0.0f);
    linear_backward(dx2, NULL, NULL, R, x, w, M, din, dout);
    for (int i = 0; i < M * din; i++) CHECK_NEAR(dx2[i], dx[i] - 0.5f, 1e-6);
    free(x), free(w), free(b), free(R), free(dx), free(dw), free(db), free(dx2), free(g);
    free(c.x), free(c.w), free(c.b), free(c.y);
}
