#include "pipeline/model_writer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/names.h"
#include "clip/text_encoder.h"
#include "engine/core/error.h"
#include "engine/io/model_files.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "unet/unet.h"
#include "vae/names.h"
#include "vae/vae.h"

// ---------------------------------------------------------------- component registry

// What a component's lister reports for each parameter: its name in the original layout
// (without the component prefix), its shape there (before fusing), the row block it is of a
// fused tensor, and whether only the original layout holds it.
typedef struct {
    const param_desc *p;
    char original_name[512];
    int ndim;
    int64_t shape[4];
    int part, n_parts;
    int original_only;
} listed_param;

typedef int (*listed_visitor)(void *ctx, const listed_param *lp);
// Lists a component's parameters for the config in dir; `original`: list what the original
// layout holds (it may have more than the diffusers one).
typedef int (*component_params)(const char *dir, int original, listed_visitor fn, void *ctx);

// Fills lp's original name, shape and row block for p (lp->ndim/shape preset to p's).
typedef int (*original_namer)(const void *cfg, const param_desc *p, listed_param *lp);

typedef struct {
    const void *cfg;
    original_namer namer;
    const char *original_only_prefix;   // diffusers names under it exist only in the original layout
    listed_visitor fn;
    void *ctx;
} lister;

static int list_one(void *ctx, const param_desc *p) {
    lister *l = ctx;
    listed_param lp = {.p = p, .ndim = p->ndim, .part = 0, .n_parts = 1};
    memcpy(lp.shape, p->shape, sizeof lp.shape);
    if (l->namer(l->cfg, p, &lp) != 0) return sl_error(NULL, "internal: no original name for '%s'", p->name);
    lp.original_only = l->original_only_prefix && !strncmp(p->name, l->original_only_prefix, strlen(l->original_only_prefix));
    return l->fn(l->ctx, &lp);
}

static int unet_namer(const void *cfg, const param_desc *p, listed_param *lp) {
    return unet_original_name(cfg, p->name, lp->original_name, sizeof lp->original_name);
}

static int unet_params(const char *dir, int original, listed_visitor fn, void *ctx) {
    (void)original;
    unet_config cfg;
    if (unet_config_load_dir(&cfg, dir) != 0) return -1;
    lister l = {&cfg, unet_namer, NULL, fn, ctx};
    return unet_enumerate(&cfg, list_one, &l);
}

static int vae_namer(const void *cfg, const param_desc *p, listed_param *lp) {
    vae_name_ctx nc = {((const vae_config *)cfg)->n_levels, NULL, NULL};
    vae_original_shape(p->name, &lp->ndim, lp->shape);
    return vae_name_original(p->name, lp->original_name, sizeof lp->original_name, &nc);
}

static int vae_params(const char *dir, int original, listed_visitor fn, void *ctx) {
    (void)original;
    vae_config cfg;
    char path[4096];
    snprintf(path, sizeof path, "%s/vae/config.json", dir);
    if (vae_config_from_json(&cfg, path) != 0) return -1;
    lister l = {&cfg, vae_namer, NULL, fn, ctx};
    return vae_enumerate(&cfg, list_one, &l);
}

// cfg: the clip_layout to write
static int clip_namer(const void *layout, const param_desc *p, listed_param *lp) {
    int qkv;
    if (clip_text_stored_name(*(const clip_layout *)layout, p->name, lp->original_name, sizeof lp->original_name, &qkv) != 0)
        return -1;
    if (qkv >= 0) lp->part = qkv, lp->n_parts = 3;   // OpenCLIP's fused in_proj: rows [q; k; v]
    return 0;
}

static int clip_params(const char *dir, int original, listed_visitor fn, void *ctx) {
    clip_text_config cfg;
    char path[4096];
    snprintf(path, sizeof path, "%s/text_encoder/config.json", dir);
    if (clip_text_config_load(&cfg, path) != 0) return -1;
    // SD 2.x (OpenCLIP, gelu): the single file holds the whole tower, whose last resblock SD 2.x
    // skips; diffusers' config counts only the layers kept, so the original has one more.
    clip_layout layout = cfg.act == CLIP_ACT_GELU ? CLIP_LAYOUT_OPENCLIP : CLIP_LAYOUT_SD1;
    char extra[64];
    lister l = {&layout, clip_namer, NULL, fn, ctx};
    if (original && layout == CLIP_LAYOUT_OPENCLIP) {
        snprintf(extra, sizeof extra, "text_model.encoder.layers.%d.", cfg.layers);
        l.original_only_prefix = extra;
        cfg.layers++;
    }
    return clip_text_enumerate(&cfg, list_one, &l);
}

const mw_component MW_COMPONENTS[MW_N_COMPONENTS] = {
    {"unet", "diffusion_pytorch_model", "diffusers", "UNet2DConditionModel"},
    {"vae", "diffusion_pytorch_model", "diffusers", "AutoencoderKL"},
    {"text_encoder", "model", "transformers", "CLIPTextModel"},
};
static const component_params PARAMS[MW_N_COMPONENTS] = {unet_params, vae_params, clip_params};

