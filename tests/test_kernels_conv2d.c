// conv2d forward/backward against a direct double loop and finite differences, for 3×3 stride 1/2,
// 1×1, and odd kernels/strides/paddings on non-square images and several batch sizes.
#include <stdlib.h>

#include "engine/kernels/conv2d.h"
#include "tests/kernel_check.h"
#include "tests/reference.h"


static const conv2d_shape shapes[] = {
    // N, C_in, H, W, C_out, k, stride, pad
    {1, 3, 7, 5, 4, 3, 1, 1},     // 3×3 same
    {2, 5, 9, 6, 3, 3, 2, 1},     // 3×3 stride 2 (downsample), odd height
    {3, 4, 5, 8, 6, 1, 1, 0},     // 1×1 pointwise
    {2, 2, 11, 7, 3, 5, 3, 2},    // arbitrary k / stride / pad
    {1, 3, 4, 6, 2, 2, 2, 0},     // even kernel
    {2, 3, 6, 5, 2, 3, 1, 0},     // 3×3 valid
    {1, 2, 3, 3, 3, 1, 2, 1},     // 1×1 with stride and pad
};
#define NSHAPES (int)(sizeof shapes / sizeof shapes[0])

static int64_t in_n(conv2d_shape s) { return (int64_t)s.N * s.C_in * s.H * s.W; }
static int64_t out_n(conv2d_shape s) { return (int64_t)s.N * s.C_out * conv2d_out_h(s) * conv2d_out_w(s); }
static int64_t w_n(conv2d_shape s) { return (int64_t)s.C_out * s.C_in * s.k * s.k; }

TEST(conv2d_forward_matches_naive) {
    for (int t = 0; t < NSHAPES; t++)
        for (int with_b = 0; with_b < 2; with_b++) {
            conv2d_shape s = shapes[t];
            float *x = rand_f32(in_n(s), 91 + t, -1, 1), *w = rand_f32(w_n(s), 92 + t, -1, 1);
            float *b = with_b ? rand_f32(s.C_out, 93, -1, 1) : NULL;
            float *y = const_f32(out_n(s), 99.0f);
            conv2d_forward(y, x, w, b, s);
            double *xd = to_f64(x, in_n(s)), *wd = to_f64(w, w_n(s)), *bd = b ? to_f64(b, s.C_out) : NULL;
            double *yr = malloc(sizeof(double) * out_n(s));
            ref_conv2d(yr, xd, wd, bd, s);
            char label[96];
            snprintf(label, sizeof label, "conv N%d %dx%dx%d->%d k%d s%d p%d b%d", s.N, s.C_in, s.H, s.W, s.C_out,
                     s.k, s.stride, s.pad, with_b);
            // sums of ≤ 50 products of size ≤ 1 in f32: ≲ 50·6e-8 ≈ 3e-6
            check_close_f64(label, y, yr, out_n(s), 1e-5);
            free(x), free(w), free(b), free(y), free(xd), free(wd), free(bd), free(yr);
        }
}

// A larger image, to exercise the threaded im2col and the per-image GEMM path (≥ 2e7 flop/image).
TEST(conv2d_forward_larger_image) {
    conv2d_shape s = {2, 16, 40, 36, 24, 3, 1, 1};
    float *x = rand_f32(in_n(s), 101, -1, 1), *w = rand_f32(w_n(s), 102, -1, 1), *b = rand_f32(s.C_out, 103, -1, 1);
    float *y = malloc(sizeof(float) * out_n(s));
    conv2d_forward(y, x, w, b, s);
    double *xd = to_f64(x, in_n(s)), *wd = to_f64(w, w_n(s)), *bd = to_f64(b, s.C_out);
    double *yr = malloc(sizeof(double) * out_n(s));
    ref_conv2d(yr, xd, wd, bd, s);
    check_close_f64("conv 2x16x40x36->24 k3", y, yr, out_n(s), 2e-5);   // 144-term sums
    free(x), free(w), free(b), free(y), free(xd), free(wd), free(bd), free(yr);
}

typedef struct {
    double *x, *w, *b, *y;
    const float *R;
    conv2d_shape s;
} conv_ctx;

static double conv_loss(void *p) {
    conv_ctx *c = p;
    ref_conv2d(c->y, c->x, c->w, c->b, c->s);
    return dot_f64(c->y, c->R, out_n(c->s));
}

