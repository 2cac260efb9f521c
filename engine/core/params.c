#include "engine/core/params.h"

#include <stddef.h>

#include "engine/core/bf16_weights.h"
#include "engine/core/tensor.h"

int param_free_visitor(void *ctx, const param_desc *p) {
    (void)ctx;
    sl_free_aligned(*p->slot);
    *p->slot = NULL;
    return 0;
}

static int is_gemm_weight(const param_desc *p) { return p->kind == PARAM_WEIGHT && p->ndim >= 2; }

void param_hold_loaded(const param_desc *p) {
    if (bf16_weights_hold_loads() && is_gemm_weight(p)) bf16_weights_hold(p->slot, shape_numel(p->ndim, p->shape));
}

int param_hold_visitor(void *ctx, const param_desc *p) {
    if (!is_gemm_weight(p)) return 0;
    for (float **const *keep = ctx; keep && *keep; keep++)
        if (*keep == p->slot) return 0;
    bf16_weights_hold(p->slot, shape_numel(p->ndim, p->shape));
    return 0;
}
