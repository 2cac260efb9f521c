// The trainable state of an adapter set as flat f32 blocks (the llm.c layout): every adapter
// tensor lives in ONE contiguous parameter block, its gradient at the same offset of ONE
// gradient block, and AdamW's two moments in two more blocks of the same length. AdamW,
// the gradient norm, clipping, zeroing, checkpoints and a future all-reduce are each one loop
// or one call over a block. The entries enumerate (adapter-file tensor name, offset, count,
// shape) in slot order, then tensor order within a slot (adapter_tensor_name's k).
#pragma once
#include <stdint.h>

#include "engine/adapters/adapter_set.h"

typedef struct {
    char name[600];          // as in an adapter file: unet.<module>.singlora.A, .lora.down, ...
    int64_t offset, count;   // floats into each block
    int ndim;
    int64_t shape[2];
    float **slot, **grad_slot;   // where the adapter keeps the tensor and its gradient
} param_entry;

typedef struct {
    adapter_set *set;        // not owned; its tensors point into params/grads while bound
    int64_t n;               // floats in each block
    float *params;           // (n) every adapter tensor
    float *grads;            // (n) their gradients
    float *m, *v;            // (n) AdamW first and second moments (zeroed)
    param_entry *entries;    // (n_entries)
    int n_entries;
} param_block;

// Moves every tensor of s into the parameter block (values kept, the set's own buffers freed)
// and points the adapters' gradient buffers into the gradient block (zeroed). The set's layer
// shapes must be final (attached or created on a model).
param_block *param_block_new(adapter_set *s);
// Gives the set back buffers of its own (copies of the current values; gradients dropped) and
// frees the blocks, so the set can be saved and freed as usual afterwards.
void param_block_free(param_block *pb);

const param_entry *param_block_find(const param_block *pb, const char *name);   // NULL when absent
void param_block_zero_grads(param_block *pb);
// The L2 norm of the whole gradient block (torch.nn.utils.clip_grad_norm_'s total_norm with
// norm_type 2), accumulated in double.
double param_block_grad_norm(const param_block *pb);
// clip_grad_norm_: with total norm `norm`, multiplies the gradients by max_norm/(norm + 1e-6)
// when that is < 1. max_norm <= 0 disables clipping. Returns the coefficient applied (1: none).
float param_block_clip_grads(param_block *pb, double norm, double max_norm);
