// CLIP image tower: config, names, forward.
#include "eval/clip_vision.h"

#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/kernels/linear.h"
#include "engine/core/tensor.h"

const vit_names CLIP_VISION_NAMES = {
    .cls = "vision_model.embeddings.class_embedding", .cls_3d = 0,
    .pos = "vision_model.embeddings.position_embedding.weight", .pos_3d = 0,
    .patch = "vision_model.embeddings.patch_embedding",
    .pre_ln = "vision_model.pre_layrnorm",   // sic: transformers' spelling
    .layer = "vision_model.encoder.layers.%d.",
    .ln1 = "layer_norm1",
    .q = "self_attn.q_proj", .k = "self_attn.k_proj", .v = "self_attn.v_proj",
    .o = "self_attn.out_proj",
    .ln2 = "layer_norm2",
    .fc1 = "mlp.fc1", .fc2 = "mlp.fc2",
    .ln_final = "vision_model.post_layernorm",
};

int clip_vision_config_read(vit_config *c, const json_config *vc) {
    memset(c, 0, sizeof *c);
    double eps;
    const char *act;
    int rc = 0;
    rc |= config_int(vc, "hidden_size", &c->hidden);
    rc |= config_int(vc, "intermediate_size", &c->intermediate);
    rc |= config_int(vc, "num_attention_heads", &c->heads);
    rc |= config_int(vc, "num_hidden_layers", &c->layers);
    rc |= config_int(vc, "image_size", &c->image_size);
    rc |= config_int(vc, "patch_size", &c->patch_size);
    rc |= config_int_or(vc, "num_channels", 3, &c->channels);
    rc |= config_float_or(vc, "layer_norm_eps", 1e-5, &eps);
    rc |= config_string_or(vc, "hidden_act", "quick_gelu", &act);
    if (rc) return -1;
    c->eps = (float)eps;
    if (!strcmp(act, "quick_gelu")) c->act = VIT_ACT_QUICK_GELU;
    else if (!strcmp(act, "gelu")) c->act = VIT_ACT_GELU;
    else return sl_error(vc->path, "vision_config key 'hidden_act': '%s' is not quick_gelu or gelu", act);
    c->patch_bias = 0;
    c->qkv_bias = 1;
    c->pre_norm = 1;
    return vit_config_check(c, vc->path);
}

int clip_vision_walk(clip_vision_model *m, param_visitor fn, void *ctx) {
    int rc = vit_walk(m->vit, &CLIP_VISION_NAMES, fn, ctx);
    if (rc) return rc;
    int D = m->vit->cfg.hidden;
    param_desc p = {.name = "visual_projection.weight", .ndim = 2, .shape = {m->proj_dim, D}, .kind = PARAM_WEIGHT,
                    .fan_in = D, .slot = &m->proj};
    return fn(ctx, &p);
}

void clip_vision_free(clip_vision_model *m) {
    if (!m) return;
    sl_free_aligned(m->proj);
    vit_free(m->vit);
    free(m);
}

void clip_vision_forward(const clip_vision_model *m, const float *pixels, int N, float *embeds, float *pooled,
                         float *last, float **hs) {
    const vit_config *c = &m->vit->cfg;
    int T = vit_tokens(c), D = c->hidden;
    float *x = last ? last : sl_alloc_f32((int64_t)N * T * D);   // (N, T, D)
    float *pool = pooled ? pooled : sl_alloc_f32((int64_t)N * D);   // (N, D)
    vit_forward(m->vit, pixels, N, x, hs);
    for (int n = 0; n < N; n++) vit_final_norm(m->vit, pool + (int64_t)n * D, x + (int64_t)n * T * D, 1);
    linear_forward(embeds, pool, m->proj, NULL, N, D, m->proj_dim);
    if (!last) sl_free_aligned(x);
    if (!pooled) sl_free_aligned(pool);
}
