// UNet backward: the BasicTransformerBlock (with SingLoRA, LoRA and DoRA
// adapters on some of its Linears) and the Transformer2DModel against central finite
// differences of double-precision reference forwards; the whole UNet on a tiny random config
// against directional finite differences of its own f32 forward; parity with the PyTorch
// gradients of the fixtures; gradient checkpointing bit for bit; frozen parameters.
#include <cjson/cJSON.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "tests/kernel_check.h"
#include "tests/param_check.h"
#include "tests/reference.h"
#include "unet/unet.h"
#include "tests/unet_tiny.h"

// ---------------------------------------------------------------- transformer block

enum {
    T_N1W, T_N1B, T_Q1, T_K1, T_V1, T_O1W, T_O1B, T_N2W, T_N2B, T_Q2, T_K2, T_V2, T_O2W, T_O2B,
    T_N3W, T_N3B, T_F1W, T_F1B, T_F2W, T_F2B, T_NP
};
// the Linear of each TB_* index: weight and bias parameter
static const int LIN_W[TB_N_LINEARS] = {T_Q1, T_K1, T_V1, T_O1W, T_Q2, T_K2, T_V2, T_O2W, T_F1W, T_F2W};
static const int LIN_B[TB_N_LINEARS] = {-1, -1, -1, T_O1B, -1, -1, -1, T_O2B, T_F1B, T_F2B};

// An adapter under test: the engine's adapter and tparams over its tensors.
typedef struct {
    adapter a;
    tparam t[3];
    int nt;
} tadapter;

typedef struct {
    tparam p[T_NP];
    tadapter *ad[TB_N_LINEARS];
    unet_tblock tb, g;
} tblock_case;

static void tadapter_new(tadapter *ta, adapter_method method, int d_in, int d_out, int rank, float alpha, uint64_t seed,
                         const float *w0) {
    memset(ta, 0, sizeof *ta);
    adapter_alloc(&ta->a, method, d_in, d_out, rank, alpha);
    adapter_alloc_grads(&ta->a);
    adapter *a = &ta->a;
    if (method == ADAPTER_SINGLORA) {
        fill_uniform(a->A, (size_t)adapter_rows(a) * rank, seed, -0.5f, 0.5f);
        tp_wrap(&ta->t[ta->nt++], "singlora.A", a->A, a->dA, (int64_t)adapter_rows(a) * rank);
    } else {
        fill_uniform(a->down, (size_t)rank * d_in, seed, -0.5f, 0.5f);
        fill_uniform(a->up, (size_t)d_out * rank, seed + 1, -0.5f, 0.5f);   // nonzero: every path is exercised
        tp_wrap(&ta->t[ta->nt++], "lora.down", a->down, a->ddown, (int64_t)rank * d_in);
        tp_wrap(&ta->t[ta->nt++], "lora.up", a->up, a->dup, (int64_t)d_out * rank);
        if (method == ADAPTER_DORA) {
            for (int o = 0; o < d_out; o++) {   // near the row norms of W0, not equal
                double s = 0;
                for (int i = 0; i < d_in; i++) s += (double)w0[o * d_in + i] * w0[o * d_in + i];
                a->magnitude[o] = (float)sqrt(s) * (0.8f + 0.05f * (float)(o % 7));
            }
            tp_wrap(&ta->t[ta->nt++], "dora.magnitude", a->magnitude, a->dmagnitude, d_out);
        }
    }
}

static void tadapter_free(tadapter *ta) {
    for (int k = 0; k < ta->nt; k++) tp_free(&ta->t[k], 0);
    adapter_free(&ta->a);
}

// The adapted layer's effective weight in double (the definitions of ../shared/SINGLORA.md).
static void ref_effective_weight(double *weff, const double *w0, const tadapter *ta, int d_in, int d_out,
                                 const unet_adapt *ua) {
    int64_t n = (int64_t)d_out * d_in;
    memcpy(weff, w0, sizeof(double) * (size_t)n);
    if (!ta) return;
    const adapter *a = &ta->a;
    int r = a->rank;
    double s = a->alpha / r;
    if (a->method == ADAPTER_SINGLORA) {
        const double *A = ta->t[0].d;   // (max(d_in, d_out), r)
        for (int o = 0; o < d_out; o++)
            for (int i = 0; i < d_in; i++) {
                double acc = 0;
                for (int k = 0; k < r; k++) acc += A[o * r + k] * A[i * r + k];
                weff[o * d_in + i] += ua->scale * s * ua->u * acc;
            }
        return;
    }
    const double *down = ta->t[0].d, *up = ta->t[1].d;
    double *v = malloc(sizeof(double) * (size_t)n);
    for (int o = 0; o < d_out; o++)
        for (int i = 0; i < d_in; i++) {
            double acc = 0;
            for (int k = 0; k < r; k++) acc += up[o * r + k] * down[k * d_in + i];
            v[o * d_in + i] = w0[o * d_in + i] + s * acc;
        }
    if (a->method == ADAPTER_LORA) {
        for (int64_t i = 0; i < n; i++) weff[i] = w0[i] + ua->scale * (v[i] - w0[i]);
    } else {   // DoRA: m ⊙ V / ‖V‖_row, at strength sc interpolated with W0
        const double *mag = ta->t[2].d;
        for (int o = 0; o < d_out; o++) {
            double nn = 0;
            for (int i = 0; i < d_in; i++) nn += v[o * d_in + i] * v[o * d_in + i];
            nn = sqrt(nn);
            for (int i = 0; i < d_in; i++)
                weff[o * d_in + i] = ua->scale * mag[o] * v[o * d_in + i] / nn + (1 - ua->scale) * w0[o * d_in + i];
        }
    }
    free(v);
}

// one adapted Linear of the reference block
static void ref_lin(double *y, const double *x, const tblock_case *c, int li, int M, int d_in, int d_out,
                    const unet_adapt *ua) {
    double *weff = malloc(sizeof(double) * (size_t)d_out * d_in);
    ref_effective_weight(weff, c->p[LIN_W[li]].d, c->ad[li], d_in, d_out, ua);
    ref_linear(y, x, weff, LIN_B[li] >= 0 ? c->p[LIN_B[li]].d : NULL, M, d_in, d_out);
    free(weff);
}

