// DINO ViT: config, names, loading (two layouts) and the CLS feature.
#include "eval/dino.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/config.h"
#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "engine/io/weights.h"
#include "eval/model_path.h"

#define DINO_EPS 1e-6f   // both layouts (transformers' DINO conversion writes 1e-12 into configs)

const vit_names DINO_HF_NAMES = {
    .cls = "embeddings.cls_token", .cls_3d = 1,
    .pos = "embeddings.position_embeddings", .pos_3d = 1,
    .patch = "embeddings.patch_embeddings.projection",
    .pre_ln = NULL,
    .layer = "encoder.layer.%d.",
    .ln1 = "layernorm_before",
    .q = "attention.attention.query", .k = "attention.attention.key", .v = "attention.attention.value",
    .o = "attention.output.dense",
    .ln2 = "layernorm_after",
    .fc1 = "intermediate.dense", .fc2 = "output.dense",
    .ln_final = "layernorm",
};

// q, k and v are rows [0, D), [D, 2D), [2D, 3D) of the fused attn.qkv (see load_visitor).
const vit_names DINO_ORIGINAL_NAMES = {
    .cls = "cls_token", .cls_3d = 1,
    .pos = "pos_embed", .pos_3d = 1,
    .patch = "patch_embed.proj",
    .pre_ln = NULL,
    .layer = "blocks.%d.",
    .ln1 = "norm1",
    .q = "attn.qkv#0", .k = "attn.qkv#1", .v = "attn.qkv#2",
    .o = "attn.proj",
    .ln2 = "norm2",
    .fc1 = "mlp.fc1", .fc2 = "mlp.fc2",
    .ln_final = "norm",
};

const char *dino_layout_name(dino_layout l) { return l == DINO_LAYOUT_HF ? "transformers ViTModel" : "original DINO"; }

// ---- config ----

static void defaults(vit_config *c) {
    memset(c, 0, sizeof *c);
    c->channels = 3;
    c->eps = DINO_EPS;
    c->act = VIT_ACT_GELU;
    c->patch_bias = 1;
    c->qkv_bias = 1;
}

// transformers ViTConfig (config.json)
static int config_from_json(vit_config *c, const char *path) {
    json_config *j = config_load(path);
    if (!j) return -1;
    const char *type, *act;
    int rc = config_string_or(j, "model_type", "vit", &type);
    if (rc == 0 && strcmp(type, "vit") && strcmp(type, "dino") && strcmp(type, "dinov1")) {
        config_free(j);
        return sl_error(path, "model_type '%s': not a ViT (DINO) config", type);
    }
    rc |= config_int(j, "hidden_size", &c->hidden);
    rc |= config_int(j, "num_hidden_layers", &c->layers);
    rc |= config_int(j, "num_attention_heads", &c->heads);
    rc |= config_int(j, "intermediate_size", &c->intermediate);
    rc |= config_int(j, "image_size", &c->image_size);
    rc |= config_int(j, "patch_size", &c->patch_size);
    rc |= config_int_or(j, "num_channels", 3, &c->channels);
    rc |= config_bool_or(j, "qkv_bias", 1, &c->qkv_bias);
    rc |= config_string_or(j, "hidden_act", "gelu", &act);
    if (rc == 0 && strcmp(act, "gelu")) rc = sl_error(path, "key 'hidden_act': '%s' (DINO uses exact gelu)", act);
    config_free(j);
    return rc;
}

// the original checkpoint's `config` metadata: {"img", "patch", "dim", "depth", "heads", "mlp_ratio"}
static int config_from_meta(vit_config *c, const char *path, const char *meta) {
    json_config *j = config_parse(path, meta);
    if (!j) return -1;
    double ratio;
    int rc = 0;
    rc |= config_int(j, "img", &c->image_size);
    rc |= config_int(j, "patch", &c->patch_size);
    rc |= config_int(j, "dim", &c->hidden);
    rc |= config_int(j, "depth", &c->layers);
    rc |= config_int(j, "heads", &c->heads);
    rc |= config_float_or(j, "mlp_ratio", 4.0, &ratio);
    c->intermediate = (int)lround(ratio * c->hidden);
    config_free(j);
    return rc;
}

static const st_entry *find2(const st_file *f, const char *prefix, const char *name) {
    char full[512];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return st_find(f, full);
}

// Sizes from the shapes (original layout without metadata): the released DINO ViTs (S, B,
// ti) all use 64-wide heads.
static int config_from_shapes(vit_config *c, const st_file *f) {
    const st_entry *cls = st_find(f, "cls_token"), *pos = st_find(f, "pos_embed"),
                   *pw = st_find(f, "patch_embed.proj.weight"), *fc1 = st_find(f, "blocks.0.mlp.fc1.weight");
    if (!cls || !pos || !pw || !fc1 || cls->ndim != 3 || pos->ndim != 3 || pw->ndim != 4 || fc1->ndim != 2)
        return sl_error(f->path, "incomplete DINO ViT (cls_token, pos_embed, patch_embed.proj.weight or "
                                 "blocks.0.mlp.fc1.weight missing or misshapen)");
    c->hidden = (int)cls->shape[2];
    c->channels = (int)pw->shape[1];
    c->patch_size = (int)pw->shape[2];
    c->intermediate = (int)fc1->shape[0];
    int g = (int)lround(sqrt((double)(pos->shape[1] - 1)));
    if ((int64_t)g * g + 1 != pos->shape[1]) return sl_error(f->path, "pos_embed has %lld tokens: not a square grid + CLS", (long long)pos->shape[1]);
    c->image_size = g * c->patch_size;
    char name[64];
    c->layers = 0;
    for (;; c->layers++) {
        snprintf(name, sizeof name, "blocks.%d.norm1.weight", c->layers);
        if (!st_find(f, name)) break;
    }
    if (c->hidden % 64)
        return sl_error(f->path, "cannot tell the head count of a %d-wide ViT without a `config` metadata entry "
                                 "(the released DINO ViTs use 64-wide heads)", c->hidden);
    c->heads = c->hidden / 64;
    return 0;
}

