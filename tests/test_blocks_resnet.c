// The ResNet block against a naive double-precision composition (GroupNorm, SiLU, 3×3 convs,
// time-embedding Linear, 1×1 skip), with and without temb, identity and conv skips, and an
// output scale factor != 1; its backward against central finite differences.
#include <stdlib.h>
#include <string.h>

#include "engine/blocks/resnet.h"
#include "engine/core/tensor.h"
#include "tests/kernel_check.h"
#include "tests/param_check.h"
#include "tests/reference.h"

static float *alloc_rand(int64_t n, uint64_t seed, float lo, float hi) {
    float *p = sl_alloc_f32(n);
    fill_uniform(p, (size_t)n, seed, lo, hi);
    return p;
}

static void run_case(const char *label, int N, int Ci, int Co, int H, int W, int G, int temb_dim, float osf) {
    resnet_block rb = {.C_in = Ci, .C_out = Co, .groups = G, .temb_dim = temb_dim, .eps = 1e-5f, .output_scale_factor = osf};
    uint64_t s = 100;
    rb.norm1_w = alloc_rand(Ci, s++, 0.5f, 1.5f), rb.norm1_b = alloc_rand(Ci, s++, -0.5f, 0.5f);
    rb.conv1_w = alloc_rand((int64_t)Co * Ci * 9, s++, -0.3f, 0.3f), rb.conv1_b = alloc_rand(Co, s++, -0.3f, 0.3f);
    rb.norm2_w = alloc_rand(Co, s++, 0.5f, 1.5f), rb.norm2_b = alloc_rand(Co, s++, -0.5f, 0.5f);
    rb.conv2_w = alloc_rand((int64_t)Co * Co * 9, s++, -0.3f, 0.3f), rb.conv2_b = alloc_rand(Co, s++, -0.3f, 0.3f);
    if (temb_dim) rb.temb_w = alloc_rand((int64_t)Co * temb_dim, s++, -0.5f, 0.5f), rb.temb_b = alloc_rand(Co, s++, -0.5f, 0.5f);
    if (Ci != Co) rb.skip_w = alloc_rand((int64_t)Co * Ci, s++, -0.5f, 0.5f), rb.skip_b = alloc_rand(Co, s++, -0.5f, 0.5f);
    int HW = H * W;
    int64_t nin = (int64_t)N * Ci * HW, nout = (int64_t)N * Co * HW;
    float *x = alloc_rand(nin, 7, -2.0f, 2.0f);
    float *temb = temb_dim ? alloc_rand((int64_t)N * temb_dim, 8, -1.0f, 1.0f) : NULL;
    float *out = sl_alloc_f32(nout);
    resnet_forward(out, x, temb, &rb, N, H, W);

    // reference
    double *xd = to_f64(x, nin), *a = malloc(sizeof(double) * nin), *h = malloc(sizeof(double) * nout);
    double *a2 = malloc(sizeof(double) * nout), *o = malloc(sizeof(double) * nout);
    // the reference works on double copies of every weight
    double *n1w = to_f64(rb.norm1_w, Ci), *n1b = to_f64(rb.norm1_b, Ci), *n2w = to_f64(rb.norm2_w, Co);
    double *n2b = to_f64(rb.norm2_b, Co), *c1w = to_f64(rb.conv1_w, (int64_t)Co * Ci * 9), *c1b = to_f64(rb.conv1_b, Co);
    double *c2w = to_f64(rb.conv2_w, (int64_t)Co * Co * 9), *c2b = to_f64(rb.conv2_b, Co);
    ref_groupnorm(a, xd, n1w, n1b, N, Ci, HW, G, rb.eps, 1);
    ref_conv2d(h, a, c1w, c1b, (conv2d_shape){N, Ci, H, W, Co, 3, 1, 1});
    if (temb_dim)
        for (int n = 0; n < N; n++)
            for (int c = 0; c < Co; c++) {
                double t = rb.temb_b[c];
                for (int k = 0; k < temb_dim; k++) t += (double)rb.temb_w[c * temb_dim + k] * temb[n * temb_dim + k];
                for (int i = 0; i < HW; i++) h[((int64_t)n * Co + c) * HW + i] += t;
            }
    ref_groupnorm(a2, h, n2w, n2b, N, Co, HW, G, rb.eps, 1);
    ref_conv2d(o, a2, c2w, c2b, (conv2d_shape){N, Co, H, W, Co, 3, 1, 1});
    double *skip = xd;
    if (Ci != Co) {
        double *sw = to_f64(rb.skip_w, (int64_t)Co * Ci), *sb = to_f64(rb.skip_b, Co);
        skip = malloc(sizeof(double) * nout);
        ref_conv2d(skip, xd, sw, sb, (conv2d_shape){N, Ci, H, W, Co, 1, 1, 0});
        free(sw), free(sb);
    }
    free(n1w), free(n1b), free(n2w), free(n2b), free(c1w), free(c1b), free(c2w), free(c2b);
    for (int64_t i = 0; i < nout; i++) o[i] = (o[i] + skip[i]) / osf;
    float *want = f32_of(o, nout);
    check_close(label, out, want, (size_t)nout, 2e-5);
    // the output really depends on each path: zeroing the temb changes it
    if (temb_dim) {
        float *out0 = sl_alloc_f32(nout);
        for (int i = 0; i < N * temb_dim; i++) temb[i] = 0;
        resnet_forward(out0, x, temb, &rb, N, H, W);
        err_stats e = compare_f32(out0, want, (size_t)nout);
        CHECK_MSG(e.max_abs > 1e-2, "%s: output does not depend on temb", label);
        sl_free_aligned(out0);
    }
    if (skip != xd) free(skip);
    free(xd), free(a), free(h), free(a2), free(o), free(want);
    sl_free_aligned(x), sl_free_aligned(temb), sl_free_aligned(out);
    resnet_free(&rb);
    CHECK(rb.conv1_w == NULL && rb.skip_w == NULL);
}

