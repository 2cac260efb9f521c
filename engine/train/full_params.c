// Flat parameter / gradient / AdamW / EMA blocks over a model's parameter walk.
#include "engine/train/full_params.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/io/safetensors.h"

#define ALIGN 16   // floats: 64 bytes

typedef struct {
    full_params *fp;
    int phase;      // 0 count, 1 move params, 2 point grads, 3 give back params, 4 give back grads
    int i, bad;
} fp_ctx;

static int visit(void *user, const param_desc *p) {
    fp_ctx *c = user;
    full_params *fp = c->fp;
    int64_t n = shape_numel(p->ndim, p->shape);
    if (c->phase == 0) {
        fp->entries = sl_realloc(fp->entries, sizeof *fp->entries * (size_t)(fp->n_entries + 1));
        fp_entry *e = &fp->entries[fp->n_entries++];
        memset(e, 0, sizeof *e);
        e->name = sl_strdup(p->name);
        e->offset = fp->n, e->count = n, e->ndim = p->ndim;
        for (int k = 0; k < p->ndim; k++) e->shape[k] = p->shape[k];
        fp->n += (n + ALIGN - 1) / ALIGN * ALIGN;
        fp->n_params += n;
        return 0;
    }
    if (c->i >= fp->n_entries) return c->bad = 1;
    fp_entry *e = &fp->entries[c->i++];
    if (strcmp(e->name, p->name) || e->count != n) return c->bad = 1;
    float *blk = c->phase == 1 || c->phase == 3 ? fp->params : fp->grads;
    float *at = blk + e->offset;
    switch (c->phase) {
    case 1:
    case 2:
        if (c->phase == 1 && *p->slot) memcpy(at, *p->slot, sizeof(float) * (size_t)n);
        sl_free_aligned(*p->slot);
        *p->slot = at;
        break;
    case 3:
        *p->slot = sl_alloc_f32(n);
        memcpy(*p->slot, at, sizeof(float) * (size_t)n);
        break;
    case 4:
        *p->slot = sl_zeros_f32(n);
        break;
    }
    return 0;
}

full_params *full_params_new(void *model, void *grad_model, fp_walk walk) {
    full_params *fp = sl_calloc(1, sizeof *fp);
    fp->model = model, fp->grad_model = grad_model, fp->walk = walk;
    fp_ctx c = {fp, 0, 0, 0};
    walk(model, visit, &c);
    int64_t n = fp->n > 0 ? fp->n : 1;
    fp->params = sl_zeros_f32(n), fp->grads = sl_zeros_f32(n);
    fp->m = sl_zeros_f32(n), fp->v = sl_zeros_f32(n), fp->ema = sl_zeros_f32(n);
    c = (fp_ctx){fp, 1, 0, 0};
    walk(model, visit, &c);
    if (grad_model && !c.bad) {
        c = (fp_ctx){fp, 2, 0, 0};
        walk(grad_model, visit, &c);
        if (!c.bad && c.i != fp->n_entries) c.bad = 1;
    }
    if (c.bad) {
        sl_error(NULL, "full_params: the gradient mirror's parameters differ from the model's");
        fp->grad_model = NULL;   // give the model its buffers back; the mirror keeps what it had
        full_params_free(fp);
        return NULL;
    }
    memcpy(fp->ema, fp->params, sizeof(float) * (size_t)fp->n);
    return fp;
}

void full_params_free(full_params *fp) {
    if (!fp) return;
    fp_ctx c = {fp, 3, 0, 0};
    fp->walk(fp->model, visit, &c);
    if (fp->grad_model) {
        c = (fp_ctx){fp, 4, 0, 0};
        fp->walk(fp->grad_model, visit, &c);
    }
    for (int i = 0; i < fp->n_entries; i++) free(fp->entries[i].name);
    free(fp->entries);
    sl_free_aligned(fp->params), sl_free_aligned(fp->grads), sl_free_aligned(fp->m), sl_free_aligned(fp->v);
    sl_free_aligned(fp->ema);
    free(fp);
}

const fp_entry *full_params_find(const full_params *fp, const char *name) {
    for (int i = 0; i < fp->n_entries; i++)
        if (!strcmp(fp->entries[i].name, name)) return &fp->entries[i];
    return NULL;
}

void full_params_zero_grads(full_params *fp) { memset(fp->grads, 0, sizeof(float) * (size_t)fp->n); }

double full_params_grad_norm(const full_params *fp) {
    double s = 0.0;
    const float *g = fp->grads;
#pragma omp parallel for reduction(+ : s) schedule(static)
    for (int64_t i = 0; i < fp->n; i++) s += (double)g[i] * g[i];
    return sqrt(s);
}

