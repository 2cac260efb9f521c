// Transformer2DModel and BasicTransformerBlock forward (diffusers semantics), on f32 arrays.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/activations.h"
#include "engine/kernels/attention.h"
#include "engine/core/error.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/norm.h"
#include "engine/core/tensor.h"
#include "unet/internal.h"
#include "unet/unet.h"

#define LN_EPS 1e-5f        // BasicTransformerBlock's LayerNorms (diffusers default norm_eps)

static void trace_out(const unet_trace *t, const char *pre, const char *what, const float *d, int ndim, int64_t d0,
                      int64_t d1, int64_t d2, int64_t d3) {
    if (!t || !t->fn) return;
    char name[256];
    snprintf(name, sizeof name, "%s%s%s", pre, *what ? "." : "", what);
    int64_t shape[4] = {d0, d1, d2, d3};
    t->fn(t->ctx, name, d, ndim, shape);
}

void unet_add_inplace(float *y, const float *x, int64_t n) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

void unet_nchw_to_nlc(float *out, const float *x, int N, int C, int HW) {
    enum { T = 32 };
#pragma omp parallel for collapse(3) schedule(static)
    for (int n = 0; n < N; n++)
        for (int c0 = 0; c0 < C; c0 += T)
            for (int p0 = 0; p0 < HW; p0 += T) {
                const float *xs = x + (int64_t)n * C * HW;
                float *o = out + (int64_t)n * C * HW;
                int c1 = c0 + T < C ? c0 + T : C, p1 = p0 + T < HW ? p0 + T : HW;
                for (int c = c0; c < c1; c++)
                    for (int p = p0; p < p1; p++) o[(int64_t)p * C + c] = xs[(int64_t)c * HW + p];
            }
}

void unet_nlc_to_nchw(float *out, const float *t, const float *res, int N, int C, int HW) {
    enum { T = 32 };
#pragma omp parallel for collapse(3) schedule(static)
    for (int n = 0; n < N; n++)
        for (int c0 = 0; c0 < C; c0 += T)
            for (int p0 = 0; p0 < HW; p0 += T) {
                const float *ts = t + (int64_t)n * C * HW;
                const float *r = res ? res + (int64_t)n * C * HW : NULL;
                float *o = out + (int64_t)n * C * HW;
                int c1 = c0 + T < C ? c0 + T : C, p1 = p0 + T < HW ? p0 + T : HW;
                for (int c = c0; c < c1; c++)
                    for (int p = p0; p < p1; p++)
                        o[(int64_t)c * HW + p] = ts[(int64_t)p * C + c] + (r ? r[(int64_t)c * HW + p] : 0.0f);
            }
}

void tblock_acts_free(tblock_acts *a) {
    float **fields[] = {&a->n1, &a->mean1, &a->rstd1, &a->q1, &a->k1, &a->v1, &a->a1, &a->x1, &a->n2, &a->mean2,
                        &a->rstd2, &a->q2, &a->a2, &a->k2, &a->v2, &a->x2, &a->n3, &a->mean3, &a->rstd3, &a->ff_h,
                        &a->ff_g};
    for (size_t i = 0; i < sizeof fields / sizeof *fields; i++) {
        sl_free_aligned(*fields[i]);
        *fields[i] = NULL;
    }
}

// What a forward keeps: nothing (inference: a buffer is freed as soon as it is dead), all
// activations, or for gradient checkpointing only the residual stream x1, x2 (which spares the
// recomputation the self-attention forward, see tblock_recompute).
enum { KEEP_NONE, KEEP_ALL, KEEP_RESIDUALS };
#define DROP(p) do { if (keep != KEEP_ALL) { sl_free_aligned(p); (p) = NULL; } } while (0)
#define DROP_RESIDUAL(p) do { if (keep == KEEP_NONE) { sl_free_aligned(p); (p) = NULL; } } while (0)

// LayerNorm of x (M, C) into fresh n (M, C), mean (M), rstd (M).
static void layernorm_alloc(float **n, float **mean, float **rstd, const float *x, const float *w, const float *b, int M,
                            int C) {
    *n = sl_alloc_f32((int64_t)M * C);
    *mean = sl_alloc_f32(M);
    *rstd = sl_alloc_f32(M);
    layernorm_forward(*n, *mean, *rstd, x, w, b, M, C, LN_EPS);
}

