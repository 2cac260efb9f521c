// Loading the CLIP text encoder: layout detection (diffusers, original SD 1.x, OpenCLIP), config
// from config.json or from shapes, and the weights through the parameter walk.
#include "clip/text_encoder.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

// ---- name maps for the weight loader (one per layout) ----

static int map_layout(clip_layout l, const char *name, char *out, size_t len) {
    int qkv;
    return clip_text_stored_name(l, name, out, len, &qkv);
}
static int map_sd1(const char *n, char *o, size_t l) { return map_layout(CLIP_LAYOUT_SD1, n, o, l); }
static int map_sd1_old(const char *n, char *o, size_t l) { return map_layout(CLIP_LAYOUT_SD1_OLD, n, o, l); }
static int map_openclip(const char *n, char *o, size_t l) { return map_layout(CLIP_LAYOUT_OPENCLIP, n, o, l); }

static const weight_name_map MAPS[] = {NULL, map_sd1, map_sd1_old, map_openclip};

// The stored entry of a diffusers name (NULL when absent).
static const st_entry *find_entry(const st_file *f, clip_layout l, const char *name) {
    char stored[512], full[600];
    int qkv;
    if (clip_text_stored_name(l, name, stored, sizeof stored, &qkv) != 0) return NULL;
    snprintf(full, sizeof full, "%s%s", clip_layout_prefix(l), stored);
    return st_find(f, full);
}

static int detect_clip_layout(const st_file *f, clip_layout *out) {
    static const clip_layout order[] = {CLIP_LAYOUT_DIFFUSERS, CLIP_LAYOUT_SD1, CLIP_LAYOUT_SD1_OLD, CLIP_LAYOUT_OPENCLIP};
    for (int i = 0; i < 4; i++)
        if (find_entry(f, order[i], "text_model.embeddings.token_embedding.weight")) {
            *out = order[i];
            return 0;
        }
    if (st_find(f, "conditioner.embedders.0.transformer.text_model.embeddings.token_embedding.weight"))
        return sl_error(f->path, "this is an SDXL checkpoint (two text encoders under conditioner.embedders.*); "
                                 "only SD 1.x and 2.x are supported");
    return sl_error(f->path, "no CLIP text encoder here (expected text_model.* in a diffusers text_encoder file, "
                             "or cond_stage_model.* in a single-file checkpoint)");
}

// The number of layers stored in the file.
static int count_layers(const st_file *f, clip_layout l) {
    int n = 0;
    char name[128];
    for (;; n++) {
        snprintf(name, sizeof name, "text_model.encoder.layers.%d.layer_norm1.weight", n);
        if (!find_entry(f, l, name)) return n;
    }
}

// ---- config ----

// The sizes an original checkpoint's shapes give. The head count is not stored anywhere: the
// released models (ViT-L/14: 768 wide, 12 heads; ViT-H/14: 1024, 16) all use 64-wide heads.
static int detect_config(const st_file *f, clip_layout l, clip_text_config *c) {
    const st_entry *tok = find_entry(f, l, "text_model.embeddings.token_embedding.weight");
    const st_entry *pos = find_entry(f, l, "text_model.embeddings.position_embedding.weight");
    const st_entry *fc1 = find_entry(f, l, "text_model.encoder.layers.0.mlp.fc1.weight");
    if (!tok || !pos || !fc1 || tok->ndim != 2 || pos->ndim != 2 || fc1->ndim != 2)
        return sl_error(f->path, "incomplete CLIP text encoder (token/position embeddings or the first layer's MLP "
                                 "is missing or not 2-D)");
    c->vocab = (int)tok->shape[0];
    c->hidden = (int)tok->shape[1];
    c->max_pos = (int)pos->shape[0];
    c->intermediate = (int)fc1->shape[0];
    c->layers = count_layers(f, l);
    if (c->hidden % 64)
        return sl_error(f->path, "cannot tell the attention head count of a %d-wide text encoder (the released ones "
                                 "use 64-wide heads); pass --config DIR with its config.json", c->hidden);
    c->heads = c->hidden / 64;
    c->eps = 1e-5f;
    c->act = l == CLIP_LAYOUT_OPENCLIP ? CLIP_ACT_GELU : CLIP_ACT_QUICK_GELU;
    c->eos_id = 2;
    return 0;
}

// ---- loading ----

typedef struct {
    weight_loader wl;
    clip_layout layout;
    int D;
} loader;

static float *load(loader *L, const char *name, int ndim, const int64_t *shape) {
    if (L->layout == CLIP_LAYOUT_OPENCLIP) {
        char stored[512], full[600];
        int qkv;
        if (clip_text_stored_name(L->layout, name, stored, sizeof stored, &qkv) == 0 && qkv >= 0) {
            // q, k, v are row blocks of the fused in_proj_weight (3D, D) / in_proj_bias (3D)
            snprintf(full, sizeof full, "%s%s", L->wl.prefix, stored);
            const st_entry *e = st_find(L->wl.file, full);
            int cols = ndim == 2 ? (int)shape[1] : 1;
            if (e && (e->shape[0] != 3 * (int64_t)L->D || e->ndim != ndim)) {
                char s[128];
                sl_error(L->wl.file->path, "tensor '%s' has shape %s; the config needs %d rows (fused q, k, v)%s", full,
                         shape_str(s, sizeof s, e->ndim, e->shape), 3 * L->D, ndim == 2 ? " of the hidden size" : "");
                return NULL;
            }
            return weights_load_rows(&L->wl, stored, qkv * L->D, L->D, cols);
        }
    }
    return weights_load(&L->wl, name, ndim, shape);
}

