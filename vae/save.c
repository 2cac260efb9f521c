// Saving a VAE in the diffusers or original layout through the parameter walk.
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
        s->bufs = sl_realloc(s->bufs, sizeof(void *) * (size_t)(s->nbufs + 1));
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
