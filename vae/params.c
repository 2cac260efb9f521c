// The VAE's parameters: one walk over the architecture (names + shapes + slots) that loading,
// listing and random initialisation all use, so they cannot disagree.
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/model_files.h"
#include "engine/core/tensor.h"
#include "engine/io/weights.h"
#include "vae/names.h"
#include "vae/vae.h"

typedef struct {
    param_visitor fn;
    void *user;
    char name[256];
} walker;

static int param(walker *wk, const char *base, const char *leaf, int ndim, const int64_t *shape, param_kind kind,
                 int64_t fan_in, float **slot) {
    if ((size_t)snprintf(wk->name, sizeof wk->name, "%s.%s", base, leaf) >= sizeof wk->name) return -1;
    param_desc p = {.name = wk->name, .ndim = ndim, .kind = kind, .fan_in = fan_in, .slot = slot};
    for (int i = 0; i < ndim; i++) p.shape[i] = shape[i];
    return wk->fn(wk->user, &p);
}

// base.leaf into b (names are short; a too long one is an error, not a silent truncation)
#define NAME(b, ...) do { if ((size_t)snprintf(b, sizeof b, __VA_ARGS__) >= sizeof b) return -1; } while (0)

static int walk_norm(walker *wk, const char *base, int C, float **w, float **b) {
    int64_t s[1] = {C};
    return param(wk, base, "weight", 1, s, PARAM_NORM_WEIGHT, 0, w) || param(wk, base, "bias", 1, s, PARAM_NORM_BIAS, 0, b)
               ? -1
               : 0;
}

static int walk_conv(walker *wk, const char *base, vae_conv *cv, int C_in, int C_out, int k) {
    cv->C_in = C_in, cv->C_out = C_out, cv->k = k;
    int64_t ws[4] = {C_out, C_in, k, k}, bs[1] = {C_out}, fan_in = (int64_t)C_in * k * k;
    return param(wk, base, "weight", 4, ws, PARAM_WEIGHT, fan_in, &cv->w) ||
                   param(wk, base, "bias", 1, bs, PARAM_BIAS, fan_in, &cv->b)
               ? -1
               : 0;
}

static int walk_linear(walker *wk, const char *base, int C_in, int C_out, float **w, float **b) {
    int64_t ws[2] = {C_out, C_in}, bs[1] = {C_out};
    return param(wk, base, "weight", 2, ws, PARAM_WEIGHT, C_in, w) || param(wk, base, "bias", 1, bs, PARAM_BIAS, C_in, b)
               ? -1
               : 0;
}

static int walk_resnet(walker *wk, const char *base, resnet_block *rb, int C_in, int C_out, const vae_config *c) {
    char b[200];
    rb->C_in = C_in, rb->C_out = C_out, rb->groups = c->groups, rb->temb_dim = 0;
    rb->eps = c->eps, rb->output_scale_factor = 1.0f;
    vae_conv cv;
    NAME(b, "%s.norm1", base);
    if (walk_norm(wk, b, C_in, &rb->norm1_w, &rb->norm1_b)) return -1;
    NAME(b, "%s.conv1", base);
    cv.w = rb->conv1_w, cv.b = rb->conv1_b;
    if (walk_conv(wk, b, &cv, C_in, C_out, 3)) return -1;
    rb->conv1_w = cv.w, rb->conv1_b = cv.b;
    NAME(b, "%s.norm2", base);
    if (walk_norm(wk, b, C_out, &rb->norm2_w, &rb->norm2_b)) return -1;
    NAME(b, "%s.conv2", base);
    cv.w = rb->conv2_w, cv.b = rb->conv2_b;
    if (walk_conv(wk, b, &cv, C_out, C_out, 3)) return -1;
    rb->conv2_w = cv.w, rb->conv2_b = cv.b;
    if (C_in != C_out) {
        NAME(b, "%s.conv_shortcut", base);
        cv.w = rb->skip_w, cv.b = rb->skip_b;
        if (walk_conv(wk, b, &cv, C_in, C_out, 1)) return -1;
        rb->skip_w = cv.w, rb->skip_b = cv.b;
    }
    return 0;
}

static int walk_attn(walker *wk, const char *base, vae_attn *a, int C, const vae_config *c) {
    char b[200];
    a->C = C, a->groups = c->groups, a->eps = c->eps;
    NAME(b, "%s.group_norm", base);
    if (walk_norm(wk, b, C, &a->norm_w, &a->norm_b)) return -1;
    NAME(b, "%s.to_q", base);
    if (walk_linear(wk, b, C, C, &a->q_w, &a->q_b)) return -1;
    NAME(b, "%s.to_k", base);
    if (walk_linear(wk, b, C, C, &a->k_w, &a->k_b)) return -1;
    NAME(b, "%s.to_v", base);
    if (walk_linear(wk, b, C, C, &a->v_w, &a->v_b)) return -1;
    NAME(b, "%s.to_out.0", base);
    return walk_linear(wk, b, C, C, &a->o_w, &a->o_b);
}

static int walk_mid(walker *wk, const char *coder, vae_coder *cd, int C, const vae_config *c) {
    char b[200];
    NAME(b, "%s.mid_block.resnets.0", coder);
    if (walk_resnet(wk, b, &cd->mid_res[0], C, C, c)) return -1;
    if (c->mid_attention) {
        NAME(b, "%s.mid_block.attentions.0", coder);
        if (walk_attn(wk, b, &cd->mid_attn, C, c)) return -1;
    }
    NAME(b, "%s.mid_block.resnets.1", coder);
    return walk_resnet(wk, b, &cd->mid_res[1], C, C, c);
}

