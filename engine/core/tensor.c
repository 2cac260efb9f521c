#include "engine/core/tensor.h"

#include <limits.h>
#include <math.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/bf16_weights.h"
#include "engine/core/error.h"

void *sl_alloc_aligned(size_t bytes) {
    size_t n = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, n ? n : 64);
    if (!p) sl_die(NULL, "out of memory allocating %zu bytes", bytes);
    return p;
}

void sl_free_aligned(void *p) {
    if (bf16_weights_release(p)) return;   // a weight held in bf16 (its placeholder and copy)
    free(p);
}

void sl_memory_reuse(void) {
#ifdef __GLIBC__
    // every block from the heap (no fresh mmap per large buffer), and no trimming of its top
    mallopt(M_MMAP_MAX, 0);
    mallopt(M_TRIM_THRESHOLD, INT_MAX);
#endif
}

void sl_memory_release(void) {
#ifdef __GLIBC__
    malloc_trim(0);
#endif
}

float *sl_alloc_f32(int64_t n) { return sl_alloc_aligned((size_t)(n < 0 ? 0 : n) * sizeof(float)); }

float *sl_zeros_f32(int64_t n) {
    float *p = sl_alloc_f32(n);
    memset(p, 0, sizeof(float) * (size_t)(n > 0 ? n : 0));
    return p;
}

int64_t shape_numel(int ndim, const int64_t *shape) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    return n;
}

tensor tensor_view(dtype dt, int ndim, const int64_t *shape, void *data) {
    tensor t = {.dt = dt, .ndim = ndim, .data = data};
    if (ndim < 0 || ndim > TENSOR_MAX_DIMS) sl_die(NULL, "tensor with %d dims (max %d)", ndim, TENSOR_MAX_DIMS);
    for (int i = 0; i < ndim; i++) t.shape[i] = shape[i];
    return t;
}

const char *shape_str(char *buf, size_t len, int ndim, const int64_t *shape) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, len - off, "[");
    for (int i = 0; i < ndim && off < len; i++)
        off += (size_t)snprintf(buf + off, len - off, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (off < len) snprintf(buf + off, len - off, "]");
    return buf;
}


int64_t f32_first_nonfinite(const float *x, int64_t n) {
    enum { BLOCK = 4096 };
    const uint32_t EXP = 0x7f800000u;   // all exponent bits set: inf or nan
    for (int64_t b = 0; b < n; b += BLOCK) {
        int64_t e = b + BLOCK < n ? b + BLOCK : n;
        uint32_t bad = 0;
        for (int64_t i = b; i < e; i++) {
            uint32_t u;
            memcpy(&u, &x[i], sizeof u);
            bad |= (u & EXP) == EXP;
        }
        if (bad)
            for (int64_t i = b; i < e; i++)
                if (!isfinite(x[i])) return i;
    }
    return -1;
}
