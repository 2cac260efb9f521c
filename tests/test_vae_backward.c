// VAE backward: every piece (conv, Downsample2D, Upsample2D, mid attention, norm_out+SiLU+conv_out,
// the posterior's reparameterization and KL) against central finite differences of a double
// reference on small shapes; the whole encoder and decoder against directional finite
// differences of their own f32 forward; the training forward equals the inference forward.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/tensor.h"
#include "tests/param_check.h"
#include "tests/reference.h"
#include "tests/test.h"
#include "vae/backward.h"
#include "vae/forward.h"
#include "vae/vae.h"

// ---------------------------------------------------------------- convs and resampling

enum { C_W, C_B, C_X, C_NP };
typedef struct {
    tparam p[C_NP];
    int kind;   // 0 conv (stride 1, pad k/2), 1 down, 2 up
    int N, Ci, Co, H, W, k;
    double *R;
} conv_case;

static int64_t conv_case_out(const conv_case *c) {
    int Ho = c->H, Wo = c->W;
    if (c->kind == 1) Ho = (c->H + 1 - 3) / 2 + 1, Wo = (c->W + 1 - 3) / 2 + 1;   // pad (0,1,0,1), 3x3 stride 2
    if (c->kind == 2) Ho = 2 * c->H, Wo = 2 * c->W;
    return (int64_t)c->N * c->Co * Ho * Wo;
}

static void ref_conv_case(double *out, const conv_case *c) {
    const double *x = c->p[C_X].d, *w = c->p[C_W].d, *b = c->p[C_B].d;
    int N = c->N, C = c->Ci, H = c->H, W = c->W;
    if (c->kind == 0) {
        ref_conv2d(out, x, w, b, (conv2d_shape){N, C, H, W, c->Co, c->k, 1, c->k / 2});
    } else if (c->kind == 1) {
        int Hp = H + 1, Wp = W + 1;
        double *p = calloc((size_t)N * C * Hp * Wp, sizeof(double));
        for (int nc = 0; nc < N * C; nc++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++) p[(int64_t)nc * Hp * Wp + y * Wp + xx] = x[(int64_t)nc * H * W + y * W + xx];
        ref_conv2d(out, p, w, b, (conv2d_shape){N, C, Hp, Wp, c->Co, 3, 2, 0});
        free(p);
    } else {
        double *u = malloc(sizeof(double) * (size_t)N * C * 4 * H * W);
        for (int nc = 0; nc < N * C; nc++)
            for (int y = 0; y < 2 * H; y++)
                for (int xx = 0; xx < 2 * W; xx++)
                    u[(int64_t)nc * 4 * H * W + y * 2 * W + xx] = x[(int64_t)nc * H * W + (y / 2) * W + xx / 2];
        ref_conv2d(out, u, w, b, (conv2d_shape){N, C, 2 * H, 2 * W, c->Co, 3, 1, 1});
        free(u);
    }
}

static double conv_loss(void *ctx) {
    conv_case *c = ctx;
    int64_t n = conv_case_out(c);
    double *o = malloc(sizeof(double) * n), s = 0;
    ref_conv_case(o, c);
    for (int64_t i = 0; i < n; i++) s += o[i] * c->R[i];
    free(o);
    return s;
}