// ---- loading ----

typedef struct {
    weight_loader wl;
    dino_layout layout;
    int D;
} loader;

static int load_visitor(void *ctx, const param_desc *p) {
    loader *L = ctx;
    const char *hash = strchr(p->name, '#');
    if (L->layout == DINO_LAYOUT_ORIGINAL && hash) {
        // "blocks.N.attn.qkv#i.weight" -> rows [i·D, (i+1)·D) of blocks.N.attn.qkv.weight (3D, D)
        char stored[256], full[300];
        snprintf(stored, sizeof stored, "%.*s%s", (int)(hash - p->name), p->name, hash + 2);
        snprintf(full, sizeof full, "%s%s", L->wl.prefix, stored);
        const st_entry *e = st_find(L->wl.file, full);
        if (e && (e->ndim != p->ndim || e->shape[0] != 3 * (int64_t)L->D || (p->ndim == 2 && e->shape[1] != L->D))) {
            char s[128];
            return sl_error(L->wl.file->path, "tensor '%s' has shape %s; expected [%d%s] (fused q, k, v)", full,
                            shape_str(s, sizeof s, e->ndim, e->shape), 3 * L->D, p->ndim == 2 ? ", D" : "");
        }
        int qkv = hash[1] - '0';
        *p->slot = weights_load_rows(&L->wl, stored, qkv * L->D, L->D, p->ndim == 2 ? L->D : 1);
    } else {
        *p->slot = weights_load(&L->wl, p->name, p->ndim, p->shape);
    }
    return *p->slot ? 0 : -1;
}

dino_model *dino_load(const char *path) {
    char *wpath = NULL, *cpath = NULL;
    if (eval_model_files(path, "DINO ViT", &wpath, &cpath) != 0) return NULL;
    st_file *f = st_open(wpath);
    dino_model *m = NULL;
    vit_model *v = NULL;
    if (!f) goto done;
    dino_layout layout;
    const char *prefix = "";
    if (st_find(f, "embeddings.cls_token")) layout = DINO_LAYOUT_HF;
    else if (st_find(f, "vit.embeddings.cls_token")) { layout = DINO_LAYOUT_HF; prefix = "vit."; }
    else if (st_find(f, "cls_token") && st_find(f, "pos_embed")) layout = DINO_LAYOUT_ORIGINAL;
    else {
        sl_error(wpath, "not a DINO ViT: no embeddings.cls_token or cls_token (this holds %s)", eval_describe_file(f));
        goto done;
    }
    vit_config c;
    defaults(&c);
    if (layout == DINO_LAYOUT_HF) {
        if (!cpath) { sl_error(wpath, "a transformers ViTModel needs its config.json beside it"); goto done; }
        if (config_from_json(&c, cpath) != 0) goto done;
    } else {
        const char *meta = st_meta(f, "config");
        if (meta ? config_from_meta(&c, wpath, meta) : config_from_shapes(&c, f)) goto done;
        c.qkv_bias = st_find(f, "blocks.0.attn.qkv.bias") != NULL;
    }
    c.patch_bias = find2(f, prefix, layout == DINO_LAYOUT_HF ? "embeddings.patch_embeddings.projection.bias"
                                                             : "patch_embed.proj.bias") != NULL;
    if (vit_config_check(&c, cpath && layout == DINO_LAYOUT_HF ? cpath : wpath) != 0) goto done;
    v = vit_model_new(&c);
    loader L = {{.file = f, .prefix = prefix}, layout, c.hidden};
    if (vit_walk(v, layout == DINO_LAYOUT_HF ? &DINO_HF_NAMES : &DINO_ORIGINAL_NAMES, load_visitor, &L) != 0) goto done;
    static const char *const ignore[] = {"pooler.", "head.", "embeddings.mask_token", NULL};
    if (weights_check_unused(&L.wl, ignore) != 0) goto done;
    m = sl_calloc(1, sizeof *m);
    m->vit = v;
    m->layout = layout;
    v = NULL;
done:
    vit_free(v);
    st_close(f);
    free(wpath);
    free(cpath);
    return m;
}

void dino_free(dino_model *m) {
    if (!m) return;
    vit_free(m->vit);
    free(m);
}

void dino_forward(const dino_model *m, const float *pixels, int N, float *cls, float *last, float **hs) {
    const vit_config *c = &m->vit->cfg;
    int T = vit_tokens(c), D = c->hidden;
    float *x = sl_alloc_f32((int64_t)N * T * D);   // (N, T, D)
    vit_forward(m->vit, pixels, N, x, hs);
    if (last) vit_final_norm(m->vit, last, x, N * T);
    for (int n = 0; n < N; n++) vit_final_norm(m->vit, cls + (int64_t)n * D, x + (int64_t)n * T * D, 1);
    sl_free_aligned(x);
}
