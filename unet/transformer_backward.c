// Backward of BasicTransformerBlock and Transformer2DModel, the reverse of unet/transformer.c.
// Frozen weights (NULL in the gradient mirror g) cost only their input-gradient GEMM.
#include <math.h>
#include <string.h>

#include "engine/kernels/activations.h"
#include "engine/kernels/attention.h"
#include "engine/kernels/norm.h"
#include "engine/core/tensor.h"
#include "unet/internal.h"
#include "unet/unet.h"


#define G(f) (g ? g->f : NULL)

static int trains(const adapter *a) { return a && (a->dA || a->ddown || a->dup || a->dmagnitude); }

void tblock_backward(float *dx, float *dctx, unet_tblock *g, const float *dout, const float *x, const float *ctx,
                     const unet_tblock *tb, const unet_adapt *ua, const tblock_acts *a, int N, int L, int Lc) {
    const int C = tb->C, D = tb->D, H = tb->heads, Dh = tb->head_dim, F = tb->ff_inner;
    const int M = N * L, Mc = N * Lc;
    const int64_t MC = (int64_t)M * C;
    const float scale = 1.0f / sqrtf((float)Dh);
    adapter *const *ad = tb->ad;

    // feed-forward: out = x2 + ff2(GEGLU(ff1(LN3(x2))))
    float *dx2 = sl_alloc_f32(MC);                   // (M, C)
    memcpy(dx2, dout, sizeof(float) * (size_t)MC);
    float *dg = sl_zeros_f32((int64_t)M * F);               // (M, F)
    unet_linear_backward(dg, G(ff2_w), G(ff2_b), dout, a->ff_g, tb->ff2_w, ad[TB_FF2], ua, M, F, C);
    float *dh = sl_zeros_f32((int64_t)M * 2 * F);           // (M, 2F)
    geglu_backward(dh, dg, a->ff_h, M, F);
    sl_free_aligned(dg);
    float *dn = sl_zeros_f32(MC);                           // (M, C): gradient of a LayerNorm output
    unet_linear_backward(dn, G(ff1_w), G(ff1_b), dh, a->n3, tb->ff1_w, ad[TB_FF1], ua, M, C, 2 * F);
    sl_free_aligned(dh);
    layernorm_backward(dx2, G(norm3_w), G(norm3_b), dn, a->x2, a->mean3, a->rstd3, tb->norm3_w, M, C);

    // cross-attention: x2 = x1 + to_out(attn(q2 = to_q(LN2(x1)), k2 = to_k(ctx), v2 = to_v(ctx)))
    float *dx1 = sl_alloc_f32(MC);
    memcpy(dx1, dx2, sizeof(float) * (size_t)MC);
    float *da = sl_zeros_f32(MC);                           // (M, C): gradient of an attention output
    unet_linear_backward(da, G(attn2_out_w), G(attn2_out_b), dx2, a->a2, tb->attn2_out_w, ad[TB_ATTN2_OUT], ua, M, C, C);
    sl_free_aligned(dx2);
    float *dq = sl_zeros_f32(MC);
    // k/v gradients only when something upstream of them needs one
    float *dk = dctx || G(attn2_k) || trains(ad[TB_ATTN2_K]) ? sl_zeros_f32((int64_t)Mc * C) : NULL;   // (Mc, C)
    float *dv = dctx || G(attn2_v) || trains(ad[TB_ATTN2_V]) ? sl_zeros_f32((int64_t)Mc * C) : NULL;
    attention_backward(dq, dk, dv, da, a->q2, a->k2, a->v2, N, L, Lc, H, Dh, scale, 0);
    if (dk) unet_linear_backward(dctx, G(attn2_k), NULL, dk, ctx, tb->attn2_k, ad[TB_ATTN2_K], ua, Mc, D, C);
    if (dv) unet_linear_backward(dctx, G(attn2_v), NULL, dv, ctx, tb->attn2_v, ad[TB_ATTN2_V], ua, Mc, D, C);
    sl_free_aligned(dk);
    sl_free_aligned(dv);
    memset(dn, 0, sizeof(float) * (size_t)MC);
    unet_linear_backward(dn, G(attn2_q), NULL, dq, a->n2, tb->attn2_q, ad[TB_ATTN2_Q], ua, M, C, C);
    layernorm_backward(dx1, G(norm2_w), G(norm2_b), dn, a->x1, a->mean2, a->rstd2, tb->norm2_w, M, C);

    // self-attention: x1 = x + to_out(attn(q1, k1, v1)), q/k/v = to_q/k/v(LN1(x))
    if (dx) unet_add_inplace(dx, dx1, MC);
    memset(da, 0, sizeof(float) * (size_t)MC);
    unet_linear_backward(da, G(attn1_out_w), G(attn1_out_b), dx1, a->a1, tb->attn1_out_w, ad[TB_ATTN1_OUT], ua, M, C, C);
    sl_free_aligned(dx1);
    float *dk1 = sl_zeros_f32(MC), *dv1 = sl_zeros_f32(MC);
    memset(dq, 0, sizeof(float) * (size_t)MC);
    attention_backward(dq, dk1, dv1, da, a->q1, a->k1, a->v1, N, L, L, H, Dh, scale, 0);
    sl_free_aligned(da);
    memset(dn, 0, sizeof(float) * (size_t)MC);
    unet_linear_backward(dn, G(attn1_q), NULL, dq, a->n1, tb->attn1_q, ad[TB_ATTN1_Q], ua, M, C, C);
    unet_linear_backward(dn, G(attn1_k), NULL, dk1, a->n1, tb->attn1_k, ad[TB_ATTN1_K], ua, M, C, C);
    unet_linear_backward(dn, G(attn1_v), NULL, dv1, a->n1, tb->attn1_v, ad[TB_ATTN1_V], ua, M, C, C);
    layernorm_backward(dx, G(norm1_w), G(norm1_b), dn, x, a->mean1, a->rstd1, tb->norm1_w, M, C);
    sl_free_aligned(dq);
    sl_free_aligned(dk1);
    sl_free_aligned(dv1);
    sl_free_aligned(dn);
}