static void conv_fd_case(const char *label, int kind, int N, int Ci, int Co, int H, int W, int k) {
    conv_case c = {.kind = kind, .N = N, .Ci = Ci, .Co = Co, .H = H, .W = W, .k = k};
    memset(c.p, 0, sizeof c.p);
    tp_new(&c.p[C_W], "weight", (int64_t)Co * Ci * k * k, 11, -0.4f, 0.4f);
    tp_new(&c.p[C_B], "bias", Co, 12, -0.4f, 0.4f);
    tp_new(&c.p[C_X], "x (input)", (int64_t)N * Ci * H * W, 13, -1.5f, 1.5f);
    vae_conv cv = {Ci, Co, k, c.p[C_W].f, c.p[C_B].f}, g = {Ci, Co, k, c.p[C_W].g, c.p[C_B].g};
    int64_t no = conv_case_out(&c);
    float *Rf = rand_f32(no, 14, -1, 1), *out = sl_alloc_f32(no);
    c.R = to_f64(Rf, no);
    if (kind == 0) vae_conv_forward(out, c.p[C_X].f, &cv, N, H, W);
    else if (kind == 1) vae_down_forward(out, c.p[C_X].f, &cv, N, H, W, NULL, NULL);
    else vae_up_forward(out, c.p[C_X].f, &cv, N, H, W);
    double *want = malloc(sizeof(double) * no);
    ref_conv_case(want, &c);
    char l[128];
    snprintf(l, sizeof l, "%s: forward", label);
    check_close_f64(l, out, want, no, 1e-5);
    if (kind == 0) vae_conv_backward(c.p[C_X].g, &g, Rf, c.p[C_X].f, &cv, N, H, W);
    else if (kind == 1) vae_down_backward(c.p[C_X].g, &g, Rf, c.p[C_X].f, &cv, N, H, W);
    else vae_up_backward(c.p[C_X].g, &g, Rf, c.p[C_X].f, &cv, N, H, W);
    fd_check_all(label, conv_loss, &c, c.p, C_NP, 1e-5);
    for (int i = 0; i < C_NP; i++) tp_free(&c.p[i], 1);
    free(Rf), free(c.R), free(want);
    sl_free_aligned(out);
}

TEST(vae_backward_fd_convs) {
    conv_fd_case("conv 3x3", 0, 2, 3, 4, 5, 4, 3);
    conv_fd_case("conv 1x1 (quant)", 0, 2, 4, 4, 3, 3, 1);
    conv_fd_case("downsample 6x5", 1, 2, 3, 3, 6, 5, 3);   // odd width: the (0,1,0,1) padding matters
    conv_fd_case("upsample 3x2", 2, 2, 3, 2, 3, 2, 3);
}

// ---------------------------------------------------------------- mid attention

enum { A_NW, A_NB, A_QW, A_QB, A_KW, A_KB, A_VW, A_VB, A_OW, A_OB, A_X, A_NP };
typedef struct {
    tparam p[A_NP];
    int N, C, HW, G;
    double *R;
} attn_case;

static void ref_tr(double *o, const double *x, int N, int A, int B) {
    for (int n = 0; n < N; n++)
        for (int a = 0; a < A; a++)
            for (int b = 0; b < B; b++) o[(int64_t)n * A * B + (int64_t)b * A + a] = x[(int64_t)n * A * B + (int64_t)a * B + b];
}

static void ref_attn(double *out, const attn_case *c) {
    const tparam *p = c->p;
    int N = c->N, C = c->C, HW = c->HW, M = N * HW;
    int64_t n = (int64_t)N * C * HW;
    double *g = malloc(sizeof(double) * n), *t = malloc(sizeof(double) * n), *q = malloc(sizeof(double) * n);
    double *k = malloc(sizeof(double) * n), *v = malloc(sizeof(double) * n), *o = malloc(sizeof(double) * n);
    ref_groupnorm(g, p[A_X].d, p[A_NW].d, p[A_NB].d, N, C, HW, c->G, 1e-6, 0);
    ref_tr(t, g, N, C, HW);
    ref_linear(q, t, p[A_QW].d, p[A_QB].d, M, C, C);
    ref_linear(k, t, p[A_KW].d, p[A_KB].d, M, C, C);
    ref_linear(v, t, p[A_VW].d, p[A_VB].d, M, C, C);
    ref_attention(o, q, k, v, N, HW, HW, 1, C, 1.0 / sqrt((double)C), 0);
    ref_linear(q, o, p[A_OW].d, p[A_OB].d, M, C, C);
    ref_tr(g, q, N, HW, C);
    for (int64_t i = 0; i < n; i++) out[i] = p[A_X].d[i] + g[i];
    free(g), free(t), free(q), free(k), free(v), free(o);
}

static double attn_loss(void *ctx) {
    attn_case *c = ctx;
    int64_t n = (int64_t)c->N * c->C * c->HW;
    double *o = malloc(sizeof(double) * n), s = 0;
    ref_attn(o, c);
    for (int64_t i = 0; i < n; i++) s += o[i] * c->R[i];
    free(o);
    return s;
}