static void ref_tblock(double *out, const double *x, const double *ctx, const tblock_case *c, int N, int L, int Lc,
                       const unet_adapt *ua) {
    const tparam *p = c->p;
    int C = c->tb.C, D = c->tb.D, H = c->tb.heads, Dh = c->tb.head_dim, F = c->tb.ff_inner, M = N * L, Mc = N * Lc;
    double *n = malloc(sizeof(double) * M * C), *q = malloc(sizeof(double) * M * C);
    double *k = malloc(sizeof(double) * M * C), *v = malloc(sizeof(double) * M * C), *a = malloc(sizeof(double) * M * C);
    double *x1 = malloc(sizeof(double) * M * C), *x2 = malloc(sizeof(double) * M * C);
    double *hh = calloc((size_t)M * 2 * F, sizeof(double)), *gg = calloc((size_t)M * F, sizeof(double));
    ref_layernorm(n, x, p[T_N1W].d, p[T_N1B].d, M, C, 1e-5);
    ref_lin(q, n, c, TB_ATTN1_Q, M, C, C, ua);
    ref_lin(k, n, c, TB_ATTN1_K, M, C, C, ua);
    ref_lin(v, n, c, TB_ATTN1_V, M, C, C, ua);
    ref_attention(a, q, k, v, N, L, L, H, Dh, 1.0 / sqrt((double)Dh), 0);
    ref_lin(x1, a, c, TB_ATTN1_OUT, M, C, C, ua);
    for (int64_t i = 0; i < (int64_t)M * C; i++) x1[i] += x[i];
    ref_layernorm(n, x1, p[T_N2W].d, p[T_N2B].d, M, C, 1e-5);
    ref_lin(q, n, c, TB_ATTN2_Q, M, C, C, ua);
    ref_lin(k, ctx, c, TB_ATTN2_K, Mc, D, C, ua);
    ref_lin(v, ctx, c, TB_ATTN2_V, Mc, D, C, ua);
    ref_attention(a, q, k, v, N, L, Lc, H, Dh, 1.0 / sqrt((double)Dh), 0);
    ref_lin(x2, a, c, TB_ATTN2_OUT, M, C, C, ua);
    for (int64_t i = 0; i < (int64_t)M * C; i++) x2[i] += x1[i];
    ref_layernorm(n, x2, p[T_N3W].d, p[T_N3B].d, M, C, 1e-5);
    ref_lin(hh, n, c, TB_FF1, M, C, 2 * F, ua);
    for (int m = 0; m < M; m++)
        for (int f = 0; f < F; f++) gg[(int64_t)m * F + f] = hh[(int64_t)m * 2 * F + f] * ref_gelu(hh[(int64_t)m * 2 * F + F + f]);
    ref_lin(out, gg, c, TB_FF2, M, F, C, ua);
    for (int64_t i = 0; i < (int64_t)M * C; i++) out[i] += x2[i];
    free(n), free(q), free(k), free(v), free(a), free(x1), free(x2), free(hh), free(gg);
}

static void tblock_case_new(tblock_case *c, int C, int D, int heads, uint64_t seed) {
    memset(c, 0, sizeof *c);
    int F = 4 * C;
    static const char *names[T_NP] = {"norm1.weight", "norm1.bias", "attn1.to_q", "attn1.to_k", "attn1.to_v",
                                      "attn1.to_out.0.weight", "attn1.to_out.0.bias", "norm2.weight", "norm2.bias",
                                      "attn2.to_q", "attn2.to_k", "attn2.to_v", "attn2.to_out.0.weight",
                                      "attn2.to_out.0.bias", "norm3.weight", "norm3.bias", "ff.net.0.proj.weight",
                                      "ff.net.0.proj.bias", "ff.net.2.weight", "ff.net.2.bias"};
    int64_t sizes[T_NP] = {C, C, C * C, C * C, C * C, C * C, C, C, C, C * C, C * D, C * D, C * C, C, C, C,
                           2 * F * C, 2 * F, C * F, C};
    for (int k = 0; k < T_NP; k++) {
        int norm_w = k == T_N1W || k == T_N2W || k == T_N3W;
        tp_new(&c->p[k], names[k], sizes[k], seed + k, norm_w ? 0.5f : -0.5f, norm_w ? 1.5f : 0.5f);
    }
    unet_tblock *t = &c->tb, *g = &c->g;
    t->C = C, t->D = D, t->heads = heads, t->head_dim = C / heads, t->ff_inner = F;
    float **tf[T_NP] = {&t->norm1_w, &t->norm1_b, &t->attn1_q, &t->attn1_k, &t->attn1_v, &t->attn1_out_w,
                        &t->attn1_out_b, &t->norm2_w, &t->norm2_b, &t->attn2_q, &t->attn2_k, &t->attn2_v,
                        &t->attn2_out_w, &t->attn2_out_b, &t->norm3_w, &t->norm3_b, &t->ff1_w, &t->ff1_b,
                        &t->ff2_w, &t->ff2_b};
    float **gf[T_NP] = {&g->norm1_w, &g->norm1_b, &g->attn1_q, &g->attn1_k, &g->attn1_v, &g->attn1_out_w,
                        &g->attn1_out_b, &g->norm2_w, &g->norm2_b, &g->attn2_q, &g->attn2_k, &g->attn2_v,
                        &g->attn2_out_w, &g->attn2_out_b, &g->norm3_w, &g->norm3_b, &g->ff1_w, &g->ff1_b,
                        &g->ff2_w, &g->ff2_b};
    for (int k = 0; k < T_NP; k++) *tf[k] = c->p[k].f, *gf[k] = c->p[k].g;
}