int mw_component_find(const char *name) {
    for (int c = 0; c < MW_N_COMPONENTS; c++)
        if (!strcmp(MW_COMPONENTS[c].name, name)) return c;
    return -1;
}

static const char *original_prefix(const char *component) {
    for (int i = 0; i < N_SD_COMPONENTS; i++)
        if (!strcmp(SD_COMPONENTS[i].name, component)) return SD_COMPONENTS[i].original_prefix;
    sl_die(NULL, "internal: no original prefix for component '%s'", component);
}

// ---------------------------------------------------------------- the writer

// A tensor the original layout stores fused, filled one row block at a time (in its dtype).
typedef struct {
    char name[600];
    dtype dt;
    unsigned char *data;   // (n_parts · rows, ...)
    int ndim, filled, n_parts;
    int64_t shape[4];
} fused_tensor;

enum { MAX_FUSED = 4 };   // at most a weight and a bias are in flight at once

struct model_writer {
    st_writer *w;         // the file's tensors, in the order added
    int original;
    dtype dt;
    void **bufs;          // owned buffers the tensors point to until the save
    int n, cap;
    fused_tensor fused[MAX_FUSED];
    int64_t params, tensors;
};

static void new_file(model_writer *w) {
    w->w = st_writer_new();
    st_writer_meta(w->w, "format", "pt");
}

static void add_tensor(model_writer *w, const char *name, dtype dt, int ndim, const int64_t *shape, const void *data) {
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) sl_die(NULL, "internal: '%s' has %d dimensions", name, ndim);
    st_writer_add(w->w, name, dt, ndim, shape, data);
    w->params += shape_numel(ndim, shape);
    w->tensors++;
}

model_writer *mw_new(int original, dtype dt) {
    model_writer *w = sl_calloc(1, sizeof *w);
    w->original = original;
    w->dt = dt;
    new_file(w);
    return w;
}

static void keep(model_writer *w, void *buf) {
    if (w->n == w->cap) {
        w->cap = w->cap ? 2 * w->cap : 256;
        w->bufs = sl_realloc(w->bufs, sizeof(void *) * (size_t)w->cap);
    }
    w->bufs[w->n++] = buf;
}

static int storable(dtype dt, const char *name) {
    if (dt == DT_F32 || dt == DT_F16 || dt == DT_BF16) return 0;
    return sl_error(NULL, "cannot store '%s' as %s (only F32, F16 and BF16 are written from computed values)", name,
                    dtype_name(dt));
}

// Computed values (a merge) must survive the stored dtype: no nan/inf, nothing F16 rounds to inf.
static int representable(dtype dt, const char *name, const float *x, int64_t n) {
    int64_t i = f32_first_nonfinite(x, n);
    if (i >= 0) return sl_error(NULL, "'%s' holds a non-finite value (%g at index %lld): not written", name, (double)x[i], (long long)i);
    if (dt == DT_F16)
        for (i = 0; i < n; i++)
            if (fabsf(x[i]) > 65504.0f)   // the largest finite F16
                return sl_error(NULL, "'%s': %g at index %lld is beyond F16's range (65504): not written", name, (double)x[i],
                                (long long)i);
    return 0;
}

int mw_add_f32(model_writer *w, const char *name, dtype dt, int ndim, const int64_t *shape, float *owned) {
    int64_t n = shape_numel(ndim, shape);
    if (storable(dt, name) != 0 || representable(dt, name, owned, n) != 0) {
        sl_free_aligned(owned);
        return -1;
    }
    void *stored = owned;
    if (dt != DT_F32) {   // convert, and free the f32 at once: peak memory grows by one tensor
        stored = sl_alloc_aligned((size_t)n * dtype_size(dt));
        dtype_from_f32_n(stored, dt, owned, (size_t)n);
        sl_free_aligned(owned);
    }
    keep(w, stored);
    add_tensor(w, name, dt, ndim, shape, stored);
    return 0;
}

void mw_add_raw(model_writer *w, const char *name, dtype dt, int ndim, const int64_t *shape, const void *bytes) {
    add_tensor(w, name, dt, ndim, shape, bytes);
}

void mw_meta(model_writer *w, const char *key, const char *value) { st_writer_meta(w->w, key, value); }