TEST(vae_backward_fd_mid_attention) {
    attn_case c = {.N = 2, .C = 4, .HW = 6, .G = 2};
    memset(c.p, 0, sizeof c.p);
    tparam *p = c.p;
    int C = c.C;
    const char *names[] = {"group_norm.weight", "group_norm.bias", "to_q.weight", "to_q.bias", "to_k.weight",
                           "to_k.bias", "to_v.weight", "to_v.bias", "to_out.0.weight", "to_out.0.bias"};
    for (int i = 0; i < A_X; i++) {
        int64_t n = (i % 2 == 0 && i > A_NB) ? C * C : C;
        tp_new(&p[i], names[i], n, 40 + i, i == A_NW ? 0.5f : -0.6f, i == A_NW ? 1.5f : 0.6f);
    }
    int64_t n = (int64_t)c.N * C * c.HW;
    tp_new(&p[A_X], "x (input)", n, 60, -1.5f, 1.5f);
    vae_attn a = {C, c.G, 1e-6f, p[A_NW].f, p[A_NB].f, p[A_QW].f, p[A_QB].f, p[A_KW].f, p[A_KB].f,
                  p[A_VW].f, p[A_VB].f, p[A_OW].f, p[A_OB].f};
    vae_attn g = {C, c.G, 1e-6f, p[A_NW].g, p[A_NB].g, p[A_QW].g, p[A_QB].g, p[A_KW].g, p[A_KB].g,
                  p[A_VW].g, p[A_VB].g, p[A_OW].g, p[A_OB].g};
    float *Rf = rand_f32(n, 61, -1, 1), *out = sl_alloc_f32(n);
    c.R = to_f64(Rf, n);
    memcpy(out, p[A_X].f, sizeof(float) * n);
    vae_attn_forward(out, &a, c.N, c.HW);
    double *want = malloc(sizeof(double) * n);
    ref_attn(want, &c);
    check_close_f64("mid attention: forward", out, want, n, 1e-5);
    vae_attn_backward(p[A_X].g, &g, Rf, p[A_X].f, &a, c.N, c.HW);
    // softmax is invariant to a shift of one query's logits: to_k.bias adds q·b_k to all of them,
    // so its true gradient is 0 (what finite differences resolve is rounding); checked absolutely
    p[A_KB].frozen = 1;
    double kb = 0;
    for (int i = 0; i < C; i++) kb = fmax(kb, fabs(p[A_KB].g[i] - GRAD_BASE));
    fprintf(stderr, "    mid attention to_k.bias: max |grad| %.3g (exactly 0 in exact arithmetic)\n", kb);
    CHECK(kb < 1e-6);
    fd_check_all("mid attention", attn_loss, &c, p, A_NP, 2e-5);
    for (int i = 0; i < A_NP; i++) tp_free(&p[i], 1);
    free(Rf), free(c.R), free(want);
    sl_free_aligned(out);
}

// ---------------------------------------------------------------- norm_out + SiLU + conv_out

enum { H_NW, H_NB, H_CW, H_CB, H_X, H_NP };
typedef struct {
    tparam p[H_NP];
    int N, C, Co, H, W, G;
    double *R;
} head_case;

static double head_loss(void *ctx) {
    head_case *c = ctx;
    int64_t ni = (int64_t)c->N * c->C * c->H * c->W, no = (int64_t)c->N * c->Co * c->H * c->W;
    double *a = malloc(sizeof(double) * ni), *o = malloc(sizeof(double) * no), s = 0;
    ref_groupnorm(a, c->p[H_X].d, c->p[H_NW].d, c->p[H_NB].d, c->N, c->C, c->H * c->W, c->G, 1e-6, 1);
    ref_conv2d(o, a, c->p[H_CW].d, c->p[H_CB].d, (conv2d_shape){c->N, c->C, c->H, c->W, c->Co, 3, 1, 1});
    for (int64_t i = 0; i < no; i++) s += o[i] * c->R[i];
    free(a), free(o);
    return s;
}

