#include "engine/blocks/encoder_layer.h"

#include <math.h>
#include <string.h>

#include "engine/core/tensor.h"
#include "engine/kernels/activations.h"
#include "engine/kernels/attention.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/norm.h"

void encoder_scratch_alloc(encoder_scratch *s, const encoder_shape *sh) {
    int64_t M = (int64_t)sh->N * sh->L;
    float **md[] = {&s->x_in, &s->x_mid, &s->ln1, &s->ln2, &s->q, &s->k, &s->v, &s->a, &s->tmp};
    for (int i = 0; i < 9; i++) *md[i] = sl_alloc_f32(M * sh->D);
    s->pre = sl_alloc_f32(M * sh->I);
    s->mlp = sl_alloc_f32(M * sh->I);
    float **m1[] = {&s->mean1, &s->rstd1, &s->mean2, &s->rstd2};
    for (int i = 0; i < 4; i++) *m1[i] = sl_alloc_f32(M);
}

void encoder_scratch_free(encoder_scratch *s) {
    float *bufs[] = {s->x_in, s->x_mid, s->ln1, s->ln2, s->q,     s->k,     s->v,     s->a,
                     s->tmp,  s->pre,   s->mlp, s->mean1, s->rstd1, s->mean2, s->rstd2};
    for (int i = 0; i < 15; i++) sl_free_aligned(bufs[i]);
}

static float attention_scale(const encoder_shape *sh) { return 1.0f / sqrtf((float)(sh->D / sh->H)); }

void encoder_layer_forward(float *x, const encoder_layer *y, const encoder_shape *sh, encoder_scratch *s) {
    const int M = sh->N * sh->L, D = sh->D, I = sh->I, Dh = sh->D / sh->H;
    const int64_t MD = (int64_t)M * D;
    // x += out_proj(attention(LN1(x)))
    memcpy(s->x_in, x, sizeof(float) * (size_t)MD);
    layernorm_forward(s->ln1, s->mean1, s->rstd1, x, y->ln1_w, y->ln1_b, M, D, sh->eps);
    linear_forward(s->q, s->ln1, y->q_w, y->q_b, M, D, D);
    linear_forward(s->k, s->ln1, y->k_w, y->k_b, M, D, D);
    linear_forward(s->v, s->ln1, y->v_w, y->v_b, M, D, D);
    attention_forward(s->a, s->q, s->k, s->v, sh->N, sh->L, sh->L, sh->H, Dh, attention_scale(sh), sh->causal);
    linear_forward(s->tmp, s->a, y->o_w, y->o_b, M, D, D);
    for (int64_t i = 0; i < MD; i++) x[i] += s->tmp[i];
    // x += fc2(act(fc1(LN2(x))))
    memcpy(s->x_mid, x, sizeof(float) * (size_t)MD);
    layernorm_forward(s->ln2, s->mean2, s->rstd2, x, y->ln2_w, y->ln2_b, M, D, sh->eps);
    linear_forward(s->pre, s->ln2, y->fc1_w, y->fc1_b, M, D, I);
    if (sh->act == ENCODER_ACT_GELU) gelu_forward(s->mlp, s->pre, (int64_t)M * I);
    else quick_gelu_forward(s->mlp, s->pre, (int64_t)M * I);
    linear_forward(s->tmp, s->mlp, y->fc2_w, y->fc2_b, M, I, D);
    for (int64_t i = 0; i < MD; i++) x[i] += s->tmp[i];
}

void encoder_layer_backward(float *dx, encoder_layer *g, const encoder_layer *y, const encoder_shape *sh,
                            const encoder_scratch *s) {
    const int M = sh->N * sh->L, D = sh->D, I = sh->I, Dh = sh->D / sh->H;
    const int64_t MD = (int64_t)M * D, MI = (int64_t)M * I;
    float *dh = sl_alloc_f32(MD), *dmlp = sl_alloc_f32(MI), *dpre = sl_alloc_f32(MI);
    float *da = sl_alloc_f32(MD), *dq = sl_alloc_f32(MD), *dk = sl_alloc_f32(MD), *dv = sl_alloc_f32(MD);
    // MLP half: dx (the output's gradient) flows through the residual and through fc2(act(fc1(LN2)))
    memset(dmlp, 0, sizeof(float) * (size_t)MI);
    linear_backward(dmlp, g->fc2_w, g->fc2_b, dx, s->mlp, y->fc2_w, M, I, D);
    memset(dpre, 0, sizeof(float) * (size_t)MI);
    if (sh->act == ENCODER_ACT_GELU) gelu_backward(dpre, dmlp, s->pre, MI);
    else quick_gelu_backward(dpre, dmlp, s->pre, MI);
    memset(dh, 0, sizeof(float) * (size_t)MD);
    linear_backward(dh, g->fc1_w, g->fc1_b, dpre, s->ln2, y->fc1_w, M, D, I);
    layernorm_backward(dx, g->ln2_w, g->ln2_b, dh, s->x_mid, s->mean2, s->rstd2, y->ln2_w, M, D);
    // attention half: dx now at x_mid
    memset(da, 0, sizeof(float) * (size_t)MD);
    linear_backward(da, g->o_w, g->o_b, dx, s->a, y->o_w, M, D, D);
    memset(dq, 0, sizeof(float) * (size_t)MD);
    memset(dk, 0, sizeof(float) * (size_t)MD);
    memset(dv, 0, sizeof(float) * (size_t)MD);
    attention_backward(dq, dk, dv, da, s->q, s->k, s->v, sh->N, sh->L, sh->L, sh->H, Dh, attention_scale(sh), sh->causal);
    memset(dh, 0, sizeof(float) * (size_t)MD);
    linear_backward(dh, g->q_w, g->q_b, dq, s->ln1, y->q_w, M, D, D);
    linear_backward(dh, g->k_w, g->k_b, dk, s->ln1, y->k_w, M, D, D);
    linear_backward(dh, g->v_w, g->v_b, dv, s->ln1, y->v_w, M, D, D);
    layernorm_backward(dx, g->ln1_w, g->ln1_b, dh, s->x_in, s->mean1, s->rstd1, y->ln1_w, M, D);
    float *bufs[] = {dh, dmlp, dpre, da, dq, dk, dv};
    for (int i = 0; i < 7; i++) sl_free_aligned(bufs[i]);
}