// Adapters on four Linears: SingLoRA on attn2.to_k (d_out > d_in) and ff.net.2 (d_in > d_out),
// LoRA on attn1.to_v, DoRA on attn2.to_out.0.
static void tblock_case_adapters(tblock_case *c, tadapter *ads) {
    int C = c->tb.C, D = c->tb.D, F = c->tb.ff_inner;
    tadapter_new(&ads[0], ADAPTER_SINGLORA, D, C, 3, 4.0f, 900, NULL);
    tadapter_new(&ads[1], ADAPTER_SINGLORA, F, C, 2, 2.0f, 901, NULL);
    tadapter_new(&ads[2], ADAPTER_LORA, C, C, 2, 3.0f, 902, NULL);
    tadapter_new(&ads[3], ADAPTER_DORA, C, C, 2, 2.0f, 904, c->tb.attn2_out_w);
    c->ad[TB_ATTN2_K] = &ads[0], c->ad[TB_FF2] = &ads[1], c->ad[TB_ATTN1_V] = &ads[2], c->ad[TB_ATTN2_OUT] = &ads[3];
    for (int li = 0; li < TB_N_LINEARS; li++) c->tb.ad[li] = c->ad[li] ? &c->ad[li]->a : NULL;
    // W0 under a DoRA adapter has no gradient (unet_backward refuses one): frozen here
    c->g.attn2_out_w = NULL;
    c->p[T_O2W].frozen = 1;
}

typedef struct {
    tblock_case *c;
    tparam *x, *ctx;
    double *R;
    int N, L, Lc;
    unet_adapt ua;
} tblock_loss_ctx;

static double tblock_loss(void *vp) {
    tblock_loss_ctx *t = vp;
    int64_t n = (int64_t)t->N * t->L * t->c->tb.C;
    double *out = malloc(sizeof(double) * n), s = 0;
    ref_tblock(out, t->x->d, t->ctx->d, t->c, t->N, t->L, t->Lc, &t->ua);
    for (int64_t i = 0; i < n; i++) s += out[i] * t->R[i];
    free(out);
    return s;
}

TEST(tblock_backward_fd_with_adapters) {
    const int N = 2, L = 5, Lc = 3, C = 8, D = 6, heads = 2;
    tblock_case c;
    tblock_case_new(&c, C, D, heads, 1000);
    tadapter ads[4];
    tblock_case_adapters(&c, ads);
    tparam x, ctx;
    tp_new(&x, "x (input)", (int64_t)N * L * C, 50, -1.5f, 1.5f);
    tp_new(&ctx, "context (input)", (int64_t)N * Lc * D, 51, -1.5f, 1.5f);
    int64_t no = (int64_t)N * L * C;
    float *Rf = rand_f32(no, 52, -1, 1), *out = sl_alloc_f32(no);
    tblock_loss_ctx lc = {&c, &x, &ctx, to_f64(Rf, no), N, L, Lc, {0.6f, 0.8f}};
    tblock_acts acts = {0};
    tblock_forward(out, x.f, ctx.f, &c.tb, &lc.ua, N, L, Lc, &acts, NULL, "b");
    double *want = malloc(sizeof(double) * no);
    ref_tblock(want, x.d, ctx.d, &c, N, L, Lc, &lc.ua);
    check_close_f64("tblock forward (adapters, u 0.6, scale 0.8)", out, want, no, 2e-5);
    tblock_backward(x.g, ctx.g, &c.g, Rf, x.f, ctx.f, &c.tb, &lc.ua, &acts, N, L, Lc);
    fd_check_all("tblock", tblock_loss, &lc, c.p, T_NP, 2e-5);
    fd_check_all("tblock", tblock_loss, &lc, &x, 1, 2e-5);
    fd_check_all("tblock", tblock_loss, &lc, &ctx, 1, 2e-5);
    const char *where[4] = {"singlora attn2.to_k (d_out > d_in)", "singlora ff.net.2 (d_in > d_out)", "lora attn1.to_v",
                            "dora attn2.to_out.0"};
    for (int k = 0; k < 4; k++) fd_check_all(where[k], tblock_loss, &lc, ads[k].t, ads[k].nt, 2e-5);
    tblock_acts_free(&acts);
    for (int k = 0; k < 4; k++) tadapter_free(&ads[k]);
    for (int k = 0; k < T_NP; k++) tp_free(&c.p[k], 1);
    tp_free(&x, 1), tp_free(&ctx, 1);
    free(Rf), free(lc.R), free(want);
    sl_free_aligned(out);
}

// ---------------------------------------------------------------- Transformer2DModel

enum { X_NW, X_NB, X_PIW, X_PIB, X_POW, X_POB, X_NP };

typedef struct {
    tparam p[X_NP];
    tblock_case blocks[2];
    tadapter pin;   // SingLoRA on proj_in
    unet_transformer tr, g;
    unet_tblock tbs[2], gbs[2];
    tparam x, ctx;
    double *R;
    int N, H, W, Lc;
    unet_adapt ua;
} transformer_case;

static void ref_transformer(double *out, const transformer_case *c) {
    int N = c->N, C = c->tr.C, HW = c->H * c->W, M = N * HW;
    double *gn = malloc(sizeof(double) * M * C), *tok = malloc(sizeof(double) * M * C);
    double *h = malloc(sizeof(double) * M * C), *h2 = malloc(sizeof(double) * M * C);
    ref_groupnorm(gn, c->x.d, c->p[X_NW].d, c->p[X_NB].d, N, C, HW, c->tr.groups, 1e-6, 0);
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < HW; i++) tok[((int64_t)n * HW + i) * C + ch] = gn[((int64_t)n * C + ch) * HW + i];
    double *weff = malloc(sizeof(double) * C * C);
    ref_effective_weight(weff, c->p[X_PIW].d, &c->pin, C, C, &c->ua);
    ref_linear(h, tok, weff, c->p[X_PIB].d, M, C, C);
    for (int k = 0; k < c->tr.n_blocks; k++) {
        ref_tblock(h2, h, c->ctx.d, &c->blocks[k], N, HW, c->Lc, &c->ua);
        double *s = h; h = h2; h2 = s;
    }
    ref_linear(h2, h, c->p[X_POW].d, c->p[X_POB].d, M, C, C);
    for (int n = 0; n < N; n++)
        for (int ch = 0; ch < C; ch++)
            for (int i = 0; i < HW; i++)
                out[((int64_t)n * C + ch) * HW + i] = h2[((int64_t)n * HW + i) * C + ch] + c->x.d[((int64_t)n * C + ch) * HW + i];
    free(gn), free(tok), free(h), free(h2), free(weff);
}

