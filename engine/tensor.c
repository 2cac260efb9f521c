#include "tensor.h"

#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"

void *sl_alloc_aligned(size_t bytes) {
    size_t n = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p) sl_die(NULL, "out of memory allocating %zu bytes", bytes);
    return p;
}

void sl_free_aligned(void *p) { free(p); }

void sl_memory_reuse(void) {
#ifdef __GLIBC__
    // every block from the heap (no fresh mmap per large buffer), and no trimming of its top
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

float *sl_alloc_f32(int64_t n) { return sl_alloc_aligned((size_t)(n < 0 ? 0 : n) * sizeof(float)); }

int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

int64_t tensor_numel(const tensor *t) { return shape_numel(t->ndim, t->shape); }
size_t tensor_nbytes(const tensor *t) { return (size_t)tensor_numel(t) * dtype_size(t->dt); }

tensor tensor_view(dtype dt, int ndim, const int64_t *shape, void *data) {
    tensor t = {.dt = dt, .ndim = ndim, .data = data, .owns_data = 0};
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) sl_die(NULL, "tensor with %d dims (max %d)", ndim, TENSOR_MAX_DIMS);
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    return t;
}

tensor tensor_new(dtype dt, int ndim, const int64_t *shape) {
    tensor t = tensor_view(dt, ndim, shape, NULL);
    size_t n = tensor_nbytes(&t);
    t.data = sl_alloc_aligned(n);
    memset(t.data, 0, n);
    t.owns_data = 1;
    return t;
}

tensor tensor_f32(int ndim, const int64_t *shape) { return tensor_new(DT_F32, ndim, shape); }

void tensor_free(tensor *t) {
    if (t->owns_data) sl_free_aligned(t->data);
    t->data = NULL;
    t->owns_data = 0;
}

int tensor_shape_is(const tensor *t, int ndim, const int64_t *shape) {
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (t->shape[i] != shape[i]) return 0;
    return 1;
}

const char *shape_str(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, len - off, "[");
    for (int i = 0; i < ndim && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (off < len) snprintf(buf + off, len - off, "]");
    return buf;
}

tensor tensor_to_f32(const tensor *t) {
    tensor out = tensor_new(DT_F32, t->ndim, t->shape);
    if (dtype_to_f32_n(out.data, t->data, t->dt, (size_t)tensor_numel(t)) != 0)
        sl_die(NULL, "cannot convert a %s tensor to F32", dtype_name(t->dt));
    return out;
}

tensor tensor_convert(const tensor *t, dtype dt) {
    if (t->dt != DT_F32) sl_die(NULL, "tensor_convert expects an F32 tensor, got %s", dtype_name(t->dt));
    tensor out = tensor_new(dt, t->ndim, t->shape);
    if (dtype_from_f32_n(out.data, dt, t->data, (size_t)tensor_numel(t)) != 0)
        sl_die(NULL, "cannot convert F32 to %s", dtype_name(dt));
    return out;
}