// Self-attention's q1, k1, v1 (M, C) from n1.
static void self_qkv(tblock_acts *a, const unet_tblock *tb, const unet_adapt *ua, int M, int C) {
    a->q1 = sl_alloc_f32((int64_t)M * C);
    a->k1 = sl_alloc_f32((int64_t)M * C);
    a->v1 = sl_alloc_f32((int64_t)M * C);
    unet_linear_forward(a->q1, a->n1, tb->attn1_q, NULL, tb->ad[TB_ATTN1_Q], ua, M, C, C);
    unet_linear_forward(a->k1, a->n1, tb->attn1_k, NULL, tb->ad[TB_ATTN1_K], ua, M, C, C);
    unet_linear_forward(a->v1, a->n1, tb->attn1_v, NULL, tb->ad[TB_ATTN1_V], ua, M, C, C);
}

// Cross-attention's k2, v2 (Mc, C) from the context (Mc, D).
static void cross_kv(tblock_acts *a, const float *ctx, const unet_tblock *tb, const unet_adapt *ua, int Mc, int D, int C) {
    a->k2 = sl_alloc_f32((int64_t)Mc * C);
    a->v2 = sl_alloc_f32((int64_t)Mc * C);
    unet_linear_forward(a->k2, ctx, tb->attn2_k, NULL, tb->ad[TB_ATTN2_K], ua, Mc, D, C);
    unet_linear_forward(a->v2, ctx, tb->attn2_v, NULL, tb->ad[TB_ATTN2_V], ua, Mc, D, C);
}

static void tblock_run(float *out, const float *x, const float *ctx, const unet_tblock *tb, const unet_adapt *ua,
                       int N, int L, int Lc, tblock_acts *acts, int keep, const unet_trace *trace, const char *name) {
    const int C = tb->C, D = tb->D, H = tb->heads, Dh = tb->head_dim, F = tb->ff_inner;
    const int M = N * L, Mc = N * Lc;
    const float scale = 1.0f / sqrtf((float)Dh);
    tblock_acts local = {0};
    tblock_acts *a = acts ? acts : &local;

    // self-attention: x1 = x + to_out(attn(q, k, v)), q/k/v from LN1(x)
    layernorm_alloc(&a->n1, &a->mean1, &a->rstd1, x, tb->norm1_w, tb->norm1_b, M, C);
    trace_out(trace, name, "norm1", a->n1, 3, N, L, C, 0);
    self_qkv(a, tb, ua, M, C);
    DROP(a->n1);
    DROP(a->mean1);   // LayerNorm statistics: backward reads them only when kept (KEEP_ALL);
    DROP(a->rstd1);   // checkpointing recomputes them in tblock_recompute
    a->a1 = sl_alloc_f32((int64_t)M * C);
    attention_forward(a->a1, a->q1, a->k1, a->v1, N, L, L, H, Dh, scale, 0);
    DROP(a->q1);
    DROP(a->k1);
    DROP(a->v1);
    a->x1 = sl_alloc_f32((int64_t)M * C);
    unet_linear_forward(a->x1, a->a1, tb->attn1_out_w, tb->attn1_out_b, tb->ad[TB_ATTN1_OUT], ua, M, C, C);
    DROP(a->a1);
    trace_out(trace, name, "attn1", a->x1, 3, N, L, C, 0);
    unet_add_inplace(a->x1, x, (int64_t)M * C);

    // cross-attention: q from LN2(x1), k/v from the context
    layernorm_alloc(&a->n2, &a->mean2, &a->rstd2, a->x1, tb->norm2_w, tb->norm2_b, M, C);
    a->q2 = sl_alloc_f32((int64_t)M * C);
    unet_linear_forward(a->q2, a->n2, tb->attn2_q, NULL, tb->ad[TB_ATTN2_Q], ua, M, C, C);
    DROP(a->n2);
    DROP(a->mean2);
    DROP(a->rstd2);
    cross_kv(a, ctx, tb, ua, Mc, D, C);
    a->a2 = sl_alloc_f32((int64_t)M * C);
    attention_forward(a->a2, a->q2, a->k2, a->v2, N, L, Lc, H, Dh, scale, 0);
    DROP(a->q2);
    DROP(a->k2);
    DROP(a->v2);
    a->x2 = sl_alloc_f32((int64_t)M * C);
    unet_linear_forward(a->x2, a->a2, tb->attn2_out_w, tb->attn2_out_b, tb->ad[TB_ATTN2_OUT], ua, M, C, C);
    DROP(a->a2);
    trace_out(trace, name, "attn2", a->x2, 3, N, L, C, 0);
    unet_add_inplace(a->x2, a->x1, (int64_t)M * C);
    DROP_RESIDUAL(a->x1);

    // feed-forward: out = x2 + W2·GEGLU(W1·LN3(x2))
    layernorm_alloc(&a->n3, &a->mean3, &a->rstd3, a->x2, tb->norm3_w, tb->norm3_b, M, C);
    a->ff_h = sl_alloc_f32((int64_t)M * 2 * F);
    unet_linear_forward(a->ff_h, a->n3, tb->ff1_w, tb->ff1_b, tb->ad[TB_FF1], ua, M, C, 2 * F);
    DROP(a->n3);
    DROP(a->mean3);
    DROP(a->rstd3);
    a->ff_g = sl_alloc_f32((int64_t)M * F);
    geglu_forward(a->ff_g, a->ff_h, M, F);
    DROP(a->ff_h);
    unet_linear_forward(out, a->ff_g, tb->ff2_w, tb->ff2_b, tb->ad[TB_FF2], ua, M, F, C);
    DROP(a->ff_g);
    trace_out(trace, name, "ff", out, 3, N, L, C, 0);
    unet_add_inplace(out, a->x2, (int64_t)M * C);
    if (keep == KEEP_NONE) tblock_acts_free(a);
    trace_out(trace, name, "", out, 3, N, L, C, 0);
}