TEST(resnet_identity_skip_no_temb) { run_case("resnet 8->8, no temb", 2, 8, 8, 5, 7, 4, 0, 1.0f); }
TEST(resnet_conv_skip_no_temb) { run_case("resnet 6->12, no temb", 1, 6, 12, 6, 4, 3, 0, 1.0f); }
TEST(resnet_conv_skip_temb) { run_case("resnet 8->4, temb 10", 2, 8, 4, 3, 5, 2, 10, 1.0f); }
TEST(resnet_identity_temb_scaled) { run_case("resnet 4->4, temb 6, osf 2", 3, 4, 4, 4, 4, 2, 6, 2.0f); }

TEST(resnet_scratch_variant) {
    // resnet_forward_ws with one reused scratch gives the same result as resnet_forward
    resnet_block rb = {.C_in = 4, .C_out = 8, .groups = 2, .temb_dim = 3, .eps = 1e-6f, .output_scale_factor = 1.0f};
    uint64_t s = 1;
    rb.norm1_w = alloc_rand(4, s++, 0.5f, 1.5f), rb.norm1_b = alloc_rand(4, s++, -0.5f, 0.5f);
    rb.conv1_w = alloc_rand(8 * 4 * 9, s++, -0.3f, 0.3f), rb.conv1_b = alloc_rand(8, s++, -0.3f, 0.3f);
    rb.norm2_w = alloc_rand(8, s++, 0.5f, 1.5f), rb.norm2_b = alloc_rand(8, s++, -0.5f, 0.5f);
    rb.conv2_w = alloc_rand(8 * 8 * 9, s++, -0.3f, 0.3f), rb.conv2_b = alloc_rand(8, s++, -0.3f, 0.3f);
    rb.temb_w = alloc_rand(8 * 3, s++, -0.5f, 0.5f), rb.temb_b = alloc_rand(8, s++, -0.5f, 0.5f);
    rb.skip_w = alloc_rand(8 * 4, s++, -0.5f, 0.5f), rb.skip_b = alloc_rand(8, s++, -0.5f, 0.5f);
    float *x = alloc_rand(2 * 4 * 20, 3, -1, 1), *t = alloc_rand(2 * 3, 4, -1, 1);
    float *o1 = sl_alloc_f32(2 * 8 * 20), *o2 = sl_alloc_f32(2 * 8 * 20);
    float *ws = sl_alloc_f32(resnet_scratch_floats(&rb, 2, 4, 5));
    resnet_forward(o1, x, t, &rb, 2, 4, 5);
    resnet_forward_ws(o2, x, t, &rb, 2, 4, 5, ws);
    resnet_forward_ws(o2, x, t, &rb, 2, 4, 5, ws);
    check_close("resnet_forward_ws == resnet_forward", o2, o1, 2 * 8 * 20, 0.0);
    sl_free_aligned(ws), sl_free_aligned(x), sl_free_aligned(t), sl_free_aligned(o1), sl_free_aligned(o2);
    resnet_free(&rb);
}

