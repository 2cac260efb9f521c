// A tensor view: dtype, shape (up to TENSOR_MAX_DIMS) and borrowed data (e.g. an mmap'd
// safetensors entry). Compute buffers are plain f32 arrays from sl_alloc_f32 with their shapes
// passed alongside, llm.c style.
#pragma once
#include <stdint.h>

#include "engine/core/dtype.h"

#define TENSOR_MAX_DIMS 8

typedef struct {
    dtype dt;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    void *data;
} tensor;

tensor tensor_view(dtype dt, int ndim, const int64_t *shape, void *data);
int64_t shape_numel(int ndim, const int64_t *shape);
// "[2, 4, 16, 24]" into buf.
const char *shape_str(char *buf, size_t len, int ndim, const int64_t *shape);

// The index of the first nan or ±inf in x[0..n), or -1 when all are finite. One pass over the
// exponent bits (vectorised), for checking weights at load and results before they are written.
int64_t f32_first_nonfinite(const float *x, int64_t n);

// 64-byte aligned allocation for compute buffers (dies on OOM); free with sl_free_aligned.
float *sl_alloc_f32(int64_t n);
// The same, zero-filled.
float *sl_zeros_f32(int64_t n);
// Keeps freed buffers in the process for reuse instead of returning them to the system: loops
// that allocate and free the same large activations every step (training) then stop paying page
// faults (measured: a kept-activation UNet forward spent ~25 % of its time clearing fresh pages).
// Peak RSS is unchanged; the memory stays resident until exit. Call once at program start.
void sl_memory_reuse(void);
// Hands the heap's free pages back to the system (glibc's malloc_trim; a no-op elsewhere): after
// freeing a whole model mid-run, so peak RSS is what is still in use, not what ever was.
void sl_memory_release(void);
void *sl_alloc_aligned(size_t bytes);
void sl_free_aligned(void *p);
