#include "tools/io.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "engine/io/atomic_file.h"
#include "engine/core/error.h"
#include "engine/io/file_read.h"
#include "engine/io/model_files.h"
#include "engine/core/tensor.h"

int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcasecmp(s + a - b, suffix) == 0;
}

// ---- inputs ----

const st_entry *input_tensor(const st_file *f, const char *name, int ndim, const char *what) {
    const st_entry *e = st_find(f, name);
    if (!e) sl_die(f->path, "no tensor '%s' (%s)", name, what);
    if (e->ndim != ndim) {
        char s[128];
        sl_die(f->path, "tensor '%s' has shape %s; expected %s", name, shape_str(s, sizeof s, e->ndim, e->shape), what);
    }
    for (int i = 0; i < ndim; i++)
        if (e->shape[i] < 1) sl_die(f->path, "tensor '%s' is empty (dimension %d is %lld)", name, i, (long long)e->shape[i]);
    return e;
}

void input_require_f32(const st_file *f, const st_entry *e, const char *what) {
    if (e->dt != DT_F32) sl_die(f->path, "tensor '%s' has dtype %s; expected F32 %s", e->name, dtype_name(e->dt), what);
}

int32_t *input_token_ids(const st_file *f, const st_entry *e) {
    if (e->dt != DT_I32 && e->dt != DT_I64)
        sl_die(f->path, "tensor '%s' has dtype %s; expected I32 or I64 token ids", e->name, dtype_name(e->dt));
    int64_t L = e->shape[e->ndim - 1], n = shape_numel(e->ndim, e->shape);
    int32_t *ids = sl_malloc(sizeof(int32_t) * (size_t)n);
    for (int64_t i = 0; i < n; i++) {
        int64_t id;   // the mapped data need not be aligned for its dtype
        if (e->dt == DT_I64) memcpy(&id, (const char *)e->data + 8 * (size_t)i, 8);
        else { int32_t y; memcpy(&y, (const char *)e->data + 4 * (size_t)i, 4); id = y; }
        if (id < 0 || id > INT32_MAX)
            sl_die(f->path, "%s[%lld, %lld] = %lld is not a token id", e->name, (long long)(i / L), (long long)(i % L),
                   (long long)id);
        ids[i] = (int32_t)id;
    }
    return ids;
}

unet_inputs input_unet(const st_file *f) {
    unet_inputs u;
    u.x = input_tensor(f, "x", 4, "(N, C_in, h, w) latents");
    u.t = input_tensor(f, "t", 1, "(N) timesteps");
    u.context = input_tensor(f, "context", 3, "(N, L, D) context");
    input_require_f32(f, u.x, "latents");
    input_require_f32(f, u.context, "context");
    if (u.t->dt != DT_F32 && u.t->dt != DT_I64 && u.t->dt != DT_I32)
        sl_die(f->path, "tensor 't' has dtype %s; expected F32, I64 or I32 timesteps", dtype_name(u.t->dt));
    if (u.t->shape[0] != u.x->shape[0] || u.context->shape[0] != u.x->shape[0])
        sl_die(f->path, "batch sizes differ: x has %lld, t %lld, context %lld", (long long)u.x->shape[0],
               (long long)u.t->shape[0], (long long)u.context->shape[0]);
    u.N = (int)u.x->shape[0], u.h = (int)u.x->shape[2], u.w = (int)u.x->shape[3], u.L = (int)u.context->shape[1];
    return u;
}

void input_unet_match(const st_file *f, const unet_inputs *u, int in_channels, int cross_attention_dim) {
    if (u->x->shape[1] != in_channels)
        sl_die(f->path, "tensor 'x' has %lld channels; the UNet takes %d", (long long)u->x->shape[1], in_channels);
    if (u->context->shape[2] != cross_attention_dim)
        sl_die(f->path, "tensor 'context' has width %lld; the UNet's cross_attention_dim is %d",
               (long long)u->context->shape[2], cross_attention_dim);
}

float *input_timesteps(const unet_inputs *u) {
    float *t = sl_alloc_f32(u->N);
    dtype_to_f32_n(t, u->t->data, u->t->dt, (size_t)u->N);
    return t;
}

float *input_copy_f32(const st_entry *e) {
    int64_t n = shape_numel(e->ndim, e->shape);
    float *p = sl_alloc_f32(n);
    memcpy(p, e->data, sizeof(float) * (size_t)n);
    return p;
}