float full_params_clip(full_params *fp, double norm, double max_norm) {
    if (max_norm <= 0) return 1.0f;
    double coef = max_norm / (norm + 1e-6);
    if (coef >= 1.0) return 1.0f;
    float cf = (float)coef;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < fp->n; i++) fp->grads[i] *= cf;
    return cf;
}

void full_params_adamw(full_params *fp, double lr, const adamw_opts *o) {
    fp->step++;
    adamw_opts nodecay = *o;
    nodecay.weight_decay = 0.0;
    // runs of consecutive entries with the same decay are stepped as one range
    int i = 0;
    while (i < fp->n_entries) {
        int decay = fp->entries[i].ndim >= 2;
        int j = i + 1;
        while (j < fp->n_entries && (fp->entries[j].ndim >= 2) == decay) j++;
        int64_t a = fp->entries[i].offset, b = j < fp->n_entries ? fp->entries[j].offset : fp->n;
        adamw_step(fp->params + a, fp->grads + a, fp->m + a, fp->v + a, b - a, fp->step, lr, decay ? o : &nodecay);
        i = j;
    }
}

void full_params_ema_update(full_params *fp, double decay) {
    const float d = (float)decay, e = (float)(1.0 - decay);
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < fp->n; i++) fp->ema[i] = d * fp->ema[i] + e * fp->params[i];
}

void full_params_swap_ema(full_params *fp) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < fp->n; i++) {
        float t = fp->params[i];
        fp->params[i] = fp->ema[i];
        fp->ema[i] = t;
    }
}

// ---------------------------------------------------------------- checkpoints

// FNV-1a over every entry's name, offset and count: a checkpoint fits only the same layout
static uint64_t layout_hash(const full_params *fp) {
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < fp->n_entries; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, ":%lld:%lld;", (long long)fp->entries[i].offset, (long long)fp->entries[i].count);
        for (const char *s = fp->entries[i].name; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
        for (const char *s = buf; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    }
    return h;
}

int full_params_save(const full_params *fp, const char *path, const char *extra_key, const char *extra) {
    st_writer *w = st_writer_new();
    int64_t shape[1] = {fp->n};
    st_writer_add(w, "params", DT_F32, 1, shape, fp->params);
    st_writer_add(w, "adamw.m", DT_F32, 1, shape, fp->m);
    st_writer_add(w, "adamw.v", DT_F32, 1, shape, fp->v);
    st_writer_add(w, "ema", DT_F32, 1, shape, fp->ema);
    char buf[64];
    snprintf(buf, sizeof buf, "%lld", (long long)fp->step);
    st_writer_meta(w, "full_params.step", buf);
    snprintf(buf, sizeof buf, "%016llx", (unsigned long long)layout_hash(fp));
    st_writer_meta(w, "full_params.layout", buf);
    if (extra_key && extra) st_writer_meta(w, extra_key, extra);
    int rc = st_writer_save(w, path);
    st_writer_free(w);
    return rc;
}

int full_params_load(full_params *fp, const char *path, const char *extra_key, char **extra) {
    st_file *f = st_open(path);
    if (!f) return -1;
    int rc = 0;
    char want[32];
    snprintf(want, sizeof want, "%016llx", (unsigned long long)layout_hash(fp));
    const char *lay = st_meta(f, "full_params.layout"), *st = st_meta(f, "full_params.step");
    if (!lay || !st) rc = sl_error(path, "not a full_params checkpoint (no full_params.layout/step metadata)");
    else if (strcmp(lay, want)) rc = sl_error(path, "checkpoint of another model layout (%s, this model %s)", lay, want);
    const char *names[4] = {"params", "adamw.m", "adamw.v", "ema"};
    float *dst[4] = {fp->params, fp->m, fp->v, fp->ema};
    int64_t shape[1] = {fp->n};
    for (int k = 0; k < 4 && rc == 0; k++) {
        float *d = st_load_f32(f, names[k], 1, shape);
        if (!d) rc = -1;
        else {
            memcpy(dst[k], d, sizeof(float) * (size_t)fp->n);
            sl_free_aligned(d);
        }
    }
    if (rc == 0) {
        fp->step = strtoll(st, NULL, 10);
        if (extra) {
            const char *e = extra_key ? st_meta(f, extra_key) : NULL;
            *extra = e ? sl_strdup(e) : NULL;
        }
    }
    st_close(f);
    return rc;
}