// ---------------------------------------------------------------- resnet block

enum { R_N1W, R_N1B, R_C1W, R_C1B, R_TW, R_TB, R_N2W, R_N2B, R_C2W, R_C2B, R_SW, R_SB, R_X, R_T, R_NP };

typedef struct {
    tparam p[R_NP];
    int N, Ci, Co, H, W, G, T;
    double osf, *R;   // R: the loss weights, L = Σ out·R
} resnet_case;

static void ref_resnet(double *out, const resnet_case *c) {
    const tparam *p = c->p;
    int N = c->N, Ci = c->Ci, Co = c->Co, H = c->H, W = c->W, HW = H * W;
    double *a = malloc(sizeof(double) * N * Ci * HW), *h = malloc(sizeof(double) * N * Co * HW);
    double *a2 = malloc(sizeof(double) * N * Co * HW), *o = malloc(sizeof(double) * N * Co * HW);
    ref_groupnorm(a, p[R_X].d, p[R_N1W].d, p[R_N1B].d, N, Ci, HW, c->G, 1e-5, 1);
    ref_conv2d(h, a, p[R_C1W].d, p[R_C1B].d, (conv2d_shape){N, Ci, H, W, Co, 3, 1, 1});
    if (c->T) {
        double *t = malloc(sizeof(double) * N * Co);
        ref_linear(t, p[R_T].d, p[R_TW].d, p[R_TB].d, N, c->T, Co);
        for (int nc = 0; nc < N * Co; nc++)
            for (int i = 0; i < HW; i++) h[(int64_t)nc * HW + i] += t[nc];
        free(t);
    }
    ref_groupnorm(a2, h, p[R_N2W].d, p[R_N2B].d, N, Co, HW, c->G, 1e-5, 1);
    ref_conv2d(o, a2, p[R_C2W].d, p[R_C2B].d, (conv2d_shape){N, Co, H, W, Co, 3, 1, 1});
    double *skip = p[R_X].d;
    if (Ci != Co) {
        skip = a2;
        ref_conv2d(skip, p[R_X].d, p[R_SW].d, p[R_SB].d, (conv2d_shape){N, Ci, H, W, Co, 1, 1, 0});
    }
    for (int64_t i = 0; i < (int64_t)N * Co * HW; i++) out[i] = (skip[i] + o[i]) / c->osf;
    free(a), free(h), free(a2), free(o);
}

static double resnet_loss(void *ctx) {
    resnet_case *c = ctx;
    int64_t n = (int64_t)c->N * c->Co * c->H * c->W;
    double *out = malloc(sizeof(double) * n), s = 0;
    ref_resnet(out, c);
    for (int64_t i = 0; i < n; i++) s += out[i] * c->R[i];
    free(out);
    return s;
}

