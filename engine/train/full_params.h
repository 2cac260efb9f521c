// Every weight of a model as flat f32 blocks (the llm.c layout), for full training (pretraining
// the UNet or the VAE): the model's parameters move into ONE contiguous parameter block, the
// gradient mirror's buffers into ONE gradient block at the same offsets, and AdamW's moments and
// an EMA of the weights are blocks of the same length. The entries come from the model's one
// parameter walk (engine/core/params.h), so names, shapes and order have one source.
// AdamW (engine/train/adamw.h), the gradient norm, clipping, EMA and checkpoints are each one loop.
// The adapter trainer's param_block is the same layout over an adapter set's tensors.
#pragma once
#include <stdint.h>

#include "engine/core/params.h"
#include "engine/train/adamw.h"

// A model's walk: unet_walk, or a wrapper around vae_walk / clip_text_walk with their parts.
typedef int (*fp_walk)(void *model, param_visitor fn, void *ctx);

typedef struct {
    char *name;              // diffusers name
    int64_t offset, count;   // floats into each block (offsets are multiples of 16: 64-byte aligned)
    int ndim;
    int64_t shape[4];
} fp_entry;

typedef struct {
    int64_t n;               // floats in each block (with the alignment gaps, which stay 0)
    int64_t n_params;        // floats that are parameters
    float *params, *grads;   // (n) the weights (the model's slots point here), their gradients
    float *m, *v;            // (n) AdamW moments (zeroed)
    float *ema;              // (n) exponential moving average of the weights (starts as a copy)
    int64_t step;            // optimizer steps taken
    fp_entry *entries;
    int n_entries;
    void *model, *grad_model;
    fp_walk walk;
} full_params;

// Moves every parameter of `model` into the block (values kept, the model's own buffers freed,
// its slots pointed into the block) and, when grad_model (a gradient mirror of the same
// structure walked by the same walk) is given, points its buffers into the gradient block
// (zeroed). NULL with sl_error when the two walks disagree.
full_params *full_params_new(void *model, void *grad_model, fp_walk walk);
// Gives the model (and the mirror) buffers of their own again (copies of the current values;
// gradients zeroed), so they can be freed or saved as usual, and frees the blocks.
void full_params_free(full_params *fp);

const fp_entry *full_params_find(const full_params *fp, const char *name);   // NULL when absent
void full_params_zero_grads(full_params *fp);
// The L2 norm of the gradient block (clip_grad_norm_'s total norm), accumulated in double.
double full_params_grad_norm(const full_params *fp);
// clip_grad_norm_: multiplies the gradients by max_norm/(norm + 1e-6) when that is < 1.
// max_norm <= 0 disables it. Returns the coefficient applied.
float full_params_clip(full_params *fp, double norm, double max_norm);
// One AdamW step over the whole block (fp->step advances first: K = fp->step). Weight decay
// applies to weights of ndim >= 2 only (biases and norms are not decayed, as in most diffusion
// trainers): each entry is stepped over its range with its own decay.
void full_params_adamw(full_params *fp, double lr, const adamw_opts *o);
// ema ← decay·ema + (1 − decay)·params.
void full_params_ema_update(full_params *fp, double decay);
// Swaps the weights with the EMA (call twice to swap back): to save or sample the EMA weights.
void full_params_swap_ema(full_params *fp);

// A checkpoint: params, m, v, ema as four tensors plus the step and every entry's name and
// offset (checked on load), written atomically. 0, or -1 with sl_error.
int full_params_save(const full_params *fp, const char *path, const char *extra_meta_key, const char *extra_meta);
// Restores a checkpoint written for the same walk; *extra (may be NULL) receives a copy of the
// extra metadata value (free it). 0, or -1 with sl_error naming the file.
int full_params_load(full_params *fp, const char *path, const char *extra_meta_key, char **extra);
