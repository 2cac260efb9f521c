// singlora merge: a whole model with an adapter folded into its UNet weights, written as one
// original-layout checkpoint (through pipeline/model_writer.h) that other tools load.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/text_encoder.h"
#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "engine/io/model_files.h"
#include "engine/io/safetensors.h"
#include "pipeline/adapters.h"
#include "pipeline/model_writer.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "unet/unet.h"
#include "vae/names.h"

static const char *HELP =
    "usage: singlora merge --model M [--config DIR] [--variant fp16] --adapter A [--scale S] --out FILE\n"
    "                      [--threads N] [--precision fp32|bf16] [--profile]\n\n"
    "Writes M with the adapter A (singlora, lora or dora; u(t) from its step) folded into the UNet's\n"
    "weights, W0 += S·ΔW (DoRA: interpolated by S between the base and the adapted layer), as one\n"
    "single-file checkpoint FILE in the original layout (model.diffusion_model., first_stage_model.,\n"
    "cond_stage_model.), which other tools load.\n"
    "  M a single-file checkpoint: FILE holds every tensor of M; the UNet's get the merged values in\n"
    "      the dtype M stores them in, all others (VAE, text encoder, alphas_cumprod, ...) are copied\n"
    "      byte for byte; M's __metadata__ is kept\n"
    "  M a diffusers folder: its UNet (merged), VAE and text encoder under their original names, each\n"
    "      tensor in the dtype the folder stores it in; an SD 2.x text encoder as OpenCLIP (fused\n"
    "      in_proj q/k/v, plus the last resblock, which SD 2.x skips and diffusers drops: written as\n"
    "      zeros, an identity block)\n"
    "  --config DIR   read the configs (DIR/unet/config.json, ...) instead of M's own or, for a single\n"
    "                 file, the detection from tensor shapes (needed for non-standard widths)\n"
    "  --variant V    use a diffusers folder's *.V.safetensors weights (as diffusers' variant=)\n"
    "  --scale S      strength of the adapter (default 1)\n"
    "  --threads N    OpenMP/OpenBLAS threads\n"
    "  --precision P  fp32 (default) or bf16 GEMMs\n"
    "  --profile      time and GFLOP/s per op kind (stderr, at the end)\n"
    "FILE's __metadata__ records the merge: singlora.merge.adapter (file name), .method, .rank, .alpha,\n"
    ".step, .scale (appended to M's own values when M is itself a merge). An adapter made for another\n"
    "base model (hash) is only a warning; an adapter module the UNet lacks is an error.\n";

// ---------------------------------------------------------------- the merged UNet by name

typedef struct {
    char *name;        // diffusers name
    char *original;    // full original name, model.diffusion_model.<...>
    float **slot;      // the model's f32 data; NULL once handed to the writer
    int64_t numel;
} unet_tensor;

typedef struct {
    unet_tensor *t;
    int n, cap, cursor;
    const unet_config *cfg;
} unet_table;

static int table_visitor(void *ctx, const param_desc *p) {
    unet_table *t = ctx;
    char name[512], full[640];
    if (unet_original_name(t->cfg, p->name, name, sizeof name) != 0)
        return sl_error(NULL, "internal: no original name for UNet tensor '%s'", p->name);
    snprintf(full, sizeof full, "%s%s", SD_COMPONENTS[0].original_prefix, name);
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 512;
        t->t = sl_realloc(t->t, sizeof(unet_tensor) * (size_t)t->cap);
    }
    t->t[t->n++] = (unet_tensor){sl_strdup(p->name), sl_strdup(full), p->slot, shape_numel(p->ndim, p->shape)};
    return 0;
}

static void table_free(unet_table *t) {
    for (int i = 0; i < t->n; i++) free(t->t[i].name), free(t->t[i].original);
    free(t->t);
}

// The tensor with this diffusers (by_original = 0) or original name; the search starts where
// the last one was found, since both walks visit the tensors in much the same order.
static unet_tensor *table_find(unet_table *t, const char *name, int by_original) {
    for (int k = 0; k < t->n; k++) {
        int i = (t->cursor + k) % t->n;
        if (!strcmp(by_original ? t->t[i].original : t->t[i].name, name)) {
            t->cursor = i + 1;
            return &t->t[i];
        }
    }
    return NULL;
}

// Hands the merged f32 values of u to the caller (the writer frees them): the UNet is never
// held twice, whatever the stored dtype.
static float *take(unet_tensor *u, const char *path) {
    float *d = *u->slot;
    if (!d) sl_die(path, "internal: UNet tensor '%s' written twice", u->name);
    *u->slot = NULL;
    return d;
}

// ---------------------------------------------------------------- sources for a diffusers folder

// The merged UNet, each tensor in the dtype the folder's UNet file stores it in.
typedef struct {
    unet_table *table;
    const st_file *file;
} unet_source_ctx;

static int unet_source(void *ctx, const mw_param *mp, mw_data *d) {
    unet_source_ctx *c = ctx;
    unet_tensor *u = table_find(c->table, mp->p->name, 0);
    if (!u) return sl_error(NULL, "internal: UNet tensor '%s' is not in the loaded model", mp->p->name);
    const st_entry *e = st_find(c->file, mp->p->name);
    d->dt = e ? e->dt : DT_F32;   // (unet_load read every tensor, so e is there)
    d->f32 = take(u, c->file->path);
    return 0;
}