void tblock_forward(float *out, const float *x, const float *ctx, const unet_tblock *tb, const unet_adapt *ua, int N,
                    int L, int Lc, tblock_acts *acts, const unet_trace *trace, const char *name) {
    tblock_run(out, x, ctx, tb, ua, N, L, Lc, acts, acts ? KEEP_ALL : KEEP_NONE, trace, name);
}

// The input of a Linear is read by its backward only for a weight gradient or through an adapter.
static int reads_input(const unet_tblock *tb, int li, const float *gw) { return gw != NULL || tb->ad[li] != NULL; }

void tblock_recompute(tblock_acts *a, const float *x, const float *ctx, const unet_tblock *tb, const unet_tblock *g,
                      const unet_adapt *ua, int N, int L, int Lc) {
    const int C = tb->C, D = tb->D, H = tb->heads, Dh = tb->head_dim, F = tb->ff_inner;
    const int M = N * L, Mc = N * Lc;
    const float scale = 1.0f / sqrtf((float)Dh);
    // the same calls on the same inputs as tblock_run, so the same bits
    layernorm_alloc(&a->n1, &a->mean1, &a->rstd1, x, tb->norm1_w, tb->norm1_b, M, C);
    self_qkv(a, tb, ua, M, C);
    if (reads_input(tb, TB_ATTN1_OUT, g ? g->attn1_out_w : NULL)) {
        a->a1 = sl_alloc_f32((int64_t)M * C);
        attention_forward(a->a1, a->q1, a->k1, a->v1, N, L, L, H, Dh, scale, 0);
    }
    layernorm_alloc(&a->n2, &a->mean2, &a->rstd2, a->x1, tb->norm2_w, tb->norm2_b, M, C);
    a->q2 = sl_alloc_f32((int64_t)M * C);
    unet_linear_forward(a->q2, a->n2, tb->attn2_q, NULL, tb->ad[TB_ATTN2_Q], ua, M, C, C);
    cross_kv(a, ctx, tb, ua, Mc, D, C);
    if (reads_input(tb, TB_ATTN2_OUT, g ? g->attn2_out_w : NULL)) {
        a->a2 = sl_alloc_f32((int64_t)M * C);
        attention_forward(a->a2, a->q2, a->k2, a->v2, N, L, Lc, H, Dh, scale, 0);
    }
    layernorm_alloc(&a->n3, &a->mean3, &a->rstd3, a->x2, tb->norm3_w, tb->norm3_b, M, C);
    a->ff_h = sl_alloc_f32((int64_t)M * 2 * F);
    unet_linear_forward(a->ff_h, a->n3, tb->ff1_w, tb->ff1_b, tb->ad[TB_FF1], ua, M, C, 2 * F);
    if (reads_input(tb, TB_FF2, g ? g->ff2_w : NULL)) {
        a->ff_g = sl_alloc_f32((int64_t)M * F);
        geglu_forward(a->ff_g, a->ff_h, M, F);
    }
}

void transformer_acts_free(transformer_acts *a) {
    for (int k = 0; a->hs && k <= a->n_blocks; k++) sl_free_aligned(a->hs[k]);
    for (int k = 0; a->blocks && k < a->n_blocks; k++) tblock_acts_free(&a->blocks[k]);
    free(a->hs);
    free(a->blocks);
    memset(a, 0, sizeof *a);
}

