// The CLIP text encoder's parameters: one walk (diffusers names, shapes, init kinds, slots) that
// loading, freeing and `singlora init` all use, and its config.json.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/text_encoder.h"
#include "engine/io/config.h"
#include "engine/core/error.h"
#include "engine/io/model_files.h"
#include "engine/core/tensor.h"

typedef struct {
    param_visitor fn;
    void *ctx;
    int rc;
} walker;

static void visit(walker *w, float **slot, param_kind kind, int64_t fan_in, int ndim, int64_t d0, int64_t d1,
                  const char *name) {
    if (w->rc) return;
    param_desc p = {.name = name, .ndim = ndim, .shape = {d0, d1}, .kind = kind, .fan_in = fan_in, .slot = slot};
    w->rc = w->fn(w->ctx, &p);
}

// weight (d_out, d_in) + bias (d_out) of a Linear named pre.layer
static void linear(walker *w, float **wt, float **b, int d_out, int d_in, const char *pre, const char *layer) {
    char name[160];
    snprintf(name, sizeof name, "%s%s.weight", pre, layer);
    visit(w, wt, PARAM_WEIGHT, d_in, 2, d_out, d_in, name);
    snprintf(name, sizeof name, "%s%s.bias", pre, layer);
    visit(w, b, PARAM_BIAS, d_in, 1, d_out, 0, name);
}

static void layernorm(walker *w, float **g, float **b, int D, const char *pre, const char *layer) {
    char name[160];
    snprintf(name, sizeof name, "%s%s.weight", pre, layer);
    visit(w, g, PARAM_NORM_WEIGHT, 0, 1, D, 0, name);
    snprintf(name, sizeof name, "%s%s.bias", pre, layer);
    visit(w, b, PARAM_NORM_BIAS, 0, 1, D, 0, name);
}

int clip_text_walk(clip_text_model *m, param_visitor fn, void *ctx) {
    walker w = {fn, ctx, 0};
    const clip_text_config *c = &m->cfg;
    int D = c->hidden, I = c->intermediate;
    // Embedding tables: PARAM_WEIGHT with fan_in D gives uniform ±1/sqrt(D), std ≈ 0.02 at
    // D = 768 (CLIP's own init: normal with std 0.02 / 0.01).
    visit(&w, &m->tok_emb, PARAM_WEIGHT, D, 2, c->vocab, D, "text_model.embeddings.token_embedding.weight");
    visit(&w, &m->pos_emb, PARAM_WEIGHT, D, 2, c->max_pos, D, "text_model.embeddings.position_embedding.weight");
    for (int i = 0; i < c->layers; i++) {
        clip_text_layer *y = &m->layer[i];
        char p[64];
        snprintf(p, sizeof p, "text_model.encoder.layers.%d.", i);
        layernorm(&w, &y->ln1_w, &y->ln1_b, D, p, "layer_norm1");
        linear(&w, &y->q_w, &y->q_b, D, D, p, "self_attn.q_proj");
        linear(&w, &y->k_w, &y->k_b, D, D, p, "self_attn.k_proj");
        linear(&w, &y->v_w, &y->v_b, D, D, p, "self_attn.v_proj");
        linear(&w, &y->o_w, &y->o_b, D, D, p, "self_attn.out_proj");
        layernorm(&w, &y->ln2_w, &y->ln2_b, D, p, "layer_norm2");
        linear(&w, &y->fc1_w, &y->fc1_b, I, D, p, "mlp.fc1");
        linear(&w, &y->fc2_w, &y->fc2_b, D, I, p, "mlp.fc2");
    }
    layernorm(&w, &m->lnf_w, &m->lnf_b, D, "text_model.", "final_layer_norm");
    return w.rc;
}

// An empty model (no weights) with c's layers, ready for a walk.
clip_text_model *clip_text_model_new(const clip_text_config *c) {
    clip_text_model *m = sl_calloc(1, sizeof *m);
    m->cfg = *c;
    m->layer = sl_calloc((size_t)c->layers, sizeof *m->layer);
    return m;
}

void clip_text_free(clip_text_model *m) {
    if (!m) return;
    if (m->layer) clip_text_walk(m, param_free_visitor, NULL);
    free(m->layer);
    free(m);
}

int clip_text_enumerate(const clip_text_config *c, param_visitor fn, void *ctx) {
    clip_text_model *m = clip_text_model_new(c);
    int rc = clip_text_walk(m, fn, ctx);
    clip_text_free(m);
    return rc;
}

// ---- config ----