// Shapes that agree up to trailing 1s ((C, C, 1, 1) is (C, C)).
static int same_shape(int na, const int64_t *a, int nb, const int64_t *b) {
    while (na > 0 && a[na - 1] == 1) na--;
    while (nb > 0 && b[nb - 1] == 1) nb--;
    if (na != nb) return 0;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return 0;
    return 1;
}

// The VAE or text encoder: each tensor's stored bytes, copied as they are.
typedef struct {
    st_file *file;
    int vae;              // names through vae_name_diffusers (older attention names)
    dtype last;           // the dtype of the last tensor found (for original-only tensors)
} copy_source_ctx;

static int copy_source(void *ctx, const mw_param *mp, mw_data *d) {
    copy_source_ctx *c = ctx;
    const param_desc *p = mp->p;
    if (mp->original_only) {   // SD 2.x's skipped resblock: zeros make it an identity block
        int64_t n = shape_numel(p->ndim, p->shape);
        d->f32 = sl_alloc_f32(n);
        memset(d->f32, 0, sizeof(float) * (size_t)n);
        d->dt = c->last;
        return 0;
    }
    char stored[512];
    vae_name_ctx nc = {0, c->file, ""};
    if (c->vae) vae_name_diffusers(p->name, stored, sizeof stored, &nc);
    else snprintf(stored, sizeof stored, "%s", p->name);
    st_entry *e = (st_entry *)st_find(c->file, stored);
    if (!e) return sl_error(c->file->path, "missing tensor '%s'", stored);
    if (!same_shape(e->ndim, e->shape, p->ndim, p->shape)) {
        char got[128] = "", want[128] = "";
        for (int i = 0; i < e->ndim; i++) snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "", (long long)e->shape[i]);
        for (int i = 0; i < p->ndim; i++) snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "", (long long)p->shape[i]);
        return sl_error(c->file->path, "tensor '%s' has shape (%s); the config gives (%s)", stored, got, want);
    }
    e->used = 1;
    d->dt = c->last = e->dt;
    d->raw = e->data;
    return 0;
}

// Warns about tensors of f that nothing wrote (none are dropped silently).
static void warn_unused(const st_file *f) {
    char list[600] = "";
    int n = 0;
    for (int i = 0; i < f->n_entries; i++) {
        if (f->entries[i].used) continue;
        if (n++ < 4) snprintf(list + strlen(list), sizeof list - strlen(list), "%s'%s'", n > 1 ? ", " : "", f->entries[i].name);
    }
    if (n) sl_warn("%s: %d tensor%s not written (not part of the model): %s%s", f->path, n, n > 1 ? "s" : "", list, n > 4 ? ", ..." : "");
}

static st_file *open_component(const char *dir, const char *component, const char *variant) {
    char *path = diffusers_component_file(dir, component, variant);
    if (!path) sl_fail();
    st_file *f = st_open(path);
    free(path);
    if (!f) sl_fail();
    return f;
}

// Adds the folder's three components to w; returns the files the writer borrows from.
static void add_diffusers(model_writer *w, const char *dir, const char *config, const char *variant, unet_table *table,
                          st_file *files[3]) {
    const char *cfg = config ? config : dir;
    files[0] = open_component(dir, "unet", variant);
    unet_source_ctx uc = {table, files[0]};
    if (mw_add_component(w, "unet", cfg, unet_source, &uc) != 0) sl_fail();

    files[1] = open_component(dir, "vae", variant);
    copy_source_ctx vc = {files[1], 1, DT_F32};
    if (mw_add_component(w, "vae", cfg, copy_source, &vc) != 0) sl_fail();
    warn_unused(files[1]);

    files[2] = open_component(dir, "text_encoder", variant);
    st_file *tf = files[2];
    copy_source_ctx tc = {tf, 0, DT_F32};
    if (mw_add_component(w, "text_encoder", cfg, copy_source, &tc) != 0) sl_fail();
    // position_ids (a buffer older transformers saved): SD 1.x checkpoints carry it, OpenCLIP has none
    st_entry *pos = (st_entry *)st_find(tf, "text_model.embeddings.position_ids");
    if (pos) {
        clip_text_config cc;
        char path[4096];
        snprintf(path, sizeof path, "%s/text_encoder/config.json", cfg);
        if (clip_text_config_load(&cc, path) != 0) sl_fail();
        if (cc.act != CLIP_ACT_GELU)
            mw_add_raw(w, "cond_stage_model.transformer.text_model.embeddings.position_ids", pos->dt, pos->ndim,
                       pos->shape, pos->data);
        pos->used = 1;
    }
    warn_unused(tf);
}

// ---------------------------------------------------------------- a single file