static double transformer_loss(void *vp) {
    transformer_case *c = vp;
    int64_t n = (int64_t)c->N * c->tr.C * c->H * c->W;
    double *out = malloc(sizeof(double) * n), s = 0;
    ref_transformer(out, c);
    for (int64_t i = 0; i < n; i++) s += out[i] * c->R[i];
    free(out);
    return s;
}

TEST(transformer_backward_fd) {
    for (int lp = 0; lp < 2; lp++) {
        transformer_case c;
        memset(&c, 0, sizeof c);
        const int C = 8, D = 6, heads = 2, G = 2;
        c.N = 2, c.H = 3, c.W = 2, c.Lc = 3, c.ua = (unet_adapt){0.5f, 1.0f};
        static const char *names[X_NP] = {"norm.weight", "norm.bias", "proj_in.weight", "proj_in.bias",
                                          "proj_out.weight", "proj_out.bias"};
        int64_t sizes[X_NP] = {C, C, C * C, C, C * C, C};
        for (int k = 0; k < X_NP; k++) tp_new(&c.p[k], names[k], sizes[k], 300 + k, k == X_NW ? 0.5f : -0.5f, k == X_NW ? 1.5f : 0.5f);
        tadapter_new(&c.pin, ADAPTER_SINGLORA, C, C, 2, 2.0f, 310, NULL);
        c.tr = (unet_transformer){.C = C, .groups = G, .n_blocks = 2, .linear_proj = lp, .norm_w = c.p[X_NW].f,
                                  .norm_b = c.p[X_NB].f, .proj_in_w = c.p[X_PIW].f, .proj_in_b = c.p[X_PIB].f,
                                  .proj_out_w = c.p[X_POW].f, .proj_out_b = c.p[X_POB].f, .blocks = c.tbs,
                                  .proj_in_ad = &c.pin.a};
        c.g = (unet_transformer){.C = C, .groups = G, .n_blocks = 2, .linear_proj = lp, .norm_w = c.p[X_NW].g,
                                 .norm_b = c.p[X_NB].g, .proj_in_w = c.p[X_PIW].g, .proj_in_b = c.p[X_PIB].g,
                                 .proj_out_w = c.p[X_POW].g, .proj_out_b = c.p[X_POB].g, .blocks = c.gbs};
        for (int k = 0; k < 2; k++) {
            tblock_case_new(&c.blocks[k], C, D, heads, 400 + 100 * k);
            c.tbs[k] = c.blocks[k].tb;
            c.gbs[k] = c.blocks[k].g;
        }
        tp_new(&c.x, "x (input)", (int64_t)c.N * C * c.H * c.W, 60, -1.5f, 1.5f);
        tp_new(&c.ctx, "context (input)", (int64_t)c.N * c.Lc * D, 61, -1.5f, 1.5f);
        int64_t no = (int64_t)c.N * C * c.H * c.W;
        float *Rf = rand_f32(no, 62, -1, 1), *out = sl_alloc_f32(no);
        c.R = to_f64(Rf, no);
        transformer_acts acts = {0};
        transformer_forward(out, c.x.f, c.ctx.f, &c.tr, &c.ua, c.N, c.H, c.W, c.Lc, &acts, NULL, "t");
        double *want = malloc(sizeof(double) * no);
        ref_transformer(want, &c);
        check_close_f64(lp ? "transformer (linear proj) forward" : "transformer (conv proj) forward", out, want, no, 2e-5);
        // the training forward equals the inference forward bit for bit
        float *out2 = sl_alloc_f32(no);
        transformer_forward(out2, c.x.f, c.ctx.f, &c.tr, &c.ua, c.N, c.H, c.W, c.Lc, NULL, NULL, "t");
        CHECK(memcmp(out, out2, sizeof(float) * (size_t)no) == 0);
        transformer_backward(c.x.g, c.ctx.g, &c.g, Rf, c.x.f, c.ctx.f, &c.tr, &c.ua, &acts, c.N, c.H, c.W, c.Lc);
        const char *w = lp ? "transformer(linear)" : "transformer(conv)";
        fd_check_all(w, transformer_loss, &c, c.p, X_NP, 2e-5);
        fd_check_all(w, transformer_loss, &c, &c.x, 1, 2e-5);
        fd_check_all(w, transformer_loss, &c, &c.ctx, 1, 2e-5);
        fd_check_all(w, transformer_loss, &c, c.pin.t, c.pin.nt, 2e-5);
        char label[64];
        for (int k = 0; k < 2; k++) {
            snprintf(label, sizeof label, "%s block %d", w, k);
            fd_check_all(label, transformer_loss, &c, c.blocks[k].p, T_NP, 2e-5);
        }
        transformer_acts_free(&acts);
        for (int k = 0; k < X_NP; k++) tp_free(&c.p[k], 1);
        for (int k = 0; k < 2; k++)
            for (int j = 0; j < T_NP; j++) tp_free(&c.blocks[k].p[j], 1);
        tadapter_free(&c.pin);
        tp_free(&c.x, 1), tp_free(&c.ctx, 1);
        free(Rf), free(c.R), free(want);
        sl_free_aligned(out);
        sl_free_aligned(out2);
    }
}

// ---------------------------------------------------------------- the whole UNet, tiny random config

typedef struct {
    const char **names;
    float **slots;
    int64_t *sizes;
    int n;
} slot_list;

static int list_visitor(void *vp, const param_desc *p) {
    slot_list *l = vp;
    l->names = realloc(l->names, sizeof(char *) * (size_t)(l->n + 1));
    l->slots = realloc(l->slots, sizeof(float *) * (size_t)(l->n + 1));
    l->sizes = realloc(l->sizes, sizeof(int64_t) * (size_t)(l->n + 1));
    l->names[l->n] = strdup(p->name);
    l->slots[l->n] = *p->slot;
    l->sizes[l->n++] = shape_numel(p->ndim, p->shape);
    return 0;
}

static void slot_list_free(slot_list *l) {
    for (int i = 0; i < l->n; i++) free((char *)l->names[i]);
    free(l->names), free(l->slots), free(l->sizes);
}

