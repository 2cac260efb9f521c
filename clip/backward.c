// The CLIP text encoder's backward: final LayerNorm, the layers in reverse (each through its
// recorded scratch), then the embeddings (position rows summed over the batch, token rows
// scattered to the ids used).
#include <stdlib.h>
#include <string.h>

#include "clip/backward.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/kernels/norm.h"

void clip_text_backward(clip_text_model *g, const float *dout, const clip_text_tape *t) {
    const clip_text_model *m = t->m;
    const int D = m->cfg.hidden, L = t->L;
    const int64_t M = (int64_t)t->N * L;
    float *dx = sl_alloc_f32(M * D);   // (N, L, D) the residual stream's gradient
    memset(dx, 0, sizeof(float) * (size_t)(M * D));
    layernorm_backward(dx, g->lnf_w, g->lnf_b, dout, t->x_last, t->mean, t->rstd, m->lnf_w, (int)M, D);
    for (int l = m->cfg.layers - 1; l >= 0; l--) encoder_layer_backward(dx, &g->layer[l], &m->layer[l], &t->sh, &t->layer[l]);
    // serial: rows of the token table repeat across the batch (and within a row: padding)
    for (int64_t i = 0; i < M; i++) {
        float *gt = g->tok_emb + (int64_t)t->ids[i] * D, *gp = g->pos_emb + (i % L) * D;
        const float *d = dx + i * D;
        for (int k = 0; k < D; k++) gt[k] += d[k], gp[k] += d[k];
    }
    sl_free_aligned(dx);
}

void clip_text_tape_free(clip_text_tape *t) {
    if (!t) return;
    for (int l = 0; l < t->m->cfg.layers; l++) encoder_scratch_free(&t->layer[l]);
    free(t->layer);
    free(t->ids);
    sl_free_aligned(t->x_last), sl_free_aligned(t->mean), sl_free_aligned(t->rstd);
    free(t);
}

static int zeroed_visitor(void *ctx, const param_desc *p) {
    (void)ctx;
    int64_t n = shape_numel(p->ndim, p->shape);
    *p->slot = sl_alloc_f32(n);
    memset(*p->slot, 0, sizeof(float) * (size_t)n);
    return 0;
}

clip_text_model *clip_text_grads_new(const clip_text_model *m) {
    clip_text_model *g = clip_text_model_new(&m->cfg);
    g->layout = m->layout, g->sd2 = m->sd2;
    clip_text_walk(g, zeroed_visitor, NULL);
    return g;
}
