// The CLIP text encoder's parameters: one walk (diffusers names, shapes, init kinds, slots) that
// loading, freeing and `singlora init` all use, and its config.json.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/text_encoder.h"
#include "engine/config.h"
#include "engine/error.h"
#include "engine/model_files.h"
#include "engine/tensor.h"

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

static int read_config(const char *path, clip_text_config *c) {
    json_config *j = config_load(path);
    if (!j) return -1;
    const char *act;
    double eps;
    int rc = 0;
    rc |= config_int(j, "hidden_size", &c->hidden);
    rc |= config_int(j, "num_hidden_layers", &c->layers);
    rc |= config_int(j, "num_attention_heads", &c->heads);
    rc |= config_int(j, "intermediate_size", &c->intermediate);
    rc |= config_int_or(j, "max_position_embeddings", 77, &c->max_pos);
    rc |= config_int(j, "vocab_size", &c->vocab);
    rc |= config_float_or(j, "layer_norm_eps", 1e-5, &eps);
    rc |= config_int_or(j, "eos_token_id", 2, &c->eos_id);
    rc |= config_string_or(j, "hidden_act", "quick_gelu", &act);
    if (rc == 0) {
        c->eps = (float)eps;
        if (!strcmp(act, "quick_gelu")) c->act = CLIP_ACT_QUICK_GELU;
        else if (!strcmp(act, "gelu")) c->act = CLIP_ACT_GELU;
        else rc = sl_error(path, "key 'hidden_act': '%s' is not a CLIP activation (quick_gelu or gelu)", act);
    }
    if (rc == 0 && (c->hidden <= 0 || c->layers <= 0 || c->heads <= 0 || c->hidden % c->heads || c->intermediate <= 0 ||
                    c->max_pos <= 0 || c->vocab <= 0 || !(c->eps > 0)))
        rc = sl_error(path, "inconsistent text encoder sizes (hidden_size %d, %d heads, %d layers, intermediate %d, "
                            "%d positions, vocabulary %d)",
                      c->hidden, c->heads, c->layers, c->intermediate, c->max_pos, c->vocab);
    config_free(j);
    return rc;
}

// A config given as a diffusers folder, a text_encoder folder or the config.json itself.
char *clip_text_config_path(const char *p) {
    char buf[4096];
    if (!path_is_dir(p)) return path_exists(p) ? sl_strdup(p) : (sl_error(p, "no such config file"), NULL);
    snprintf(buf, sizeof buf, "%s/text_encoder/config.json", p);
    if (path_exists(buf)) return sl_strdup(buf);
    snprintf(buf, sizeof buf, "%s/config.json", p);
    if (path_exists(buf)) return sl_strdup(buf);
    sl_error(p, "no text_encoder/config.json or config.json here");
    return NULL;
}

int clip_text_config_load(clip_text_config *c, const char *path) {
    char *p = clip_text_config_path(path);
    if (!p) return -1;
    int rc = read_config(p, c);
    free(p);
    return rc;
}