// Every parameter tensor, x and the context: the directional derivative of the f32 loss along a
// random direction (central differences, eps = 1e-2·rms of the tensor) against Σ g·v. f32 loss
// noise ~1e-7·L makes the difference quotient good to ~1e-4·L/eps; the step's truncation error
// is O(eps²) relative. A wiring error is O(1).
static void unet_directional(int linear_proj) {
    unet_model *m = tiny_unet(linear_proj, 7000 + linear_proj);
    REQUIRE(m != NULL);
    tiny_io io;
    tiny_io_new(&io, m, 31);
    unet_model *g = unet_grads_new(m, "all");
    REQUIRE(g != NULL);
    int64_t nx = (int64_t)io.N * io.Ci * io.h * io.w, nc = (int64_t)io.N * io.L * io.D;
    float *dx = sl_alloc_f32(nx), *dctx = sl_alloc_f32(nc);
    memset(dx, 0, sizeof(float) * nx), memset(dctx, 0, sizeof(float) * nc);
    double l = tiny_backward(m, &io, g, dx, dctx, 0);
    REQUIRE(l == l);
    CHECK_NEAR(l, tiny_forward_loss(m, &io), 0.0);   // training forward == inference forward
    slot_list pm = {0}, pg = {0};
    unet_walk(m, list_visitor, &pm);
    unet_walk(g, list_visitor, &pg);
    REQUIRE(pm.n == pg.n);
    double worst = 0, sum = 0;
    const char *worst_name = "";
    int checked = 0;
    for (int i = -2; i < pm.n; i++) {
        float *p = i == -2 ? io.x : i == -1 ? io.ctx : pm.slots[i];
        const float *gr = i == -2 ? dx : i == -1 ? dctx : pg.slots[i];
        int64_t n = i == -2 ? nx : i == -1 ? nc : pm.sizes[i];
        const char *name = i == -2 ? "x" : i == -1 ? "context" : pm.names[i];
        double rms = 0;
        for (int64_t k = 0; k < n; k++) rms += (double)p[k] * p[k];
        rms = sqrt(rms / n);
        double eps = 1e-2 * (rms > 0.05 ? rms : 0.05);
        double rel = directional_check(name, m, &io, p, gr, n, eps, 3e-2, 100 + (uint64_t)(i + 2));
        sum += rel;
        checked++;
        if (rel > worst) worst = rel, worst_name = name;
    }
    fprintf(stderr, "    %s: %d tensors, directional derivative rel err mean %.2g, worst %.2g (%s); %d below the floor\n",
            linear_proj ? "linear proj" : "conv proj", checked, sum / checked, worst, worst_name, directional_below_floor);
    directional_below_floor = 0;
    slot_list_free(&pm), slot_list_free(&pg);
    sl_free_aligned(dx), sl_free_aligned(dctx);
    tiny_io_free(&io);
    unet_free(g), unet_free(m);
}

TEST(unet_backward_directional_fd_tiny) {
    unet_directional(0);
    unet_directional(1);
}

// ---------------------------------------------------------------- parity with PyTorch's gradients

// The fixture's grad_params metadata (a JSON list) as "a,b,c".
static char *fixture_params(const st_file *f) {
    const char *meta = st_meta(f, "grad_params");
    if (!meta) return NULL;
    cJSON *list = cJSON_Parse(meta);
    char *out = calloc(1, strlen(meta) + 1);
    cJSON *it;
    cJSON_ArrayForEach(it, list) {
        if (*out) strcat(out, ",");
        strcat(out, cJSON_GetStringValue(it));
    }
    cJSON_Delete(list);
    return out;
}

static void grad_parity(const char *model, int ckpt) {
    char rel[128];
    snprintf(rel, sizeof rel, "fixtures/io/%s_unet_grad.safetensors", model);
    st_file *f = st_open(shared_path(rel));
    REQUIRE(f != NULL);
    snprintf(rel, sizeof rel, "fixtures/%s_tiny", model);
    unet_model *m = unet_load(shared_path(rel), NULL, NULL);
    REQUIRE(m != NULL);
    char *params = fixture_params(f);
    REQUIRE(params != NULL);
    unet_model *g = unet_grads_new(m, params);
    REQUIRE(g != NULL);
    CHECK_EQ_INT(unet_grads_count(g) > 0, 1);
    const st_entry *ex = st_find(f, "x"), *ec = st_find(f, "context");
    int N = (int)ex->shape[0], h = (int)ex->shape[2], w = (int)ex->shape[3], L = (int)ec->shape[1];
    tiny_io io = {.N = N, .h = h, .w = w, .L = L, .Ci = (int)ex->shape[1], .Co = m->cfg.out_channels,
                  .D = (int)ec->shape[2]};
    io.x = st_load_f32(f, "x", -1, NULL);
    io.ctx = st_load_f32(f, "context", -1, NULL);
    io.target = st_load_f32(f, "target", -1, NULL);
    const st_entry *et = st_find(f, "t");   // int64 timesteps, as diffusers got them
    io.t = sl_alloc_f32(N);
    dtype_to_f32_n(io.t, et->data, et->dt, (size_t)N);
    int64_t nx = (int64_t)N * io.Ci * h * w, nc = (int64_t)N * L * io.D;
    float *dx = sl_alloc_f32(nx), *dctx = sl_alloc_f32(nc);
    memset(dx, 0, sizeof(float) * nx), memset(dctx, 0, sizeof(float) * nc);
    double loss = tiny_backward(m, &io, g, dx, dctx, ckpt);
    float lf = (float)loss, *want = st_load_f32(f, "loss", -1, NULL);
    char label[400];
    snprintf(label, sizeof label, "%s%s loss", model, ckpt ? " (checkpointing)" : "");
    check_close(label, &lf, want, 1, 1e-4 * fabs(want[0]));
    sl_free_aligned(want);
    // gradients: max abs error ≤ 1e-4 × max |reference gradient| (fixtures README)
    typedef struct { const char *name; const float *got; int64_t n; } named_grad;
    named_grad gs[64];
    int ng = 0;
    gs[ng++] = (named_grad){"x", dx, nx};
    gs[ng++] = (named_grad){"context", dctx, nc};
    slot_list pg = {0};
    unet_walk(g, list_visitor, &pg);
    for (int i = 0; i < pg.n && ng < 64; i++)
        if (pg.slots[i]) gs[ng++] = (named_grad){pg.names[i], pg.slots[i], pg.sizes[i]};
    CHECK_EQ_INT(ng, 2 + 13);
    for (int k = 0; k < ng; k++) {
        char name[260];
        snprintf(name, sizeof name, "grad.%s", gs[k].name);
        want = st_load_f32(f, name, -1, NULL);
        CHECK_MSG(want != NULL, "fixture lacks %s", name);
        if (!want) continue;
        double mx = 0;
        for (int64_t i = 0; i < gs[k].n; i++) mx = fabs(want[i]) > mx ? fabs(want[i]) : mx;
        snprintf(label, sizeof label, "%s %s", model, name);
        check_close(label, gs[k].got, want, (size_t)gs[k].n, 1e-4 * mx);
        sl_free_aligned(want);
    }
    slot_list_free(&pg);
    free(params);
    sl_free_aligned(dx), sl_free_aligned(dctx);
    tiny_io_free(&io);
    unet_free(g), unet_free(m);
    st_close(f);
}