TEST(conv2d_backward_matches_finite_differences) {
    for (int t = 0; t < NSHAPES; t++) {
        conv2d_shape s = shapes[t];
        float *x = rand_f32(in_n(s), 111 + t, -1, 1), *w = rand_f32(w_n(s), 112 + t, -1, 1);
        float *b = rand_f32(s.C_out, 113, -1, 1), *R = rand_f32(out_n(s), 114 + t, -1, 1);
        float *dx = const_f32(in_n(s), 0.5f), *dw = const_f32(w_n(s), 0.5f), *db = const_f32(s.C_out, 0.5f);
        conv2d_backward(dx, dw, db, R, x, w, s);
        conv_ctx c = {to_f64(x, in_n(s)), to_f64(w, w_n(s)), to_f64(b, s.C_out), malloc(sizeof(double) * out_n(s)),
                      R, s};
        int64_t mx = in_n(s) > w_n(s) ? in_n(s) : w_n(s);
        double *g = malloc(sizeof(double) * mx);
        char label[96];
        // The analytic gradients are f32 sums of ≤ ~100 products of O(1) terms (~1e-6 relative); the FD
        // reference is exact to ~1e-9. 1e-5 is tight enough for any misplaced index (errors O(1)).
        snprintf(label, sizeof label, "conv k%d s%d p%d dx", s.k, s.stride, s.pad);
        fd_grad(conv_loss, &c, c.x, in_n(s), g, 1e-6);
        check_grad(label, dx, 0.5f, g, in_n(s), 1e-5);
        snprintf(label, sizeof label, "conv k%d s%d p%d dw", s.k, s.stride, s.pad);
        fd_grad(conv_loss, &c, c.w, w_n(s), g, 1e-6);
        check_grad(label, dw, 0.5f, g, w_n(s), 1e-5);
        snprintf(label, sizeof label, "conv k%d s%d p%d db", s.k, s.stride, s.pad);
        fd_grad(conv_loss, &c, c.b, s.C_out, g, 1e-6);
        check_grad(label, db, 0.5f, g, s.C_out, 1e-5);
        // NULL outputs skipped: dx alone equals the dx above
        float *dx2 = const_f32(in_n(s), 0.5f);
        conv2d_backward(dx2, NULL, NULL, R, x, w, s);
        for (int64_t i = 0; i < in_n(s); i++) CHECK(dx2[i] == dx[i]);
        free(x), free(w), free(b), free(R), free(dx), free(dw), free(db), free(dx2), free(g);
        free(c.x), free(c.w), free(c.b), free(c.y);
    }
}

// With a tiny workspace limit the image runs in bands of output rows (down to one row per band);
// results must match the unbanded run up to GEMM summation order.
TEST(conv2d_banded_matches_unbanded) {
    conv2d_shape ss[] = {{2, 3, 9, 7, 4, 3, 1, 1}, {1, 2, 11, 6, 3, 3, 2, 1}};
    for (int t = 0; t < 2; t++) {
        conv2d_shape s = ss[t];
        float *x = rand_f32(in_n(s), 121, -1, 1), *w = rand_f32(w_n(s), 122, -1, 1), *b = rand_f32(s.C_out, 123, -1, 1);
        float *R = rand_f32(out_n(s), 124, -1, 1);
        float *y0 = malloc(sizeof(float) * out_n(s)), *y1 = malloc(sizeof(float) * out_n(s));
        float *dx0 = const_f32(in_n(s), 0), *dw0 = const_f32(w_n(s), 0), *dx1 = const_f32(in_n(s), 0),
              *dw1 = const_f32(w_n(s), 0);
        conv2d_forward(y0, x, w, b, s);
        conv2d_backward(dx0, dw0, NULL, R, x, w, s);
        int Wo = conv2d_out_w(s);
        int64_t limits[] = {1, (int64_t)s.C_in * s.k * s.k * Wo * 3};   // 1 row per band; 3 rows per band
        for (int l = 0; l < 2; l++) {
            conv2d_set_workspace_limit(limits[l]);
            for (int64_t i = 0; i < in_n(s); i++) dx1[i] = 0;
            for (int64_t i = 0; i < w_n(s); i++) dw1[i] = 0;
            conv2d_forward(y1, x, w, b, s);
            conv2d_backward(dx1, dw1, NULL, R, x, w, s);
            check_close("banded forward", y1, y0, out_n(s), 1e-6);
            check_close("banded dx", dx1, dx0, in_n(s), 3e-6);   // band edges change col2im order
            check_close("banded dw", dw1, dw0, w_n(s), 1e-5);   // dw sums over bands in another order
        }
        conv2d_set_workspace_limit((int64_t)4 << 20);
        free(x), free(w), free(b), free(R), free(y0), free(y1), free(dx0), free(dw0), free(dx1), free(dw1);
    }
}