TEST(vae_backward_fd_out_head) {
    head_case c = {.N = 2, .C = 4, .Co = 3, .H = 4, .W = 3, .G = 2};
    memset(c.p, 0, sizeof c.p);
    tp_new(&c.p[H_NW], "conv_norm_out.weight", c.C, 70, 0.5f, 1.5f);
    tp_new(&c.p[H_NB], "conv_norm_out.bias", c.C, 71, -0.5f, 0.5f);
    tp_new(&c.p[H_CW], "conv_out.weight", (int64_t)c.Co * c.C * 9, 72, -0.3f, 0.3f);
    tp_new(&c.p[H_CB], "conv_out.bias", c.Co, 73, -0.3f, 0.3f);
    tp_new(&c.p[H_X], "x (input)", (int64_t)c.N * c.C * c.H * c.W, 74, -2.0f, 2.0f);
    vae_config cfg = {.groups = c.G, .eps = 1e-6f};
    vae_coder cd = {0}, g = {0};
    cd.norm_out_w = c.p[H_NW].f, cd.norm_out_b = c.p[H_NB].f, cd.conv_out = (vae_conv){c.C, c.Co, 3, c.p[H_CW].f, c.p[H_CB].f};
    g.norm_out_w = c.p[H_NW].g, g.norm_out_b = c.p[H_NB].g, g.conv_out = (vae_conv){c.C, c.Co, 3, c.p[H_CW].g, c.p[H_CB].g};
    int64_t no = (int64_t)c.N * c.Co * c.H * c.W;
    float *Rf = rand_f32(no, 75, -1, 1), *out = sl_alloc_f32(no);
    c.R = to_f64(Rf, no);
    vae_head_forward(out, c.p[H_X].f, &cd, &cfg, c.N, c.H, c.W);
    vae_head_backward(c.p[H_X].g, &g, Rf, c.p[H_X].f, &cd, &cfg, c.N, c.H, c.W);
    fd_check_all("norm_out+silu+conv_out", head_loss, &c, c.p, H_NP, 2e-5);
    for (int i = 0; i < H_NP; i++) tp_free(&c.p[i], 1);
    free(Rf), free(c.R);
    sl_free_aligned(out);
}

// ---------------------------------------------------------------- posterior

typedef struct {
    tparam mom;
    double *eps, *R, klw, kln;
    int N, L, hw;
} post_case;

static double post_loss(void *ctx) {
    post_case *c = ctx;
    double s = 0, kl = 0;
    int64_t per = (int64_t)c->L * c->hw;
    for (int n = 0; n < c->N; n++)
        for (int64_t i = 0; i < per; i++) {
            double mu = c->mom.d[n * 2 * per + i], l = c->mom.d[n * 2 * per + per + i];
            l = l < -30 ? -30 : l > 20 ? 20 : l;
            s += (mu + exp(0.5 * l) * c->eps[n * per + i]) * c->R[n * per + i];
            kl += 0.5 * (mu * mu + exp(l) - 1 - l);
        }
    return s + c->klw * kl / c->kln;
}

TEST(vae_backward_fd_posterior_kl) {
    post_case c = {.N = 2, .L = 3, .hw = 4, .klw = 0.7, .kln = 5.0};
    int64_t per = (int64_t)c.L * c.hw, nm = 2 * per * c.N, ns = per * c.N;
    tp_new(&c.mom, "moments", nm, 80, -1.5f, 1.5f);
    float *ef = rand_f32(ns, 81, -2, 2), *Rf = rand_f32(ns, 82, -1, 1);
    c.eps = to_f64(ef, ns), c.R = to_f64(Rf, ns);
    vae_config cfg = {.latent_channels = c.L};
    double kl = vae_posterior_backward(&cfg, c.mom.g, Rf, c.mom.f, ef, c.N, 2, 2, c.klw, c.kln);
    double kl_ref = 0;
    for (int n = 0; n < c.N; n++)
        for (int64_t i = 0; i < per; i++) {
            double mu = c.mom.d[n * 2 * per + i], l = c.mom.d[n * 2 * per + per + i];
            kl_ref += 0.5 * (mu * mu + exp(l) - 1 - l);
        }
    CHECK_NEAR(kl, kl_ref / c.kln, 1e-6);
    fd_check_all("posterior+kl", post_loss, &c, &c.mom, 1, 1e-6);
    tp_free(&c.mom, 1);
    free(ef), free(Rf), free(c.eps), free(c.R);
}

// ---------------------------------------------------------------- whole VAE

static vae_config tiny_vae_config(void) {
    vae_config c = {0};
    c.in_channels = 3, c.out_channels = 3, c.latent_channels = 2, c.n_levels = 3;
    c.block_out[0] = 4, c.block_out[1] = 8, c.block_out[2] = 8;
    c.layers_per_block = 1, c.groups = 2, c.eps = 1e-6f, c.scaling_factor = 1.0f;
    c.mid_attention = 1, c.quant_conv = 1, c.post_quant_conv = 1;
    return c;
}