static int load_visitor(void *ctx, const param_desc *p) {
    *p->slot = load(ctx, p->name, p->ndim, p->shape);
    if (!*p->slot) return -1;
    if (!strstr(p->name, ".embeddings.")) param_hold_loaded(p);   // the embedding tables are read by row
    return 0;
}

// Finds the weights file (and the config next to it) for `model`.
static char *resolve_weights(const char *model, const char *variant, char **default_config) {
    char buf[4096];
    *default_config = NULL;
    if (path_is_dir(model)) {
        snprintf(buf, sizeof buf, "%s/text_encoder", model);
        if (path_is_dir(buf)) {
            char *w = diffusers_component_file(model, "text_encoder", variant);
            snprintf(buf, sizeof buf, "%s/text_encoder/config.json", model);
            if (w) *default_config = sl_strdup(buf);
            return w;
        }
        // a text_encoder folder itself
        snprintf(buf, sizeof buf, "%s/model%s%s.safetensors", model, variant ? "." : "", variant ? variant : "");
        if (path_exists(buf)) {
            char *w = sl_strdup(buf);
            snprintf(buf, sizeof buf, "%s/config.json", model);
            *default_config = sl_strdup(buf);
            return w;
        }
        sl_error(model, "no text_encoder/ folder or model%s%s.safetensors here", variant ? "." : "", variant ? variant : "");
        return NULL;
    }
    if (!path_exists(model)) { sl_error(model, "no such file or folder"); return NULL; }
    if (variant) { sl_error(model, "--variant picks a file in a diffusers folder; this is a single file"); return NULL; }
    // a diffusers text-encoder file may have its config.json beside it
    const char *slash = strrchr(model, '/');
    snprintf(buf, sizeof buf, "%.*sconfig.json", slash ? (int)(slash - model + 1) : 0, model);
    if (path_exists(buf)) *default_config = sl_strdup(buf);
    return sl_strdup(model);
}

clip_text_model *clip_text_load(const char *model, const char *config, const char *variant) {
    char *default_cfg = NULL, *cfg_path = NULL;
    char *wpath = resolve_weights(model, variant, &default_cfg);
    if (!wpath) return NULL;
    st_file *f = st_open(wpath);
    clip_text_model *m = NULL;
    if (!f) goto done;
    clip_layout layout = CLIP_LAYOUT_DIFFUSERS;
    if (detect_clip_layout(f, &layout) != 0) goto done;
    clip_text_config cfg, *c = &cfg;
    int file_layers = count_layers(f, layout);
    if (config) {
        if (!(cfg_path = clip_text_config_path(config)) || clip_text_config_load(c, cfg_path) != 0) goto fail;
    } else if (layout == CLIP_LAYOUT_DIFFUSERS) {
        if (!default_cfg || !path_exists(default_cfg)) {
            sl_error(wpath, "a diffusers text encoder needs its config.json (beside it, or pass --config DIR)");
            goto fail;
        }
        if (clip_text_config_load(c, default_cfg) != 0) goto fail;
    } else if (detect_config(f, layout, c) != 0) {
        goto fail;
    }
    const char *ignore[8] = {0};
    int n_ignore = 0;
    char last_block[96];
    if (layout == CLIP_LAYOUT_OPENCLIP) {
        // SD 2.x uses the penultimate layer: hold all resblocks but the last. A config may describe
        // the kept layers (diffusers' num_hidden_layers = 23 for ViT-H) or the whole tower.
        if (file_layers < 2) { sl_error(wpath, "an OpenCLIP text encoder with %d layers has no penultimate layer", file_layers); goto fail; }
        if (c->layers != file_layers - 1 && c->layers != file_layers) {
            sl_error(cfg_path ? cfg_path : wpath, "the config has %d text layers, the file %d resblocks (expected %d or %d)",
                     c->layers, file_layers, file_layers - 1, file_layers);
            goto fail;
        }
        c->layers = file_layers - 1;
        snprintf(last_block, sizeof last_block, "model.transformer.resblocks.%d.", file_layers - 1);
        ignore[n_ignore++] = last_block;
        ignore[n_ignore++] = "model.text_projection";
        ignore[n_ignore++] = "model.logit_scale";
        ignore[n_ignore++] = "model.attn_mask";
    } else {
        if (file_layers < c->layers) {
            sl_error(wpath, "the config has %d text layers but the file holds %d", c->layers, file_layers);
            goto fail;
        }
        ignore[n_ignore++] = layout == CLIP_LAYOUT_DIFFUSERS ? "text_model.embeddings.position_ids"
                             : layout == CLIP_LAYOUT_SD1     ? "transformer.text_model.embeddings.position_ids"
                                                             : "transformer.embeddings.position_ids";
        if (layout == CLIP_LAYOUT_DIFFUSERS) ignore[n_ignore++] = "text_projection.";   // CLIPTextModelWithProjection
    }
    if (clip_text_config_check(c, cfg_path ? cfg_path : wpath) != 0) goto fail;
    m = clip_text_model_new(c);
    m->layout = layout;
    m->sd2 = layout == CLIP_LAYOUT_OPENCLIP || c->act == CLIP_ACT_GELU;
    loader L = {{.file = f, .prefix = clip_layout_prefix(layout), .map = MAPS[layout]}, layout, c->hidden};
    if (clip_text_walk(m, load_visitor, &L) != 0) goto fail;
    if (weights_check_unused(&L.wl, ignore) != 0) goto fail;
    goto done;
fail:
    clip_text_free(m);
    m = NULL;
done:
    st_close(f);
    free(wpath);
    free(default_cfg);
    free(cfg_path);
    return m;
}

// ---- forward ----
