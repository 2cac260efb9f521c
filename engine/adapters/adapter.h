// Adapters on a frozen Linear layer y = W0·x + b, W0 (d_out, d_in), behind one interface
// (the math is ../shared/SINGLORA.md's):
//   singlora  y += s·u·A[:d_out]·(A[:d_in]ᵀ·x)        A (max(d_in, d_out), r), s = α/r, u = ramp
//   lora      y += s·up·(down·x)                     down (r, d_in), up (d_out, r)
//   dora      y  = m ⊙ (W0·x + s·up·down·x) / ‖W0 + s·up·down‖_row + b    m (d_out)
// ΔW is never formed: every product goes through the rank-r bottleneck. Adapter tensors, their
// gradients and any optimizer state are f32. The DoRA norm is differentiated exactly (it is
// not detached as PEFT does), so finite differences check the whole function.
#pragma once
#include <stdint.h>

#include "engine/core/rng.h"

typedef enum { ADAPTER_SINGLORA, ADAPTER_LORA, ADAPTER_DORA, ADAPTER_N_METHODS } adapter_method;

typedef struct {
    adapter_method method;
    int d_in, d_out, rank;
    int kernel;                  // 0: a Linear; k ≥ 1: a k×k conv, d_in = C_in·k·k (set when bound to a model)
    float alpha;                 // s = alpha / rank
    float *A;                    // singlora: (max(d_in, d_out), rank)
    float *down, *up;            // lora, dora: (rank, d_in), (d_out, rank)
    float *magnitude;            // dora: (d_out)
    float *dA, *ddown, *dup, *dmagnitude;   // gradients (same shapes), allocated by adapter_alloc_grads
} adapter;

const char *adapter_method_name(adapter_method m);
int adapter_method_from_name(const char *name);    // -1 when unknown
int adapter_rows(const adapter *a);                // singlora: max(d_in, d_out)
int64_t adapter_param_count(const adapter *a);

// The trainable tensors of a method (singlora: A; lora: down, up; dora: down, up, magnitude) and
// tensor k of an adapter: where its data and its gradient live (pointers to the adapter's
// fields, so a flat parameter block can re-point them; *grad is NULL before
// adapter_alloc_grads) and its shape. This is the one list of an adapter's tensors.
int adapter_tensor_count(adapter_method m);
typedef struct {
    float **data, **grad;
    int ndim;
    int64_t shape[2];
} adapter_tensor_ref;
adapter_tensor_ref adapter_tensor(adapter *a, int k);

// The ramp u(t) = min(t / T, 1) at optimizer step t; T = 0 disables it (u = 1).
float singlora_ramp(int64_t step, int64_t ramp_steps);

// Allocates the tensors (zeroed); adapter_init fills them (DoRA's magnitude from W0).
void adapter_alloc(adapter *a, adapter_method method, int d_in, int d_out, int rank, float alpha);
void adapter_alloc_grads(adapter *a);    // zeroed
void adapter_zero_grads(adapter *a);
void adapter_free(adapter *a);

// Initialization. kaiming: PyTorch's kaiming_uniform_(a=√5) on the tensor as stored (bound
// 1/√fan_in with fan_in = its second dim): singlora A (rows, r) ~ U(±1/√r); lora/dora down
// (r, d_in) ~ U(±1/√d_in), up = 0. normal_std > 0 draws N(0, std²) instead. DoRA's magnitude
// starts at ‖W0‖ per output row.
void adapter_init(adapter *a, sl_rng *rng, float normal_std, const float *w0);

// y (M, d_out) = the adapted layer on x (M, d_in); w0 (d_out, d_in), b (d_out) or NULL;
// u is the SingLoRA ramp value (ignored by lora and dora). a == NULL: the plain layer.
void adapter_linear_forward(float *y, const float *x, const float *w0, const float *b, const adapter *a, float u,
                            int M, int d_in, int d_out);
// Accumulates dx (M, d_in) (NULL to skip) and, when a has gradient buffers, the adapter's
// gradients; db (d_out) when not NULL. The frozen W0 gets no gradient.
void adapter_linear_backward(float *dx, float *db, const float *dy, const float *x, const float *w0, adapter *a,
                             float u, int M, int d_in, int d_out);

// W0 (d_out, d_in) += the adapter's ΔW times `scale` (merging for inference). DoRA rewrites
// the rows as W' = m ⊙ V / ‖V‖ and a scale interpolates, W0 += scale·(W' − W0).
void adapter_merge_into(float *w0, const adapter *a, float u, float scale);
// The backward of W = adapter_merge_into(W0, a, u, scale) (layers that run on the merged weight,
// e.g. convolutions): accumulates the adapter's gradients (those with buffers) from
// dw (d_out, d_in) = dL/dW. w0 is the unmerged W0.
void adapter_merged_backward(adapter *a, const float *dw, const float *w0, float u, float scale);