typedef struct {
    const vae_model *m;
    int decoder, N, H, W;   // H, W: the input's size
    const float *in, *R;
    int64_t nout;
} whole_io;

static double whole_loss(void *ctx) {
    const whole_io *io = ctx;
    float *out = sl_alloc_f32(io->nout);
    if (io->decoder) vae_decode(io->m, out, io->in, io->N, io->H, io->W);
    else vae_encode(io->m, out, io->in, io->N, io->H, io->W);
    double s = 0;
    for (int64_t i = 0; i < io->nout; i++) s += (double)out[i] * io->R[i];
    sl_free_aligned(out);
    return s;
}

static void whole_directional(int decoder) {
    vae_config c = tiny_vae_config();
    vae_model *m = vae_random(&c, VAE_BOTH, 900 + decoder);
    REQUIRE(m);
    vae_model *g = vae_grads_new(m);
    int N = 2, H = decoder ? 3 : 12, W = decoder ? 2 : 8, f = vae_factor(&c);
    int Ci = decoder ? c.latent_channels : c.in_channels;
    int64_t nin = (int64_t)N * Ci * H * W;
    int64_t nout = decoder ? (int64_t)N * c.out_channels * H * f * W * f : (int64_t)N * 2 * c.latent_channels * (H / f) * (W / f);
    float *in = rand_f32(nin, 901, -1, 1), *R = rand_f32(nout, 902, -1, 1);
    float *out = sl_alloc_f32(nout), *ref = sl_alloc_f32(nout), *dx = sl_zeros_f32(nin);
    vae_tape *t = decoder ? vae_decode_train(m, g, out, in, N, H, W) : vae_encode_train(m, g, out, in, N, H, W);
    if (decoder) vae_decode(m, ref, in, N, H, W);
    else vae_encode(m, ref, in, N, H, W);
    CHECK(memcmp(out, ref, sizeof(float) * nout) == 0);   // training forward == inference forward
    REQUIRE(vae_tape_backward(t, dx, R) == 0);
    CHECK(vae_tape_backward(t, dx, R) != 0);               // a used tape is refused
    vae_tape_free(t);
    whole_io io = {m, decoder, N, H, W, in, R, nout};
    param_list pm = {0}, pg = {0};
    int part = decoder ? VAE_DECODER : VAE_ENCODER;
    vae_walk(m, part, param_list_visitor, &pm);
    vae_walk(g, part, param_list_visitor, &pg);
    REQUIRE(pm.n == pg.n && pm.n > 20);
    double worst = directional_fd(whole_loss, &io, in, dx, nin, 903), sum = worst;
    const char *worst_name = "input";
    for (int i = 0; i < pm.n; i++) {
        if (strstr(pm.e[i].name, "to_k.bias")) {   // zero gradient (softmax shift invariance), see above
            double mx = 0;
            for (int64_t k = 0; k < pg.e[i].n; k++) mx = fmax(mx, fabs(pg.e[i].p[k]));
            CHECK_MSG(mx < 1e-6, "%s: |grad| %.3g, expected 0", pm.e[i].name, mx);
            continue;
        }
        double rel = directional_fd(whole_loss, &io, pm.e[i].p, pg.e[i].p, pm.e[i].n, 1000 + i);
        CHECK_MSG(rel < 2e-2, "%s %s: directional derivative rel err %.3g", decoder ? "decoder" : "encoder", pm.e[i].name, rel);
        sum += rel;
        if (rel > worst) worst = rel, worst_name = pm.e[i].name;
    }
    CHECK_MSG(worst < 2e-2, "worst %s %.3g", worst_name, worst);
    fprintf(stderr, "    %s: %d tensors + input, directional rel err mean %.2g, worst %.2g (%s)\n",
            decoder ? "decoder" : "encoder", pm.n, sum / (pm.n + 1), worst, worst_name);
    param_list_free(&pm), param_list_free(&pg);
    free(in), free(R);
    sl_free_aligned(out), sl_free_aligned(ref), sl_free_aligned(dx);
    vae_free(g), vae_free(m);
}

TEST(vae_backward_directional_encoder) { whole_directional(0); }
TEST(vae_backward_directional_decoder) { whole_directional(1); }
