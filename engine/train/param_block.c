#include "engine/train/param_block.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"

// Tensor k of adapter a: where it and its gradient live, and its shape.
static void slot_refs(adapter *a, int k, float ***slot, float ***grad, int *ndim, int64_t shape[2]) {
    if (a->method == ADAPTER_SINGLORA) {
        *slot = &a->A; *grad = &a->dA; *ndim = 2; shape[0] = adapter_rows(a); shape[1] = a->rank;
    } else if (k == 0) {
        *slot = &a->down; *grad = &a->ddown; *ndim = 2; shape[0] = a->rank; shape[1] = a->d_in;
    } else if (k == 1) {
        *slot = &a->up; *grad = &a->dup; *ndim = 2; shape[0] = a->d_out; shape[1] = a->rank;
    } else {
        *slot = &a->magnitude; *grad = &a->dmagnitude; *ndim = 1; shape[0] = a->d_out; shape[1] = 1;
    }
}

static float *zeros(int64_t n) {
    float *p = sl_alloc_f32(n > 0 ? n : 1);
    memset(p, 0, sizeof(float) * (size_t)(n > 0 ? n : 1));
    return p;
}

param_block *param_block_new(adapter_set *s) {
    param_block *pb = sl_calloc(1, sizeof *pb);
    pb->set = s;
    const int per = adapter_tensor_count(s->method);
    pb->entries = sl_calloc((size_t)s->n_slots * (size_t)per + 1, sizeof *pb->entries);
    for (int i = 0; i < s->n_slots; i++) {
        adapter *a = &s->slots[i].a;
        for (int k = 0; k < per; k++) {
            param_entry *e = &pb->entries[pb->n_entries++];
            adapter_tensor_name(e->name, sizeof e->name, s->slots[i].module, s->method, k);
            slot_refs(a, k, &e->slot, &e->grad_slot, &e->ndim, e->shape);
            e->count = e->shape[0] * (e->ndim == 2 ? e->shape[1] : 1);
            e->offset = pb->n;
            pb->n += e->count;
        }
    }
    pb->params = zeros(pb->n);
    pb->grads = zeros(pb->n);
    pb->m = zeros(pb->n);
    pb->v = zeros(pb->n);
    for (int j = 0; j < pb->n_entries; j++) {
        param_entry *e = &pb->entries[j];
        memcpy(pb->params + e->offset, *e->slot, sizeof(float) * (size_t)e->count);
        sl_free_aligned(*e->slot);
        sl_free_aligned(*e->grad_slot);
        *e->slot = pb->params + e->offset;
        *e->grad_slot = pb->grads + e->offset;
    }
    return pb;
}

void param_block_free(param_block *pb) {
    if (!pb) return;
    for (int j = 0; j < pb->n_entries; j++) {
        param_entry *e = &pb->entries[j];
        float *own = sl_alloc_f32(e->count);
        memcpy(own, pb->params + e->offset, sizeof(float) * (size_t)e->count);
        *e->slot = own;
        *e->grad_slot = NULL;
    }
    sl_free_aligned(pb->params);
    sl_free_aligned(pb->grads);
    sl_free_aligned(pb->m);
    sl_free_aligned(pb->v);
    free(pb->entries);
    free(pb);
}

const param_entry *param_block_find(const param_block *pb, const char *name) {
    for (int j = 0; j < pb->n_entries; j++)
        if (strcmp(pb->entries[j].name, name) == 0) return &pb->entries[j];
    return NULL;
}

void param_block_zero_grads(param_block *pb) { memset(pb->grads, 0, sizeof(float) * (size_t)pb->n); }

double param_block_grad_norm(const param_block *pb) {
    double s = 0.0;
    for (int64_t i = 0; i < pb->n; i++) s += (double)pb->grads[i] * pb->grads[i];
    return sqrt(s);
}

float param_block_clip_grads(param_block *pb, double norm, double max_norm) {
    if (max_norm <= 0) return 1.0f;
    float coef = (float)(max_norm / (norm + 1e-6));
    if (!(coef < 1.0f)) return 1.0f;
    for (int64_t i = 0; i < pb->n; i++) pb->grads[i] *= coef;
    return coef;
}