// Every tensor of f: the UNet's merged (in f's dtype), the others as their bytes.
static void add_original(model_writer *w, st_file *f, unet_table *table) {
    for (int i = 0; i < f->n_meta; i++) mw_meta(w, f->meta_keys[i], f->meta_values[i]);
    for (int i = 0; i < f->n_entries; i++) {
        const st_entry *e = &f->entries[i];
        if (original_component(e->name) != 0) {   // not the UNet's
            mw_add_raw(w, e->name, e->dt, e->ndim, e->shape, e->data);
            continue;
        }
        unet_tensor *u = table_find(table, e->name, 1);
        if (!u) sl_die(f->path, "internal: UNet tensor '%s' is not in the loaded model", e->name);
        if (shape_numel(e->ndim, e->shape) != u->numel) sl_die(f->path, "internal: tensor '%s' changed size", e->name);
        if (mw_add_f32(w, e->name, e->dt, e->ndim, e->shape, take(u, f->path)) != 0) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", sl_error_msg());
            sl_die(f->path, "%s", msg);
        }
    }
}

// ---------------------------------------------------------------- the command

// key = value, or "previous; value" when M already records a merge under key.
static void note(model_writer *w, const st_file *f, const char *key, const char *value) {
    const char *prev = f ? st_meta(f, key) : NULL;
    if (!prev) { mw_meta(w, key, value); return; }
    size_t n = strlen(prev) + strlen(value) + 3;
    char *s = sl_malloc(n);
    snprintf(s, n, "%s; %s", prev, value);
    mw_meta(w, key, s);
    free(s);
}

int cmd_merge(int argc, char **argv) {
    const char *model = NULL, *config = NULL, *variant = NULL, *adapter_path = NULL, *outp = NULL, *v;
    float scale = 1.0f;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_model(argc, argv, &i, &model, &config, &variant)) {}
        else if (arg_value(argc, argv, &i, "--adapter", &adapter_path)) {}
        else if (arg_value(argc, argv, &i, "--scale", &v)) scale = (float)arg_double_range("--scale", v, -ADAPTER_SCALE_MAX, ADAPTER_SCALE_MAX);
        else if (arg_value(argc, argv, &i, "--out", &outp)) {}
        else if (arg_precision(argc, argv, &i)) {}
        else if (arg_profile(argv, i)) {}
        else if (arg_value(argc, argv, &i, "--threads", &v)) threads = arg_threads("--threads", v);
        else arg_unknown("merge", argv[i]);
    }
    if (!model || !adapter_path || !outp) sl_die(NULL, "merge: --model, --adapter and --out are required (see --help)");
    set_threads(threads);
    int folder = path_is_dir(model);
    st_file *f = NULL;   // the single file, kept open: its non-UNet tensors are written from the mapping
    if (!folder) {
        if (!path_exists(model)) sl_die(model, "no such file or folder");
        if (variant) sl_die(model, "--variant picks the weight files of a diffusers folder; this is a single file");
        f = st_open(model);
        if (!f) sl_fail();
        if (detect_layout(f) != LAYOUT_ORIGINAL)
            sl_die(model, "not a single-file checkpoint (model.diffusion_model.*, ...); merge reads those and diffusers folders");
    }

    adapter_set *s = adapter_set_load(adapter_path);   // checked before the (large) model loads
    if (!s) sl_fail();
    unet_model *m = unet_load(model, config, variant);
    if (!m) sl_fail();
    if (unet_merge_adapters(m, s, scale, adapter_path) != 0) sl_fail();

    unet_table table = {.cfg = &m->cfg};
    if (unet_walk(m, table_visitor, &table) != 0) sl_fail();
    model_writer *w = mw_new(1, DT_F32);
    st_file *files[3] = {NULL, NULL, NULL};
    if (folder) add_diffusers(w, model, config, variant, &table, files);
    else add_original(w, f, &table);
    for (int i = 0; i < table.n; i++)
        if (*table.t[i].slot) sl_die(model, "internal: UNet tensor '%s' was not written", table.t[i].name);

    char buf[64];
    const char *base = strrchr(adapter_path, '/');
    note(w, f, "singlora.merge.adapter", base ? base + 1 : adapter_path);
    note(w, f, "singlora.merge.method", adapter_method_name(s->method));
    snprintf(buf, sizeof buf, "%d", s->rank);
    note(w, f, "singlora.merge.rank", buf);
    snprintf(buf, sizeof buf, "%g", (double)s->alpha);
    note(w, f, "singlora.merge.alpha", buf);
    snprintf(buf, sizeof buf, "%lld", (long long)s->step);
    note(w, f, "singlora.merge.step", buf);
    snprintf(buf, sizeof buf, "%g", (double)scale);
    note(w, f, "singlora.merge.scale", buf);
    if (mw_save(w, outp) != 0) sl_fail();
    printf("wrote %s (original layout, %lld tensors): %s (%s, rank %d, step %lld, u %g) merged at scale %g into %d modules\n",
           outp, (long long)mw_tensor_count(w), adapter_path, adapter_method_name(s->method), s->rank, (long long)s->step,
           (double)adapter_set_ramp(s), (double)scale, s->n_slots);

    mw_free(w);
    for (int i = 0; i < 3; i++) st_close(files[i]);
    st_close(f);
    table_free(&table);
    unet_free(m);
    adapter_set_free(s);
    return 0;
}