static void transformer_run(float *out, const float *x, const float *ctx, const unet_transformer *tr,
                            const unet_adapt *ua, int N, int H, int W, int Lc, transformer_acts *acts, int keep,
                            const unet_trace *trace, const char *name) {
    const int C = tr->C, HW = H * W, nb = tr->n_blocks;
    const int64_t n = (int64_t)N * C * HW;
    if (acts) {
        transformer_acts_free(acts);
        acts->n_blocks = nb;
        acts->hs = sl_calloc((size_t)nb + 1, sizeof *acts->hs);
        acts->blocks = sl_calloc((size_t)nb, sizeof *acts->blocks);
    }
    // GroupNorm, then tokens (N, HW, C); a 1×1 conv proj_in on NCHW equals a Linear on the tokens
    float *gn = sl_alloc_f32(n);
    groupnorm_forward(gn, NULL, NULL, x, tr->norm_w, tr->norm_b, N, C, HW, tr->groups, TRANSFORMER_GN_EPS, 0);
    float *tok = sl_alloc_f32(n);
    unet_nchw_to_nlc(tok, gn, N, C, HW);
    float *h = gn;   // reuse (kept as block 0's input in training)
    unet_linear_forward(h, tok, tr->proj_in_w, tr->proj_in_b, tr->proj_in_ad, ua, N * HW, C, C);
    if (trace && trace->fn) {
        char pre[256];
        snprintf(pre, sizeof pre, "%s.proj_in", name);
        if (tr->linear_proj) {
            trace_out(trace, pre, "", h, 3, N, HW, C, 0);
        } else {   // the conv's output is NCHW
            unet_nlc_to_nchw(tok, h, NULL, N, C, HW);
            trace_out(trace, pre, "", tok, 4, N, C, H, W);
        }
    }
    if (acts) {   // every block's input is kept: blocks write fresh buffers
        acts->hs[0] = h;
        for (int k = 0; k < nb; k++) {
            char pre[256];
            snprintf(pre, sizeof pre, "%s.transformer_blocks.%d", name ? name : "", k);
            acts->hs[k + 1] = sl_alloc_f32(n);
            tblock_run(acts->hs[k + 1], acts->hs[k], ctx, &tr->blocks[k], ua, N, HW, Lc, &acts->blocks[k], keep, trace,
                       pre);
        }
        h = acts->hs[nb];
    } else {      // ping-pong between two buffers
        float *h2 = tok;
        for (int k = 0; k < nb; k++) {
            char pre[256];
            snprintf(pre, sizeof pre, "%s.transformer_blocks.%d", name ? name : "", k);
            tblock_forward(h2, h, ctx, &tr->blocks[k], ua, N, HW, Lc, NULL, trace, pre);
            float *s = h; h = h2; h2 = s;
        }
        tok = h2;
    }
    unet_linear_forward(tok, h, tr->proj_out_w, tr->proj_out_b, tr->proj_out_ad, ua, N * HW, C, C);
    unet_nlc_to_nchw(out, tok, x, N, C, HW);   // back to NCHW, + the input
    if (!acts) sl_free_aligned(h);
    sl_free_aligned(tok);
    trace_out(trace, name, "", out, 4, N, C, H, W);
}

void transformer_forward(float *out, const float *x, const float *ctx, const unet_transformer *tr,
                         const unet_adapt *ua, int N, int H, int W, int Lc, transformer_acts *acts,
                         const unet_trace *trace, const char *name) {
    transformer_run(out, x, ctx, tr, ua, N, H, W, Lc, acts, acts ? KEEP_ALL : KEEP_NONE, trace, name);
}

void transformer_forward_checkpoint(float *out, const float *x, const float *ctx, const unet_transformer *tr,
                                    const unet_adapt *ua, int N, int H, int W, int Lc, transformer_acts *acts) {
    transformer_run(out, x, ctx, tr, ua, N, H, W, Lc, acts, KEEP_RESIDUALS, NULL, NULL);
}

void transformer_recompute(transformer_acts *acts, const float *ctx, const unet_transformer *tr,
                           const unet_transformer *g, const unet_adapt *ua, int N, int H, int W, int Lc) {
    for (int k = 0; k < tr->n_blocks; k++)
        tblock_recompute(&acts->blocks[k], acts->hs[k], ctx, &tr->blocks[k], g ? &g->blocks[k] : NULL, ua, N, H * W,
                         Lc);
}