TEST(unet_backward_parity_sd1) { grad_parity("sd1", 0); }
TEST(unet_backward_parity_sd2) { grad_parity("sd2", 0); }
TEST(unet_backward_parity_sd2_checkpointing) { grad_parity("sd2", 1); }

// ---------------------------------------------------------------- checkpointing, frozen parameters

typedef struct {
    float *dx, *dctx, **grads;
    int ng;
    double loss;
} grad_run;

static void run_all(grad_run *r, const unet_model *m, const tiny_io *io, const char *params, int ckpt) {
    unet_model *g = unet_grads_new(m, params);
    int64_t nx = (int64_t)io->N * io->Ci * io->h * io->w, nc = (int64_t)io->N * io->L * io->D;
    r->dx = sl_alloc_f32(nx), r->dctx = sl_alloc_f32(nc);
    memset(r->dx, 0, sizeof(float) * nx), memset(r->dctx, 0, sizeof(float) * nc);
    r->loss = tiny_backward(m, io, g, r->dx, r->dctx, ckpt);
    slot_list pg = {0};
    unet_walk(g, list_visitor, &pg);
    r->grads = calloc((size_t)pg.n, sizeof(float *));
    r->ng = pg.n;
    for (int i = 0; i < pg.n; i++)
        if (pg.slots[i]) {
            r->grads[i] = sl_alloc_f32(pg.sizes[i]);
            memcpy(r->grads[i], pg.slots[i], sizeof(float) * (size_t)pg.sizes[i]);
        }
    slot_list_free(&pg);
    unet_free(g);
}

static void run_free(grad_run *r) {
    for (int i = 0; i < r->ng; i++) sl_free_aligned(r->grads[i]);
    free(r->grads);
    sl_free_aligned(r->dx), sl_free_aligned(r->dctx);
}

TEST(unet_checkpointing_bit_identical) {
    // several threads: every reduction must be independent of the schedule for this to hold;
    // several parameter sets: the recomputation skips what frozen layers do not read
    const char *sets[3] = {"all", "*.attn2.to_k.weight,*.norm1.weight,conv_in.bias", "none"};
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        for (int lp = 0; lp < 2; lp++)
            for (int ps = 0; ps < 3; ps++) {
                unet_model *m = tiny_unet(lp, 99);
                REQUIRE(m != NULL);
                tiny_io io;
                tiny_io_new(&io, m, 5);
                grad_run a, b;
                run_all(&a, m, &io, sets[ps], 0);
                run_all(&b, m, &io, sets[ps], 1);
                int64_t nx = (int64_t)io.N * io.Ci * io.h * io.w, nc = (int64_t)io.N * io.L * io.D;
                CHECK(a.loss == b.loss);
                CHECK(memcmp(a.dx, b.dx, sizeof(float) * nx) == 0);
                CHECK(memcmp(a.dctx, b.dctx, sizeof(float) * nc) == 0);
                slot_list pm = {0};
                unet_walk(m, list_visitor, &pm);
                int same = 0, n = 0;
                for (int i = 0; i < a.ng; i++)
                    if (a.grads[i]) {
                        n++;
                        same += memcmp(a.grads[i], b.grads[i], sizeof(float) * (size_t)pm.sizes[i]) == 0;
                    }
                CHECK_EQ_INT(same, n);
                fprintf(stderr, "    threads %d, %s proj, params %s: %d of %d parameter gradients, dx, dctx identical\n",
                        threads, lp ? "linear" : "conv", sets[ps], same, n);
                slot_list_free(&pm);
                run_free(&a), run_free(&b);
                tiny_io_free(&io);
                unet_free(m);
            }
    }
}

// tblock_recompute refills exactly what tblock_forward kept, and leaves out the attention and
// GEGLU outputs frozen layers do not read.
TEST(tblock_recompute_matches_forward) {
    unet_model *m = tiny_unet(1, 77);
    REQUIRE(m != NULL);
    tiny_io io;
    tiny_io_new(&io, m, 78);
    const unet_tblock *tb = &m->down[2].attn[0].blocks[1];
    int N = 2, L = 6, C = tb->C, F = tb->ff_inner;
    int64_t n = (int64_t)N * L * C;
    float *x = sl_alloc_f32(n), *out = sl_alloc_f32(n);
    fill_uniform(x, (size_t)n, 79, -1, 1);
    tblock_acts full = {0}, re = {0};
    tblock_forward(out, x, io.ctx, tb, NULL, N, L, io.L, &full, NULL, "b");
    for (int frozen = 0; frozen < 2; frozen++) {
        unet_model *g = unet_grads_new(m, frozen ? "none" : "all");
        re.x1 = sl_alloc_f32(n), re.x2 = sl_alloc_f32(n);
        memcpy(re.x1, full.x1, sizeof(float) * n), memcpy(re.x2, full.x2, sizeof(float) * n);
        tblock_recompute(&re, x, io.ctx, tb, &g->down[2].attn[0].blocks[1], NULL, N, L, io.L);
        struct { const char *name; float *a, *b; int64_t n; } f[] = {
            {"n1", full.n1, re.n1, n}, {"mean1", full.mean1, re.mean1, N * L}, {"rstd1", full.rstd1, re.rstd1, N * L},
            {"q1", full.q1, re.q1, n}, {"k1", full.k1, re.k1, n}, {"v1", full.v1, re.v1, n}, {"n2", full.n2, re.n2, n},
            {"q2", full.q2, re.q2, n}, {"k2", full.k2, re.k2, (int64_t)N * io.L * C}, {"v2", full.v2, re.v2, (int64_t)N * io.L * C},
            {"n3", full.n3, re.n3, n}, {"rstd3", full.rstd3, re.rstd3, N * L}, {"ff_h", full.ff_h, re.ff_h, n / C * 2 * F},
            {"a1", full.a1, re.a1, n}, {"a2", full.a2, re.a2, n}, {"ff_g", full.ff_g, re.ff_g, n / C * F}};
        for (size_t i = 0; i < sizeof f / sizeof *f; i++) {
            int optional = i >= 13;
            if (optional && frozen) {
                CHECK_MSG(f[i].b == NULL, "%s recomputed for frozen layers", f[i].name);
                continue;
            }
            CHECK_MSG(f[i].b && memcmp(f[i].a, f[i].b, sizeof(float) * (size_t)f[i].n) == 0, "%s differs", f[i].name);
        }
        tblock_acts_free(&re);
        unet_free(g);
    }
    tblock_acts_free(&full);
    sl_free_aligned(x), sl_free_aligned(out);
    tiny_io_free(&io);
    unet_free(m);
}

