// The shared ViT: parameter walk and forward on the engine's kernels.
#include "eval/vit.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/blocks/encoder_layer.h"
#include "engine/kernels/attention.h"
#include "engine/core/error.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/norm.h"
#include "engine/core/tensor.h"

int vit_tokens(const vit_config *c) {
    int g = c->image_size / c->patch_size;
    return g * g + 1;
}

int vit_config_check(const vit_config *c, const char *path) {
    if (c->hidden <= 0 || c->layers <= 0 || c->heads <= 0 || c->hidden % c->heads || c->intermediate <= 0 ||
        c->patch_size <= 0 || c->image_size < c->patch_size || c->image_size % c->patch_size || c->channels <= 0 ||
        !(c->eps > 0))
        return sl_error(path, "inconsistent ViT sizes (hidden %d, %d heads, %d layers, intermediate %d, image %d, "
                              "patch %d, %d channels)",
                        c->hidden, c->heads, c->layers, c->intermediate, c->image_size, c->patch_size, c->channels);
    return 0;
}

vit_model *vit_model_new(const vit_config *c) {
    vit_model *m = sl_calloc(1, sizeof *m);
    m->cfg = *c;
    m->layer = sl_calloc((size_t)c->layers, sizeof *m->layer);
    return m;
}

void vit_free(vit_model *m) {
    if (!m) return;
    if (m->layer) {
        static const vit_names any = {"cls", 0, "pos", 0, "patch", "pre", "l%d.", "a", "b", "c", "d", "e", "f", "g", "h", "n"};
        vit_walk(m, &any, param_free_visitor, NULL);
    }
    free(m->layer);
    free(m);
}

typedef struct {
    param_visitor fn;
    void *ctx;
    int rc;
} walker;

static void visit(walker *w, float **slot, param_kind kind, int64_t fan_in, int ndim, const int64_t *shape,
                  const char *name) {
    if (w->rc) return;
    param_desc p = {.name = name, .ndim = ndim, .kind = kind, .fan_in = fan_in, .slot = slot};
    memcpy(p.shape, shape, sizeof(int64_t) * (size_t)ndim);
    w->rc = w->fn(w->ctx, &p);
}

static void linear(walker *w, float **wt, float **b, int d_out, int d_in, const char *pre, const char *layer) {
    char name[256];
    snprintf(name, sizeof name, "%s%s.weight", pre, layer);
    visit(w, wt, PARAM_WEIGHT, d_in, 2, (int64_t[]){d_out, d_in}, name);
    if (!b) return;
    snprintf(name, sizeof name, "%s%s.bias", pre, layer);
    visit(w, b, PARAM_BIAS, d_in, 1, (int64_t[]){d_out}, name);
}

static void layernorm(walker *w, float **g, float **b, int D, const char *pre, const char *layer) {
    char name[256];
    snprintf(name, sizeof name, "%s%s.weight", pre, layer);
    visit(w, g, PARAM_NORM_WEIGHT, 0, 1, (int64_t[]){D}, name);
    snprintf(name, sizeof name, "%s%s.bias", pre, layer);
    visit(w, b, PARAM_NORM_BIAS, 0, 1, (int64_t[]){D}, name);
}

