// The VAE's parameters: one walk over the architecture (names + shapes + slots) that loading,
// listing and random initialisation all use, so they cannot disagree.
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/error.h"
#include "engine/model_files.h"
#include "engine/tensor.h"
#include "engine/weights.h"
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

// ---- loading ----
static int load_visit(void *user, const param_desc *p) {
    *p->slot = weights_load(user, p->name, p->ndim, p->shape);
    return *p->slot ? 0 : -1;
}

// The config for a model: --config DIR (DIR/vae/config.json or DIR/config.json), else the
// diffusers folder's vae/config.json or the config.json next to a component file.
static int find_config(char *out, size_t len, const char *config_dir, const char *model_path, int model_is_dir) {
    if (config_dir) {
        snprintf(out, len, "%s/vae/config.json", config_dir);
        if (path_exists(out)) return 1;
        snprintf(out, len, "%s/config.json", config_dir);
        if (path_exists(out)) return 1;
        if (!path_is_dir(config_dir)) return sl_error(config_dir, "--config: not a folder");
        return sl_error(config_dir, "--config: no vae/config.json or config.json in this folder");
    }
    if (model_is_dir) {
        snprintf(out, len, "%s/vae/config.json", model_path);
        if (path_exists(out)) return 1;
        return sl_error(model_path, "no vae/config.json in this diffusers folder");
    }
    char *copy = sl_strdup(model_path);
    snprintf(out, len, "%s/config.json", dirname(copy));
    free(copy);
    return path_exists(out) ? 1 : 0;
}

vae_model *vae_load(const char *model_path, const char *config_dir, const char *variant, int parts) {
    int is_dir = path_is_dir(model_path);
    char *file_path = NULL;
    if (is_dir) {
        file_path = diffusers_component_file(model_path, "vae", variant);
        if (!file_path) return NULL;
    } else {
        if (!path_exists(model_path)) { sl_error(model_path, "no such file or folder"); return NULL; }
        if (variant) {
            sl_error(model_path, "--variant %s needs a diffusers folder (a single file has one dtype)", variant);
            return NULL;
        }
        file_path = sl_strdup(model_path);
    }
    st_file *f = st_open(file_path);
    free(file_path);
    if (!f) return NULL;

    // which layout and prefix: the names of a known tensor tell
    const char *prefix = NULL;
    int original = 0;
    static const struct { const char *prefix, *probe; int original; } PROBES[] = {
        {"first_stage_model.", "first_stage_model.decoder.conv_in.weight", 1},
        {"first_stage_model.", "first_stage_model.encoder.conv_in.weight", 1},
        {"", "decoder.up.0.block.0.conv1.weight", 1},
        {"", "encoder.down.0.block.0.conv1.weight", 1},
        {"", "decoder.up_blocks.0.resnets.0.conv1.weight", 0},
        {"", "encoder.down_blocks.0.resnets.0.conv1.weight", 0},
        {"vae.", "vae.decoder.up_blocks.0.resnets.0.conv1.weight", 0},
    };
    for (size_t i = 0; i < sizeof PROBES / sizeof PROBES[0] && !prefix; i++)
        if (st_find(f, PROBES[i].probe)) prefix = PROBES[i].prefix, original = PROBES[i].original;
    if (!prefix) {
        sl_error(f->path, "no VAE weights found (neither first_stage_model.* nor diffusers encoder./decoder. names)");
        st_close(f);
        return NULL;
    }

    vae_model *m = sl_calloc(1, sizeof *m);
    char cfg_path[4096];
    int has_cfg = find_config(cfg_path, sizeof cfg_path, config_dir, model_path, is_dir);
    if (has_cfg < 0) goto fail;
    if (has_cfg) {
        if (vae_config_from_json(&m->cfg, cfg_path)) goto fail;
    } else if (original) {
        if (vae_config_detect(&m->cfg, f, prefix)) goto fail;
    } else {
        sl_error(model_path, "a diffusers VAE file needs its config.json next to it (or pass --config DIR)");
        goto fail;
    }

    vae_name_ctx nctx = {m->cfg.n_levels, f, prefix};
    weight_loader wl = {.file = f, .prefix = prefix, .map_ctx = original ? vae_name_original : vae_name_diffusers, .ctx = &nctx};
    m->parts = parts;
    if (vae_walk(m, parts, load_visit, &wl)) goto fail;
    // the part not loaded is not "unused"; nor are training-only tensors of original checkpoints
    const char *ignore[6] = {0};
    int ni = 0;
    ignore[ni++] = "loss.";
    if (!(parts & VAE_ENCODER)) ignore[ni++] = "encoder.", ignore[ni++] = "quant_conv.";
    if (!(parts & VAE_DECODER)) ignore[ni++] = "decoder.", ignore[ni++] = "post_quant_conv.";
    if (weights_check_unused(&wl, ignore)) goto fail;
    st_close(f);
    return m;
fail:
    vae_free(m);
    st_close(f);
    return NULL;
}

// ---- saving ----
typedef struct {
    st_writer *w;
    dtype dt;
    int original;
    vae_name_ctx nctx;
    void **bufs;   // converted copies, alive until the writer has saved
    int nbufs;
} save_ctx;

static int save_visit(void *user, const param_desc *p) {
    save_ctx *s = user;
    const char *name = p->name;
    int ndim = p->ndim;
    const int64_t *shape = p->shape;
    float **slot = p->slot;
    char stored[512], full[640];
    int64_t sh[4] = {0, 0, 1, 1};
    if (s->original) {
        if (vae_name_original(name, stored, sizeof stored, &s->nctx)) return sl_error(NULL, "cannot map '%s'", name);
        // the original layout stores the mid-block attention projections as 1×1 convs
        if (ndim == 2 && strstr(name, "attentions.0.")) {
            sh[0] = shape[0], sh[1] = shape[1];
            shape = sh, ndim = 4;
        }
        snprintf(full, sizeof full, "%s%s", s->original == 1 ? "first_stage_model." : "", stored);
    } else {
        snprintf(full, sizeof full, "%s", name);
    }
    int64_t n = shape_numel(ndim, shape);
    void *data = *slot;
    if (s->dt != DT_F32) {
        data = sl_alloc_aligned((size_t)n * dtype_size(s->dt));
        dtype_from_f32_n(data, s->dt, *slot, (size_t)n);
        s->bufs = realloc(s->bufs, sizeof(void *) * (size_t)(s->nbufs + 1));
        if (!s->bufs) return sl_error(NULL, "out of memory");
        s->bufs[s->nbufs++] = data;
    }
    st_writer_add(s->w, full, s->dt, ndim, shape, data);
    return 0;
}

int vae_save(vae_model *m, const char *path, int original_layout, dtype dt) {
    save_ctx s = {st_writer_new(), dt, original_layout, {m->cfg.n_levels, NULL, NULL}, NULL, 0};
    int rc = vae_walk(m, m->parts, save_visit, &s);
    if (!rc) rc = st_writer_save(s.w, path);
    st_writer_free(s.w);
    for (int i = 0; i < s.nbufs; i++) sl_free_aligned(s.bufs[i]);
    free(s.bufs);
    return rc;
}