static int walk_encoder(walker *wk, vae_coder *e, const vae_config *c) {
    char b[200];
    int nl = c->n_levels;
    if (walk_conv(wk, "encoder.conv_in", &e->conv_in, c->in_channels, c->block_out[0], 3)) return -1;
    int C = c->block_out[0];
    for (int i = 0; i < nl; i++) {
        vae_level *lv = &e->levels[i];
        lv->n_resnets = c->layers_per_block;
        if (!lv->resnets) lv->resnets = sl_calloc((size_t)lv->n_resnets, sizeof *lv->resnets);
        for (int j = 0; j < lv->n_resnets; j++) {
            NAME(b, "encoder.down_blocks.%d.resnets.%d", i, j);
            if (walk_resnet(wk, b, &lv->resnets[j], C, c->block_out[i], c)) return -1;
            C = c->block_out[i];
        }
        lv->resample = i < nl - 1;
        if (lv->resample) {
            NAME(b, "encoder.down_blocks.%d.downsamplers.0.conv", i);
            if (walk_conv(wk, b, &lv->sample, C, C, 3)) return -1;
        }
    }
    if (walk_mid(wk, "encoder", e, C, c)) return -1;
    if (walk_norm(wk, "encoder.conv_norm_out", C, &e->norm_out_w, &e->norm_out_b)) return -1;
    return walk_conv(wk, "encoder.conv_out", &e->conv_out, C, 2 * c->latent_channels, 3);
}

static int walk_decoder(walker *wk, vae_coder *d, const vae_config *c) {
    char b[200];
    int nl = c->n_levels;
    int C = c->block_out[nl - 1];
    if (walk_conv(wk, "decoder.conv_in", &d->conv_in, c->latent_channels, C, 3)) return -1;
    if (walk_mid(wk, "decoder", d, C, c)) return -1;
    for (int i = 0; i < nl; i++) {
        vae_level *lv = &d->levels[i];
        int C_out = c->block_out[nl - 1 - i];
        lv->n_resnets = c->layers_per_block + 1;
        if (!lv->resnets) lv->resnets = sl_calloc((size_t)lv->n_resnets, sizeof *lv->resnets);
        for (int j = 0; j < lv->n_resnets; j++) {
            NAME(b, "decoder.up_blocks.%d.resnets.%d", i, j);
            if (walk_resnet(wk, b, &lv->resnets[j], C, C_out, c)) return -1;
            C = C_out;
        }
        lv->resample = i < nl - 1;
        if (lv->resample) {
            NAME(b, "decoder.up_blocks.%d.upsamplers.0.conv", i);
            if (walk_conv(wk, b, &lv->sample, C, C, 3)) return -1;
        }
    }
    if (walk_norm(wk, "decoder.conv_norm_out", C, &d->norm_out_w, &d->norm_out_b)) return -1;
    return walk_conv(wk, "decoder.conv_out", &d->conv_out, C, c->out_channels, 3);
}

int vae_walk(vae_model *m, int parts, param_visitor fn, void *user) {
    walker wk = {fn, user, {0}};
    const vae_config *c = &m->cfg;
    int L = c->latent_channels;
    if (parts & VAE_ENCODER) {
        if (walk_encoder(&wk, &m->enc, c)) return -1;
        if (c->quant_conv && walk_conv(&wk, "quant_conv", &m->quant, 2 * L, 2 * L, 1)) return -1;
    }
    if (parts & VAE_DECODER) {
        if (c->post_quant_conv && walk_conv(&wk, "post_quant_conv", &m->post_quant, L, L, 1)) return -1;
        if (walk_decoder(&wk, &m->dec, c)) return -1;
    }
    return 0;
}

// ---- listing ----
int vae_enumerate(const vae_config *c, param_visitor fn, void *ctx) {
    vae_model *m = sl_calloc(1, sizeof *m);
    m->cfg = *c;
    int rc = vae_walk(m, VAE_BOTH, fn, ctx);
    vae_free(m);   // parts 0: frees only the structure
    return rc;
}

// ---- free ----
void vae_free(vae_model *m) {
    if (!m) return;
    if (m->parts) vae_walk(m, m->parts, param_free_visitor, NULL);
    for (int i = 0; i < VAE_MAX_LEVELS; i++) {
        free(m->enc.levels[i].resnets);
        free(m->dec.levels[i].resnets);
    }
    free(m);
}

// ---- random ----
typedef struct { uint64_t state; } rng_ctx;

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// PyTorch's default ranges (±1/sqrt(fan_in)) for weights and biases; norm gains 1 ± 0.1 and
// biases ± 0.1, so that norms are not the identity (wiring mistakes then show).
static int random_visit(void *user, const param_desc *d) {
    rng_ctx *r = user;
    int64_t n = shape_numel(d->ndim, d->shape);
    float *p = sl_alloc_f32(n);
    int norm = d->kind == PARAM_NORM_WEIGHT || d->kind == PARAM_NORM_BIAS;
    float bound = norm ? 0.1f : 1.0f / sqrtf((float)(d->fan_in > 0 ? d->fan_in : 1));
    float center = d->kind == PARAM_NORM_WEIGHT ? 1.0f : 0.0f;
    for (int64_t i = 0; i < n; i++) {
        float u = (float)((splitmix(&r->state) >> 40) * (1.0 / 16777216.0));   // [0, 1)
        p[i] = center + bound * (2.0f * u - 1.0f);
    }
    *d->slot = p;
    return 0;
}

vae_model *vae_random(const vae_config *c, int parts, uint64_t seed) {
    if (vae_config_check(c, "vae config")) return NULL;
    vae_model *m = sl_calloc(1, sizeof *m);
    m->cfg = *c;
    m->parts = parts;
    rng_ctx r = {seed};
    vae_walk(m, parts, random_visit, &r);
    return m;
}