// The checkpointing forward keeps only what its doc says (blocks' inputs, x1, x2): the LayerNorm
// statistics it used to keep as well were overwritten, unfreed, by tblock_recompute (a leak of
// 121 KB per `backward unet --grad-checkpointing`).
TEST(transformer_checkpoint_keeps_no_layernorm_stats) {
    unet_model *m = tiny_unet(1, 77);
    REQUIRE(m != NULL);
    tiny_io io;
    tiny_io_new(&io, m, 78);
    const unet_transformer *tr = &m->down[2].attn[0];
    const int N = 2, H = 3, W = 2;
    const int64_t n = (int64_t)N * tr->C * H * W;
    float *x = sl_alloc_f32(n), *out = sl_alloc_f32(n);
    fill_uniform(x, (size_t)n, 79, -1, 1);
    transformer_acts acts = {0};
    transformer_forward_checkpoint(out, x, io.ctx, tr, NULL, N, H, W, io.L, &acts);
    for (int k = 0; k < acts.n_blocks; k++) {
        const tblock_acts *a = &acts.blocks[k];
        CHECK_MSG(a->x1 && a->x2, "block %d: residuals not kept", k);
        CHECK_MSG(!a->mean1 && !a->rstd1 && !a->mean2 && !a->rstd2 && !a->mean3 && !a->rstd3,
                  "block %d: LayerNorm statistics kept", k);
    }
    transformer_recompute(&acts, io.ctx, tr, NULL, NULL, N, H, W, io.L);
    CHECK(acts.blocks[0].mean1 && acts.blocks[0].rstd3);   // the recomputation refills them
    transformer_acts_free(&acts);
    sl_free_aligned(x), sl_free_aligned(out);
    tiny_io_free(&io);
    unet_free(m);
}

TEST(unet_frozen_params_no_buffers_same_input_grads) {
    unet_model *m = tiny_unet(0, 123);
    REQUIRE(m != NULL);
    tiny_io io;
    tiny_io_new(&io, m, 6);
    unet_model *none = unet_grads_new(m, "none"), *empty = unet_grads_new(m, NULL);
    REQUIRE(none && empty);
    CHECK_EQ_INT(unet_grads_count(none), 0);
    CHECK_EQ_INT(unet_grads_count(empty), 0);
    unet_model *all = unet_grads_new(m, "all");
    slot_list pm = {0};
    unet_walk(m, list_visitor, &pm);
    int64_t total = 0;
    for (int i = 0; i < pm.n; i++) total += pm.sizes[i];
    CHECK_EQ_INT(unet_grads_count(all), total);
    // dx and dcontext do not depend on which weights train; with none, no weight GEMM runs
    grad_run a, b, c;
    clock_t t0 = clock();
    for (int k = 0; k < 3; k++) {
        run_all(&a, m, &io, "none", 0);
        if (k < 2) run_free(&a);
    }
    clock_t t1 = clock();
    for (int k = 0; k < 3; k++) {
        run_all(&b, m, &io, "all", 0);
        if (k < 2) run_free(&b);
    }
    clock_t t2 = clock();
    run_all(&c, m, &io, "*.attn2.to_k.weight,conv_in.bias", 0);
    int64_t nx = (int64_t)io.N * io.Ci * io.h * io.w, nc = (int64_t)io.N * io.L * io.D;
    CHECK(memcmp(a.dx, b.dx, sizeof(float) * nx) == 0 && memcmp(a.dctx, b.dctx, sizeof(float) * nc) == 0);
    CHECK(memcmp(a.dx, c.dx, sizeof(float) * nx) == 0);
    fprintf(stderr, "    forward+backward cpu seconds: params none %.3f, all %.3f\n", (double)(t1 - t0) / CLOCKS_PER_SEC / 3,
            (double)(t2 - t1) / CLOCKS_PER_SEC / 3);
    // the pattern selected exactly the to_k weights and conv_in.bias, with the same values as "all"
    int n_sel = 0;
    for (int i = 0; i < pm.n; i++) {
        int want = strstr(pm.names[i], "attn2.to_k.weight") || !strcmp(pm.names[i], "conv_in.bias");
        CHECK_MSG((c.grads[i] != NULL) == want, "%s selected %d", pm.names[i], c.grads[i] != NULL);
        if (c.grads[i]) {
            n_sel++;
            CHECK(memcmp(c.grads[i], b.grads[i], sizeof(float) * (size_t)pm.sizes[i]) == 0);
        }
    }
    CHECK_EQ_INT(n_sel, 11 + 1);   // the tiny config has 11 transformer blocks
    // with neither dx nor dcontext asked for, the ops before the first trained one are skipped:
    // the gradients that are computed stay the same
    const char *late = "up_blocks.0.attentions.0.transformer_blocks.1.attn2.to_v.weight";
    unet_model *g1 = unet_grads_new(m, late);
    REQUIRE(g1 != NULL);
    tiny_backward(m, &io, g1, NULL, NULL, 1);
    for (int i = 0; i < pm.n; i++)
        if (!strcmp(pm.names[i], late))
            CHECK(memcmp(g1->up[0].attn[0].blocks[1].attn2_v, b.grads[i], sizeof(float) * (size_t)pm.sizes[i]) == 0);
    unet_free(g1);
    // the same for an up resnet, whose input is [h, skip]: its weight gradient needs the whole
    // concatenation even though no gradient goes back to h or the skip
    const char *up_res = "up_blocks.1.resnets.0.conv1.weight";
    unet_model *g2 = unet_grads_new(m, up_res);
    REQUIRE(g2 != NULL);
    tiny_backward(m, &io, g2, NULL, NULL, 0);
    for (int i = 0; i < pm.n; i++)
        if (!strcmp(pm.names[i], up_res))
            CHECK(memcmp(g2->up[1].res[0].conv1_w, b.grads[i], sizeof(float) * (size_t)pm.sizes[i]) == 0);
    unet_free(g2);
    run_free(&a), run_free(&b), run_free(&c);
    slot_list_free(&pm);
    unet_free(none), unet_free(empty), unet_free(all);
    tiny_io_free(&io);
    unet_free(m);
}