static void resnet_fd_case(int N, int Ci, int Co, int H, int W, int G, int T, float osf) {
    resnet_case c = {.N = N, .Ci = Ci, .Co = Co, .H = H, .W = W, .G = G, .T = T, .osf = osf};
    tparam *p = c.p;
    memset(p, 0, sizeof c.p);
    uint64_t s = 500;
    tp_new(&p[R_N1W], "norm1.weight", Ci, s++, 0.5f, 1.5f);
    tp_new(&p[R_N1B], "norm1.bias", Ci, s++, -0.5f, 0.5f);
    tp_new(&p[R_C1W], "conv1.weight", (int64_t)Co * Ci * 9, s++, -0.3f, 0.3f);
    tp_new(&p[R_C1B], "conv1.bias", Co, s++, -0.3f, 0.3f);
    if (T) {
        tp_new(&p[R_TW], "time_emb_proj.weight", (int64_t)Co * T, s++, -0.5f, 0.5f);
        tp_new(&p[R_TB], "time_emb_proj.bias", Co, s++, -0.5f, 0.5f);
        tp_new(&p[R_T], "temb_silu (input)", (int64_t)N * T, s++, -1.0f, 1.0f);
    }
    tp_new(&p[R_N2W], "norm2.weight", Co, s++, 0.5f, 1.5f);
    tp_new(&p[R_N2B], "norm2.bias", Co, s++, -0.5f, 0.5f);
    tp_new(&p[R_C2W], "conv2.weight", (int64_t)Co * Co * 9, s++, -0.3f, 0.3f);
    tp_new(&p[R_C2B], "conv2.bias", Co, s++, -0.3f, 0.3f);
    if (Ci != Co) {
        tp_new(&p[R_SW], "conv_shortcut.weight", (int64_t)Co * Ci, s++, -0.5f, 0.5f);
        tp_new(&p[R_SB], "conv_shortcut.bias", Co, s++, -0.5f, 0.5f);
    }
    tp_new(&p[R_X], "x (input)", (int64_t)N * Ci * H * W, s++, -2.0f, 2.0f);
    resnet_block rb = {.C_in = Ci, .C_out = Co, .groups = G, .temb_dim = T, .eps = 1e-5f, .output_scale_factor = osf,
                       .norm1_w = p[R_N1W].f, .norm1_b = p[R_N1B].f, .conv1_w = p[R_C1W].f, .conv1_b = p[R_C1B].f,
                       .temb_w = p[R_TW].f, .temb_b = p[R_TB].f, .norm2_w = p[R_N2W].f, .norm2_b = p[R_N2B].f,
                       .conv2_w = p[R_C2W].f, .conv2_b = p[R_C2B].f, .skip_w = p[R_SW].f, .skip_b = p[R_SB].f};
    resnet_block gr = {.norm1_w = p[R_N1W].g, .norm1_b = p[R_N1B].g, .conv1_w = p[R_C1W].g, .conv1_b = p[R_C1B].g,
                       .temb_w = p[R_TW].g, .temb_b = p[R_TB].g, .norm2_w = p[R_N2W].g, .norm2_b = p[R_N2B].g,
                       .conv2_w = p[R_C2W].g, .conv2_b = p[R_C2B].g, .skip_w = p[R_SW].g, .skip_b = p[R_SB].g};
    int64_t no = (int64_t)N * Co * H * W;
    float *Rf = rand_f32(no, 77, -1, 1), *out = sl_alloc_f32(no);
    c.R = to_f64(Rf, no);
    resnet_acts acts = {0};
    resnet_forward_train(out, p[R_X].f, p[R_T].f, &rb, N, H, W, &acts);
    double *want = malloc(sizeof(double) * no);
    ref_resnet(want, &c);
    char label[128];
    snprintf(label, sizeof label, "resnet %d->%d %dx%d temb %d osf %g: forward", Ci, Co, H, W, T, osf);
    check_close_f64(label, out, want, no, 2e-5);
    resnet_backward(p[R_X].g, T ? p[R_T].g : NULL, &gr, Rf, p[R_X].f, p[R_T].f, &rb, &acts, N, H, W);
    snprintf(label, sizeof label, "resnet %d->%d", Ci, Co);
    // f32 conv/GroupNorm gradients on these sizes are accurate to ~1e-6 of the largest entry
    fd_check_all(label, resnet_loss, &c, p, R_NP, 2e-5);

    // the activations-only recomputation (checkpointing) gives the same h bit for bit
    resnet_acts a2 = {0};
    resnet_forward_train(NULL, p[R_X].f, p[R_T].f, &rb, N, H, W, &a2);
    CHECK(memcmp(a2.h, acts.h, sizeof(float) * (size_t)no) == 0);
    resnet_acts_free(&a2);
    resnet_acts_free(&acts);
    for (int k = 0; k < R_NP; k++) tp_free(&p[k], 1);
    free(Rf), free(c.R), free(want);
    sl_free_aligned(out);
}

TEST(resnet_backward_fd) {
    resnet_fd_case(2, 4, 6, 4, 3, 2, 5, 1.0f);    // conv shortcut, time embedding
    resnet_fd_case(2, 6, 6, 3, 5, 3, 3, 1.25f);   // identity shortcut, output scale factor
    resnet_fd_case(1, 4, 4, 5, 4, 2, 0, 1.0f);    // no time embedding (VAE)
}
