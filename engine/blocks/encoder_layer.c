#include "engine/blocks/encoder_layer.h"

#include <math.h>

#include "engine/core/tensor.h"
#include "engine/kernels/activations.h"
#include "engine/kernels/attention.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/norm.h"

void encoder_scratch_alloc(encoder_scratch *s, const encoder_shape *sh) {
    int64_t M = (int64_t)sh->N * sh->L;
    s->h = sl_alloc_f32(M * sh->D);
    s->q = sl_alloc_f32(M * sh->D);
    s->k = sl_alloc_f32(M * sh->D);
    s->v = sl_alloc_f32(M * sh->D);
    s->a = sl_alloc_f32(M * sh->D);
    s->mlp = sl_alloc_f32(M * sh->I);
}

void encoder_scratch_free(encoder_scratch *s) {
    float *bufs[] = {s->h, s->q, s->k, s->v, s->a, s->mlp};
    for (int i = 0; i < 6; i++) sl_free_aligned(bufs[i]);
}

void encoder_layer_forward(float *x, const encoder_layer *y, const encoder_shape *sh, encoder_scratch *s) {
    const int M = sh->N * sh->L, D = sh->D, I = sh->I, Dh = sh->D / sh->H;
    float *h = s->h, *mlp = s->mlp;
    // x += out_proj(attention(LN1(x)))
    layernorm_forward(h, NULL, NULL, x, y->ln1_w, y->ln1_b, M, D, sh->eps);
    linear_forward(s->q, h, y->q_w, y->q_b, M, D, D);
    linear_forward(s->k, h, y->k_w, y->k_b, M, D, D);
    linear_forward(s->v, h, y->v_w, y->v_b, M, D, D);
    attention_forward(s->a, s->q, s->k, s->v, sh->N, sh->L, sh->L, sh->H, Dh, 1.0f / sqrtf((float)Dh), sh->causal);
    linear_forward(h, s->a, y->o_w, y->o_b, M, D, D);
    for (int64_t i = 0; i < (int64_t)M * D; i++) x[i] += h[i];
    // x += fc2(act(fc1(LN2(x))))
    layernorm_forward(h, NULL, NULL, x, y->ln2_w, y->ln2_b, M, D, sh->eps);
    linear_forward(mlp, h, y->fc1_w, y->fc1_b, M, D, I);
    if (sh->act == ENCODER_ACT_GELU) gelu_forward(mlp, mlp, (int64_t)M * I);
    else quick_gelu_forward(mlp, mlp, (int64_t)M * I);
    linear_forward(h, mlp, y->fc2_w, y->fc2_b, M, I, D);
    for (int64_t i = 0; i < (int64_t)M * D; i++) x[i] += h[i];
}