TEST(unet_grads_errors) {
    unet_model *m = tiny_unet(0, 1);
    REQUIRE(m != NULL);
    CHECK(unet_grads_new(m, "conv_in.weight,no_such.weight") == NULL);
    CHECK(strstr(sl_error_msg(), "'no_such.weight' is not a parameter") != NULL);
    CHECK(unet_grads_new(m, "*.attn3.*") == NULL);
    CHECK(strstr(sl_error_msg(), "*.attn3.*") != NULL);
    // a tape serves one backward
    tiny_io io;
    tiny_io_new(&io, m, 2);
    float *out = sl_alloc_f32(tiny_out_n(&io)), *dout = sl_alloc_f32(tiny_out_n(&io));
    unet_tape *tape = unet_forward_train(out, io.x, io.t, io.ctx, io.N, io.h, io.w, io.L, m, 0);
    REQUIRE(tape != NULL);
    tiny_loss(out, &io, dout);
    CHECK(unet_backward(NULL, NULL, NULL, dout, tape) == 0);
    CHECK(unet_backward(NULL, NULL, NULL, dout, tape) == -1);
    CHECK(strstr(sl_error_msg(), "already used") != NULL);
    unet_tape_free(tape);
    CHECK(unet_forward_train(out, io.x, io.t, io.ctx, 0, io.h, io.w, io.L, m, 0) == NULL);
    sl_free_aligned(out), sl_free_aligned(dout);
    tiny_io_free(&io);
    unet_free(m);
}

// ---------------------------------------------------------------- the command

TEST(unet_backward_cli) {
    char out[8192], cmd_params[4096];
    st_file *f = st_open(shared_path("fixtures/io/sd1_unet_grad.safetensors"));
    REQUIRE(f != NULL);
    char *params = fixture_params(f);
    snprintf(cmd_params, sizeof cmd_params, "%s", params);
    free(params);
    st_close(f);
    const char *o = tmp_path("g.safetensors");
    int rc = run_cmd(out, sizeof out, "%s backward unet --model %s --in %s --out %s --params %s --grad-checkpointing",
                     singlora_bin(), shared_path("fixtures/sd1_tiny"), shared_path("fixtures/io/sd1_unet_grad.safetensors"),
                     o, cmd_params);
    CHECK_MSG(rc == 0, "rc %d: %s", rc, out);
    st_file *got = st_open(o), *ref = st_open(shared_path("fixtures/io/sd1_unet_grad.safetensors"));
    REQUIRE(got && ref);
    CHECK_EQ_INT(got->n_entries, 3 + 13);
    const st_entry *l = st_find(got, "loss");
    CHECK(l && l->ndim == 0 && l->dt == DT_F32);
    for (int i = 0; i < got->n_entries; i++) {
        const st_entry *e = &got->entries[i];
        const st_entry *r = st_find(ref, e->name);
        CHECK_MSG(r != NULL, "%s not in the fixture", e->name);
        if (!r) continue;
        float *a = st_load_f32(got, e->name, -1, NULL), *b = st_load_f32(ref, e->name, -1, NULL);
        int64_t n = shape_numel(e->ndim, e->shape);
        double mx = 0;
        for (int64_t k = 0; k < n; k++) mx = fabs(b[k]) > mx ? fabs(b[k]) : mx;
        err_stats s = compare_f32(a, b, (size_t)n);
        CHECK_MSG(s.max_abs <= 1e-4 * mx, "%s: max abs %g vs max |ref| %g", e->name, s.max_abs, mx);
        sl_free_aligned(a), sl_free_aligned(b);
    }
    st_close(got), st_close(ref);
    // errors: no target; a wrong target shape; an unknown parameter
    rc = run_cmd(out, sizeof out, "%s backward unet --model %s --in %s --out %s", singlora_bin(),
                 shared_path("fixtures/sd1_tiny"), shared_path("fixtures/io/sd1_unet_io.safetensors"), o);
    CHECK(rc == 1 && strstr(out, "no tensor 'target'"));
    rc = run_cmd(out, sizeof out, "%s backward unet --model %s --in %s --out %s --params conv_in.weight,bogus", singlora_bin(),
                 shared_path("fixtures/sd1_tiny"), shared_path("fixtures/io/sd1_unet_grad.safetensors"), o);
    CHECK(rc == 1 && strstr(out, "'bogus' is not a parameter"));
    rc = run_cmd(out, sizeof out, "%s backward unet --model %s --in %s --out %s", singlora_bin(),
                 shared_path("fixtures/sd2_tiny"), shared_path("fixtures/io/sd1_unet_grad.safetensors"), o);
    CHECK(rc == 1 && strstr(out, "cross_attention_dim"));
    rc = run_cmd(out, sizeof out, "%s backward", singlora_bin());
    CHECK(rc == 1 && strstr(out, "unet"));
}