// Row block mp->part of the fused tensor mp->name; stored once all blocks are in. d->f32 stays
// the caller's.
static int add_part(model_writer *w, const mw_param *mp, const mw_data *d) {
    fused_tensor *t = NULL, *free_slot = NULL;
    for (int i = 0; i < MAX_FUSED; i++) {
        if (w->fused[i].data && !strcmp(w->fused[i].name, mp->name)) t = &w->fused[i];
        if (!w->fused[i].data && !free_slot) free_slot = &w->fused[i];
    }
    if (!t) {
        if (!free_slot) return sl_error(NULL, "internal: too many fused tensors in flight ('%s')", mp->name);
        if (!d->raw && storable(d->dt, mp->name) != 0) return -1;
        t = free_slot;
        snprintf(t->name, sizeof t->name, "%s", mp->name);
        t->dt = d->dt;   // the first block's dtype; the others are converted to it
        t->ndim = mp->ndim;
        memcpy(t->shape, mp->shape, sizeof t->shape);
        t->n_parts = mp->n_parts;
        t->filled = 0;
        t->data = sl_alloc_aligned((size_t)shape_numel(t->ndim, t->shape) * dtype_size(t->dt));
    }
    int64_t block = shape_numel(mp->p->ndim, mp->p->shape);
    if (block * t->n_parts != shape_numel(t->ndim, t->shape) || mp->n_parts != t->n_parts)
        return sl_error(NULL, "internal: row block %d of '%s' does not fit", mp->part, mp->name);
    unsigned char *dst = t->data + (size_t)mp->part * (size_t)block * dtype_size(t->dt);
    if (d->raw && d->dt == t->dt) {
        memcpy(dst, d->raw, (size_t)block * dtype_size(t->dt));
    } else {
        float *tmp = d->f32 ? d->f32 : sl_alloc_f32(block);
        int rc = 0;
        if (!d->f32 && dtype_to_f32_n(tmp, d->raw, d->dt, (size_t)block) != 0)
            rc = sl_error(NULL, "'%s': cannot convert %s to %s", mp->p->name, dtype_name(d->dt), dtype_name(t->dt));
        if (rc == 0) rc = representable(t->dt, mp->name, tmp, block);
        if (rc == 0 && dtype_from_f32_n(dst, t->dt, tmp, (size_t)block) != 0) rc = storable(t->dt, mp->name);
        if (!d->f32) sl_free_aligned(tmp);
        if (rc != 0) return -1;
    }
    if (++t->filled == t->n_parts) {
        keep(w, t->data);
        add_tensor(w, t->name, t->dt, t->ndim, t->shape, t->data);
        t->data = NULL;
    }
    return 0;
}

typedef struct {
    model_writer *w;
    const char *component, *prefix;
    mw_source src;
    void *ctx;
} component_ctx;

static int component_visitor(void *ctx, const listed_param *lp) {
    component_ctx *c = ctx;
    model_writer *w = c->w;
    char name[640];
    snprintf(name, sizeof name, "%s%s", c->prefix, w->original ? lp->original_name : lp->p->name);
    mw_param mp = {.component = c->component, .p = lp->p, .name = name, .part = 0, .n_parts = 1,
                   .original_only = lp->original_only};
    if (w->original) {
        mp.ndim = lp->ndim;
        memcpy(mp.shape, lp->shape, sizeof mp.shape);
        mp.part = lp->part;
        mp.n_parts = lp->n_parts;
        mp.shape[0] *= lp->n_parts;
    } else {
        mp.ndim = lp->p->ndim;
        memcpy(mp.shape, lp->p->shape, sizeof mp.shape);
    }
    mw_data d = {.dt = w->dt};
    if (c->src(c->ctx, &mp, &d) != 0) return -1;
    if (!d.f32 == !d.raw) return sl_error(NULL, "internal: the source gave %s data for '%s'", d.f32 ? "two" : "no", lp->p->name);
    if (mp.n_parts > 1) {
        int rc = add_part(w, &mp, &d);
        sl_free_aligned(d.f32);
        return rc;
    }
    if (d.raw) {
        mw_add_raw(w, name, d.dt, mp.ndim, mp.shape, d.raw);
        return 0;
    }
    return mw_add_f32(w, name, d.dt, mp.ndim, mp.shape, d.f32);
}

int mw_add_component(model_writer *w, const char *component, const char *config_dir, mw_source src, void *ctx) {
    int c = mw_component_find(component);
    if (c < 0) return sl_error(NULL, "internal: unknown component '%s'", component);
    component_ctx cc = {w, component, w->original ? original_prefix(component) : "", src, ctx};
    return PARAMS[c](config_dir, w->original, component_visitor, &cc);
}

static void drop_buffers(model_writer *w) {
    for (int i = 0; i < w->n; i++) sl_free_aligned(w->bufs[i]);
    free(w->bufs);
    w->bufs = NULL;
    w->n = w->cap = 0;
    for (int i = 0; i < MAX_FUSED; i++) {
        sl_free_aligned(w->fused[i].data);
        w->fused[i].data = NULL;
    }
}

int mw_save(model_writer *w, const char *path) {
    int rc = 0;
    for (int i = 0; i < MAX_FUSED && rc == 0; i++)
        if (w->fused[i].data)
            rc = sl_error(path, "internal: fused tensor '%s' has %d of %d row blocks", w->fused[i].name,
                          w->fused[i].filled, w->fused[i].n_parts);
    if (rc == 0) rc = st_writer_save(w->w, path);   // (widest first, as Python's safetensors writes them)
    st_writer_free(w->w);
    drop_buffers(w);
    new_file(w);
    return rc;
}

int64_t mw_param_count(const model_writer *w) { return w->params; }
int64_t mw_tensor_count(const model_writer *w) { return w->tensors; }

void mw_free(model_writer *w) {
    if (!w) return;
    st_writer_free(w->w);
    drop_buffers(w);
    free(w);
}
