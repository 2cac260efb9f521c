// A tensor: dtype, shape (up to TENSOR_MAX_DIMS), and data that is either owned
// (malloc'd, 64-byte aligned) or borrowed (e.g. a view into an mmap'd safetensors file).
#pragma once
#include <stdint.h>

#include "dtype.h"

#define TENSOR_MAX_DIMS 8

typedef struct {
    dtype dt;
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    void *data;
    int owns_data;
} tensor;

// A new owned tensor, zero-filled. Dies on out-of-memory.
tensor tensor_new(dtype dt, int ndim, const int64_t *shape);
// Shorthand for up to 4 dims: tensor_f32(2, (int64_t[]){3, 4}).
tensor tensor_f32(int ndim, const int64_t *shape);
tensor tensor_view(dtype dt, int ndim, const int64_t *shape, void *data);
void tensor_free(tensor *t);

int64_t tensor_numel(const tensor *t);
size_t tensor_nbytes(const tensor *t);
int64_t shape_numel(int ndim, const int64_t *shape);
// True when t has exactly this shape.
int tensor_shape_is(const tensor *t, int ndim, const int64_t *shape);
// "[2, 4, 16, 24]" into buf.
const char *shape_str(char *buf, size_t len, int ndim, const int64_t *shape);

// A copy of t widened to f32 (owned). Dies for dtypes without an f32 meaning.
tensor tensor_to_f32(const tensor *t);
// Converts an f32 tensor to F32/F16/BF16 (owned copy).
tensor tensor_convert(const tensor *t, dtype dt);

// 64-byte aligned allocation for compute buffers (dies on OOM); free with sl_free_aligned.
float *sl_alloc_f32(int64_t n);
// Keeps freed buffers in the process for reuse instead of returning them to the system: loops
// that allocate and free the same large activations every step (training) then stop paying page
// faults (measured: a kept-activation UNet forward spent ~25 % of its time clearing fresh pages).
// Peak RSS is unchanged; the memory stays resident until exit. Call once at program start.
void sl_memory_reuse(void);
void *sl_alloc_aligned(size_t bytes);
void sl_free_aligned(void *p);
