// The CLIP text transformer forward: token + position embeddings, pre-LN blocks (causal
// self-attention, MLP), final LayerNorm; conditioning layers (clip-skip, SD 2.x penultimate) and pooling.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/backward.h"
#include "clip/text_encoder.h"
#include "engine/blocks/encoder_layer.h"
#include "engine/kernels/attention.h"
#include "engine/io/config.h"
#include "engine/core/error.h"
#include "engine/kernels/linear.h"
#include "engine/io/model_files.h"
#include "engine/kernels/norm.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "engine/io/weights.h"

// The forward of clip_text_forward and clip_text_forward_train: with a tape, every layer keeps
// its own scratch (its activations) and the final LayerNorm's input and statistics are kept.
static int text_forward(const clip_text_model *m, const int32_t *ids, int N, int L, int n_layers, float *out,
                        float **hs, clip_text_tape *tape) {
    const clip_text_config *c = &m->cfg;
    int D = c->hidden, I = c->intermediate, H = c->heads;
    if (L < 1 || L > c->max_pos) return sl_error(NULL, "sequence length %d: the text encoder takes 1..%d tokens", L, c->max_pos);
    if (n_layers < 0 || n_layers > c->layers) return sl_error(NULL, "layer %d: the text encoder holds %d", n_layers, c->layers);
    for (int64_t i = 0; i < (int64_t)N * L; i++)
        if (ids[i] < 0 || ids[i] >= c->vocab)
            return sl_error(NULL, "token id %d (row %lld, position %lld) is outside the vocabulary (0..%d)", ids[i],
                            (long long)(i / L), (long long)(i % L), c->vocab - 1);
    int64_t M = (int64_t)N * L;
    float *x = sl_alloc_f32(M * D);    // (N, L, D) the residual stream
    // embeddings: token + position
    for (int64_t i = 0; i < M; i++) {
        const float *te = m->tok_emb + (int64_t)ids[i] * D, *pe = m->pos_emb + (i % L) * D;
        for (int d = 0; d < D; d++) x[i * D + d] = te[d] + pe[d];
    }
    if (hs && hs[0]) memcpy(hs[0], x, sizeof(float) * (size_t)(M * D));
    encoder_shape sh = {N, L, D, H, I, c->eps, c->act == CLIP_ACT_GELU ? ENCODER_ACT_GELU : ENCODER_ACT_QUICK_GELU, 1};
    encoder_scratch sc;
    if (tape) {
        tape->sh = sh;
        tape->layer = sl_calloc((size_t)n_layers, sizeof *tape->layer);
        for (int l = 0; l < n_layers; l++) encoder_scratch_alloc(&tape->layer[l], &sh);
    } else {
        encoder_scratch_alloc(&sc, &sh);
    }
    for (int l = 0; l < n_layers; l++) {
        encoder_layer_forward(x, &m->layer[l], &sh, tape ? &tape->layer[l] : &sc);
        if (hs && hs[l + 1]) memcpy(hs[l + 1], x, sizeof(float) * (size_t)(M * D));
    }
    if (!tape) encoder_scratch_free(&sc);
    if (tape) {
        tape->mean = sl_alloc_f32(M), tape->rstd = sl_alloc_f32(M);
        layernorm_forward(out, tape->mean, tape->rstd, x, m->lnf_w, m->lnf_b, (int)M, D, c->eps);
        tape->x_last = x;
        return 0;
    }
    if (out) layernorm_forward(out, NULL, NULL, x, m->lnf_w, m->lnf_b, (int)M, D, c->eps);
    sl_free_aligned(x);
    return 0;
}

int clip_text_forward(const clip_text_model *m, const int32_t *ids, int N, int L, int n_layers, float *out,
                      float **hs) {
    return text_forward(m, ids, N, L, n_layers, out, hs, NULL);
}

clip_text_tape *clip_text_forward_train(const clip_text_model *m, const int32_t *ids, int N, int L, float *out) {
    clip_text_tape *t = sl_calloc(1, sizeof *t);
    t->m = m, t->N = N, t->L = L;
    if (text_forward(m, ids, N, L, m->cfg.layers, out, NULL, t)) {
        free(t->layer);
        free(t);
        return NULL;
    }
    t->ids = malloc(sizeof(int32_t) * (size_t)N * L);
    memcpy(t->ids, ids, sizeof(int32_t) * (size_t)N * L);
    return t;
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
