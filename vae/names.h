// VAE weight-name maps for engine/weights.h (weight_name_map_ctx with a vae_name_ctx).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/io/safetensors.h"

typedef struct {
    int n_levels;              // to reverse the decoder's level order in the original layout
    const st_file *file;       // to fall back to old diffusers attention names (may be NULL)
    const char *prefix;
} vae_name_ctx;

// diffusers name -> original name, e.g. decoder.up_blocks.0.resnets.2.conv_shortcut.weight ->
// decoder.up.3.block.2.nin_shortcut.weight (with 4 levels).
int vae_name_original(const char *diffusers_name, char *out, size_t outlen, const void *ctx);
// The shape the original layout stores `diffusers_name` with: the mid-block attention's
// q/k/v/proj_out are 1×1 convs (C, C, 1, 1) there and Linears (C, C) in diffusers; every other
// tensor keeps its shape. Rewrites *ndim and shape (room for 4) in place.
void vae_original_shape(const char *diffusers_name, int *ndim, int64_t *shape);
// diffusers name -> the name in a diffusers file (the same, or the pre-0.14 attention names).
int vae_name_diffusers(const char *diffusers_name, char *out, size_t outlen, const void *ctx);