void transformer_backward(float *dx, float *dctx, unet_transformer *g, const float *dout, const float *x,
                          const float *ctx, const unet_transformer *tr, const unet_adapt *ua,
                          const transformer_acts *a, int N, int H, int W, int Lc) {
    const int C = tr->C, HW = H * W, M = N * HW, nb = tr->n_blocks, G = tr->groups;
    const int64_t n = (int64_t)N * C * HW;

    // out = NCHW(proj_out(blocks(proj_in(tokens(GN(x)))))) + x
    if (dx) unet_add_inplace(dx, dout, n);
    float *dp = sl_alloc_f32(n);                     // (M, C)
    unet_nchw_to_nlc(dp, dout, N, C, HW);
    float *dh = sl_zeros_f32(n), *dh2 = sl_alloc_f32(n);    // (M, C) each
    unet_linear_backward(dh, G(proj_out_w), G(proj_out_b), dp, a->hs[nb], tr->proj_out_w, tr->proj_out_ad, ua, M, C, C);
    for (int k = nb - 1; k >= 0; k--) {
        memset(dh2, 0, sizeof(float) * (size_t)n);
        tblock_backward(dh2, dctx, g ? &g->blocks[k] : NULL, dh, a->hs[k], ctx, &tr->blocks[k], ua, &a->blocks[k], N,
                        HW, Lc);
        float *s = dh; dh = dh2; dh2 = s;
    }
    // proj_in's input, the GroupNorm output as tokens, recomputed (with the statistics)
    float *gn = sl_alloc_f32(n), *tok = dh2;
    float *mean = sl_alloc_f32((int64_t)N * G), *rstd = sl_alloc_f32((int64_t)N * G);
    groupnorm_forward(gn, mean, rstd, x, tr->norm_w, tr->norm_b, N, C, HW, G, TRANSFORMER_GN_EPS, 0);
    unet_nchw_to_nlc(tok, gn, N, C, HW);
    float *dtok = dp;
    memset(dtok, 0, sizeof(float) * (size_t)n);
    unet_linear_backward(dtok, G(proj_in_w), G(proj_in_b), dh, tok, tr->proj_in_w, tr->proj_in_ad, ua, M, C, C);
    float *dgn = gn;
    unet_nlc_to_nchw(dgn, dtok, NULL, N, C, HW);
    groupnorm_backward(dx, G(norm_w), G(norm_b), dgn, x, mean, rstd, tr->norm_w, N, C, HW, G);
    sl_free_aligned(gn);
    sl_free_aligned(dh);
    sl_free_aligned(dh2);
    sl_free_aligned(dp);
    sl_free_aligned(mean);
    sl_free_aligned(rstd);
}
