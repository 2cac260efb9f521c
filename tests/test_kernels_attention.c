// Multi-head attention forward/backward against a double loop (full softmax per row) and finite
// differences; Lq ≠ Lk, several heads and batches, causal masking, multiple query tiles.
#include <stdlib.h>

#include "engine/kernels/attention.h"
#include "tests/kernel_check.h"
#include "tests/reference.h"


typedef struct { int B, Lq, Lk, H, Dh, causal; } attn_cfg;

static const attn_cfg cfgs[] = {
    {1, 1, 1, 1, 1, 0},
    {2, 7, 5, 3, 4, 0},      // cross-attention shape: Lq ≠ Lk
    {1, 9, 9, 2, 3, 1},      // causal self-attention
    {2, 6, 11, 1, 5, 1},     // causal with Lk > Lq
    {1, 300, 17, 2, 8, 0},   // 300 queries, 17 keys: 256-query tiles → two tiles, the last partial
    {2, 300, 300, 2, 4, 1},  // causal across tiles (keys limited per tile)
};
#define NCFG (int)(sizeof cfgs / sizeof cfgs[0])

TEST(attention_forward_matches_naive) {
    for (int t = 0; t < NCFG; t++) {
        attn_cfg c = cfgs[t];
        int C = c.H * c.Dh;
        int64_t nq = (int64_t)c.B * c.Lq * C, nk = (int64_t)c.B * c.Lk * C;
        float *q = rand_f32(nq, 131 + t, -2, 2), *k = rand_f32(nk, 132 + t, -2, 2), *v = rand_f32(nk, 133 + t, -1, 1);
        float *o = const_f32(nq, 7.0f);
        float scale = 1.0f / sqrtf((float)c.Dh);
        attention_forward(o, q, k, v, c.B, c.Lq, c.Lk, c.H, c.Dh, scale, c.causal);
        double *qd = to_f64(q, nq), *kd = to_f64(k, nk), *vd = to_f64(v, nk), *od = malloc(sizeof(double) * nq);
        ref_attention(od, qd, kd, vd, c.B, c.Lq, c.Lk, c.H, c.Dh, scale, c.causal);
        char label[96];
        snprintf(label, sizeof label, "attn B%d Lq%d Lk%d H%d Dh%d causal%d", c.B, c.Lq, c.Lk, c.H, c.Dh, c.causal);
        // outputs are convex combinations of |v| ≤ 1; f32 softmax/GEMM errors ~1e-6
        check_close_f64(label, o, od, nq, 5e-6);
        free(q), free(k), free(v), free(o), free(qd), free(kd), free(vd), free(od);
    }
}

// The numerically stable softmax: huge logits must not overflow.
TEST(attention_forward_large_logits_stable) {
    int B = 1, L = 4, H = 1, Dh = 2;
    float q[8] = {100, 100, -100, 50, 80, 80, 0, 0}, k[8] = {100, 100, -90, 40, 1, 1, 0, 0};
    float v[8] = {1, 2, 3, 4, 5, 6, 7, 8}, o[8];
    attention_forward(o, q, k, v, B, L, L, H, Dh, 1.0f, 0);
    for (int i = 0; i < 8; i++) CHECK(isfinite(o[i]));
    CHECK_NEAR(o[0], 1.0, 1e-6);   // query 0 puts all weight on key 0
    CHECK_NEAR(o[1], 2.0, 1e-6);
}

typedef struct {
    double *q, *k, *v, *o;
    const float *R;
    attn_cfg c;
    double scale;
} attn_ctx;

static double attn_loss(void *p) {
    attn_ctx *a = p;
    ref_attention(a->o, a->q, a->k, a->v, a->c.B, a->c.Lq, a->c.Lk, a->c.H, a->c.Dh, a->scale, a->c.causal);
    return dot_f64(a->o, a->R, (int64_t)a->c.B * a->c.Lq * a->c.H * a->c.Dh);
}

TEST(attention_backward_matches_finite_differences) {
    attn_cfg bc[] = {
        {2, 5, 4, 2, 3, 0},
        {1, 6, 6, 3, 2, 1},
        {2, 4, 7, 1, 3, 1},
        {1, 260, 9, 1, 2, 0},   // two query tiles accumulate into dk/dv
    };
    for (int t = 0; t < 4; t++) {
        attn_cfg c = bc[t];
        int C = c.H * c.Dh;
        int64_t nq = (int64_t)c.B * c.Lq * C, nk = (int64_t)c.B * c.Lk * C;
        float *q = rand_f32(nq, 141 + t, -1.5, 1.5), *k = rand_f32(nk, 142 + t, -1.5, 1.5);
        float *v = rand_f32(nk, 143 + t, -1, 1), *R = rand_f32(nq, 144 + t, -1, 1);
        float scale = 0.7f;
        float *dq = const_f32(nq, 0.5f), *dk = const_f32(nk, 0.5f), *dv = const_f32(nk, 0.5f);
        attention_backward(dq, dk, dv, R, q, k, v, c.B, c.Lq, c.Lk, c.H, c.Dh, scale, c.causal);
        attn_ctx a = {to_f64(q, nq), to_f64(k, nk), to_f64(v, nk), malloc(sizeof(double) * nq), R, c, scale};
        double *g = malloc(sizeof(double) * (nq > nk ? nq : nk));
        char label[96];
        // f32 softmax + GEMMs: ~1e-6 relative error in the gradients; FD in double ~1e-9. 1e-5
        // catches any wrong term (a missing scale or rowsum term is an O(1) relative error).
        snprintf(label, sizeof label, "attn B%d Lq%d Lk%d H%d causal%d dq", c.B, c.Lq, c.Lk, c.H, c.causal);
        fd_grad(attn_loss, &a, a.q, nq, g, 1e-6);
        check_grad(label, dq, 0.5f, g, nq, 1e-5);
        snprintf(label, sizeof label, "attn B%d Lq%d Lk%d H%d causal%d dk", c.B, c.Lq, c.Lk, c.H, c.causal);
        fd_grad(attn_loss, &a, a.k, nk, g, 1e-6);
        check_grad(label, dk, 0.5f, g, nk, 1e-5);
        snprintf(label, sizeof label, "attn B%d Lq%d Lk%d H%d causal%d dv", c.B, c.Lq, c.Lk, c.H, c.causal);
        fd_grad(attn_loss, &a, a.v, nk, g, 1e-6);
        check_grad(label, dv, 0.5f, g, nk, 1e-5);
        // NULL outputs skipped; dv alone is the same
        float *dv2 = const_f32(nk, 0.5f);
        attention_backward(NULL, NULL, dv2, R, q, k, v, c.B, c.Lq, c.Lk, c.H, c.Dh, scale, c.causal);
        for (int64_t i = 0; i < nk; i++) CHECK(dv2[i] == dv[i]);
        free(q), free(k), free(v), free(R), free(dq), free(dk), free(dv), free(dv2), free(g);
        free(a.q), free(a.k), free(a.v), free(a.o);
    }
}
