// The CLIP text transformer forward: token + position embeddings, pre-LN blocks (causal
// self-attention, MLP), final LayerNorm; conditioning layers (clip-skip, SD 2.x penultimate) and pooling.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/text_encoder.h"
#include "engine/kernels/activations.h"
#include "engine/kernels/attention.h"
#include "engine/io/config.h"
#include "engine/core/error.h"
#include "engine/kernels/linear.h"
#include "engine/io/model_files.h"
#include "engine/kernels/norm.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "engine/io/weights.h"

int clip_text_forward(const clip_text_model *m, const int32_t *ids, int N, int L, int n_layers, float *out,
                      float **hs) {
    const clip_text_config *c = &m->cfg;
    int D = c->hidden, I = c->intermediate, H = c->heads, Dh = D / H;
    if (L < 1 || L > c->max_pos) return sl_error(NULL, "sequence length %d: the text encoder takes 1..%d tokens", L, c->max_pos);
    if (n_layers < 0 || n_layers > c->layers) return sl_error(NULL, "layer %d: the text encoder holds %d", n_layers, c->layers);
    for (int64_t i = 0; i < (int64_t)N * L; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return sl_error(NULL, "token id %d (row %lld, position %lld) is outside the vocabulary (0..%d)", ids[i],
                            (long long)(i / L), (long long)(i % L), c->vocab - 1);
    int64_t M = (int64_t)N * L;
    float *x = sl_alloc_f32(M * D);    // (N, L, D) the residual stream
    float *h = sl_alloc_f32(M * D);    // (N, L, D) normalised input of a sub-block
    float *q = sl_alloc_f32(M * D), *k = sl_alloc_f32(M * D), *v = sl_alloc_f32(M * D);   // (N, L, H·Dh)
    float *a = sl_alloc_f32(M * D);    // (N, L, D) attention output
    float *mlp = sl_alloc_f32(M * I);  // (N, L, I)
    // embeddings: token + position
    for (int64_t i = 0; i < M; i++) {
        const float *te = m->tok_emb + (int64_t)ids[i] * D, *pe = m->pos_emb + (i % L) * D;
        for (int d = 0; d < D; d++) x[i * D + d] = te[d] + pe[d];
    }
    if (hs && hs[0]) memcpy(hs[0], x, sizeof(float) * (size_t)(M * D));
    float scale = 1.0f / sqrtf((float)Dh);
    for (int l = 0; l < n_layers; l++) {
        const clip_text_layer *y = &m->layer[l];
        // x += out_proj(causal_attention(LN1(x)))
        layernorm_forward(h, NULL, NULL, x, y->ln1_w, y->ln1_b, (int)M, D, c->eps);
        linear_forward(q, h, y->q_w, y->q_b, (int)M, D, D);
        linear_forward(k, h, y->k_w, y->k_b, (int)M, D, D);
        linear_forward(v, h, y->v_w, y->v_b, (int)M, D, D);
        attention_forward(a, q, k, v, N, L, L, H, Dh, scale, 1);
        linear_forward(h, a, y->o_w, y->o_b, (int)M, D, D);
        for (int64_t i = 0; i < M * D; i++) x[i] += h[i];
        // x += fc2(act(fc1(LN2(x))))
        layernorm_forward(h, NULL, NULL, x, y->ln2_w, y->ln2_b, (int)M, D, c->eps);
        linear_forward(mlp, h, y->fc1_w, y->fc1_b, (int)M, D, I);
        if (c->act == CLIP_ACT_GELU) gelu_forward(mlp, mlp, M * I);
        else quick_gelu_forward(mlp, mlp, M * I);
        linear_forward(h, mlp, y->fc2_w, y->fc2_b, (int)M, I, D);
        for (int64_t i = 0; i < M * D; i++) x[i] += h[i];
        if (hs && hs[l + 1]) memcpy(hs[l + 1], x, sizeof(float) * (size_t)(M * D));
    }
    if (out) layernorm_forward(out, NULL, NULL, x, m->lnf_w, m->lnf_b, (int)M, D, c->eps);
    sl_free_aligned(x);
    sl_free_aligned(h);
    sl_free_aligned(q);
    sl_free_aligned(k);
    sl_free_aligned(v);
    sl_free_aligned(a);
    sl_free_aligned(mlp);
    return 0;
}

int clip_text_cond_layers(const clip_text_model *m, int clip_skip) {
    if (clip_skip <= 1) return m->cfg.layers;
    if (m->sd2) {
        sl_warn("--clip-skip %d is ignored for SD 2.x: its text encoder already conditions on the penultimate layer",
                clip_skip);
        return m->cfg.layers;
    }
    if (clip_skip > m->cfg.layers)
        return sl_error(NULL, "--clip-skip %d: the text encoder has %d layers (1..%d)", clip_skip, m->cfg.layers,
                        m->cfg.layers);
    return m->cfg.layers - (clip_skip - 1);
}

int clip_text_condition(const clip_text_model *m, const int32_t *ids, int N, int L, int clip_skip, float *cond) {
    int n = clip_text_cond_layers(m, clip_skip);
    if (n < 0) return -1;
    return clip_text_forward(m, ids, N, L, n, cond, NULL);
}

void clip_text_pool(const clip_text_model *m, const int32_t *ids, int N, int L, const float *last, float *pooled) {
    int D = m->cfg.hidden;
    for (int r = 0; r < N; r++) {
        const int32_t *row = ids + (int64_t)r * L;
        int at = 0;
        if (m->cfg.eos_id == 2) {
            for (int i = 1; i < L; i++)
                if (row[i] > row[at]) at = i;
        } else {
            for (int i = 0; i < L; i++)
                if (row[i] == m->cfg.eos_id) { at = i; break; }
        }
        memcpy(pooled + (int64_t)r * D, last + ((int64_t)r * L + at) * D, sizeof(float) * (size_t)D);
    }
}