int vit_walk(vit_model *m, const vit_names *nm, param_visitor fn, void *ctx) {
    walker w = {fn, ctx, 0};
    const vit_config *c = &m->cfg;
    int D = c->hidden, I = c->intermediate, P = c->patch_size, C = c->channels, T = vit_tokens(c);
    char name[256];
    // Embedding tables: uniform ±1/sqrt(D) for random models (fan_in D), about CLIP's 0.02 std.
    if (nm->cls_3d) visit(&w, &m->cls, PARAM_WEIGHT, D, 3, (int64_t[]){1, 1, D}, nm->cls);
    else visit(&w, &m->cls, PARAM_WEIGHT, D, 1, (int64_t[]){D}, nm->cls);
    if (nm->pos_3d) visit(&w, &m->pos, PARAM_WEIGHT, D, 3, (int64_t[]){1, T, D}, nm->pos);
    else visit(&w, &m->pos, PARAM_WEIGHT, D, 2, (int64_t[]){T, D}, nm->pos);
    snprintf(name, sizeof name, "%s.weight", nm->patch);
    visit(&w, &m->patch_w, PARAM_WEIGHT, (int64_t)C * P * P, 4, (int64_t[]){D, C, P, P}, name);
    if (c->patch_bias) {
        snprintf(name, sizeof name, "%s.bias", nm->patch);
        visit(&w, &m->patch_b, PARAM_BIAS, (int64_t)C * P * P, 1, (int64_t[]){D}, name);
    }
    if (c->pre_norm) layernorm(&w, &m->pre_ln_w, &m->pre_ln_b, D, "", nm->pre_ln);
    for (int i = 0; i < c->layers; i++) {
        vit_layer *y = &m->layer[i];
        char p[160];
        snprintf(p, sizeof p, nm->layer, i);
        layernorm(&w, &y->ln1_w, &y->ln1_b, D, p, nm->ln1);
        linear(&w, &y->q_w, c->qkv_bias ? &y->q_b : NULL, D, D, p, nm->q);
        linear(&w, &y->k_w, c->qkv_bias ? &y->k_b : NULL, D, D, p, nm->k);
        linear(&w, &y->v_w, c->qkv_bias ? &y->v_b : NULL, D, D, p, nm->v);
        linear(&w, &y->o_w, &y->o_b, D, D, p, nm->o);
        layernorm(&w, &y->ln2_w, &y->ln2_b, D, p, nm->ln2);
        linear(&w, &y->fc1_w, &y->fc1_b, I, D, p, nm->fc1);
        linear(&w, &y->fc2_w, &y->fc2_b, D, I, p, nm->fc2);
    }
    layernorm(&w, &m->ln_w, &m->ln_b, D, "", nm->ln_final);
    return w.rc;
}

void vit_forward(const vit_model *m, const float *pixels, int N, float *x, float **hs) {
    const vit_config *c = &m->cfg;
    int D = c->hidden, I = c->intermediate, H = c->heads, P = c->patch_size, C = c->channels;
    int S = c->image_size, G = S / P, T = G * G + 1, K = C * P * P;
    int64_t M = (int64_t)N * T;
    // patch embedding: gather each patch as a row of (C, P, P), one GEMM with the conv weight (D, C·P·P)
    float *patches = sl_alloc_f32((int64_t)N * G * G * K);   // (N·G·G, C·P·P)
    float *emb = sl_alloc_f32((int64_t)N * G * G * D);       // (N·G·G, D)
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int gy = 0; gy < G; gy++)
            for (int gx = 0; gx < G; gx++) {
                float *row = patches + (((int64_t)n * G + gy) * G + gx) * K;
                for (int ch = 0; ch < C; ch++)
                    for (int py = 0; py < P; py++)
                        memcpy(row + (ch * P + py) * P,
                               pixels + (((int64_t)n * C + ch) * S + gy * P + py) * S + gx * P, sizeof(float) * (size_t)P);
            }
    linear_forward(emb, patches, m->patch_w, m->patch_b, N * G * G, K, D);
    sl_free_aligned(patches);
    // tokens: [cls; patches] + pos
    for (int n = 0; n < N; n++)
        for (int t = 0; t < T; t++) {
            const float *src = t == 0 ? m->cls : emb + ((int64_t)n * G * G + t - 1) * D;
            float *dst = x + ((int64_t)n * T + t) * D;
            for (int d = 0; d < D; d++) dst[d] = src[d] + m->pos[(int64_t)t * D + d];
        }
    sl_free_aligned(emb);
    if (c->pre_norm) layernorm_forward(x, NULL, NULL, x, m->pre_ln_w, m->pre_ln_b, (int)M, D, c->eps);
    if (hs && hs[0]) memcpy(hs[0], x, sizeof(float) * (size_t)(M * D));
    encoder_shape sh = {N, T, D, H, I, c->eps, c->act == VIT_ACT_GELU ? ENCODER_ACT_GELU : ENCODER_ACT_QUICK_GELU, 0};
    encoder_scratch sc;
    encoder_scratch_alloc(&sc, &sh);
    for (int l = 0; l < c->layers; l++) {
        encoder_layer_forward(x, &m->layer[l], &sh, &sc);
        if (hs && hs[l + 1]) memcpy(hs[l + 1], x, sizeof(float) * (size_t)(M * D));
    }
    encoder_scratch_free(&sc);
}

void vit_final_norm(const vit_model *m, float *out, const float *x, int M) {
    layernorm_forward(out, NULL, NULL, x, m->ln_w, m->ln_b, M, m->cfg.hidden, m->cfg.eps);
}
