#include "engine/core/params.h"

#include <stddef.h>

#include "engine/core/tensor.h"

int param_free_visitor(void *ctx, const param_desc *p) {
    (void)ctx;
    sl_free_aligned(*p->slot);
    *p->slot = NULL;
    return 0;
}
