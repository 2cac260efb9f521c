// VAE weight-name maps for engine/weights.h (weight_name_map_ctx with a vae_name_ctx).
#pragma once
#include <stddef.h>

#include "engine/safetensors.h"

typedef struct {
    int n_levels;              // to reverse the decoder's level order in the original layout
    const st_file *file;       // to fall back to old diffusers attention names (may be NULL)
    const char *prefix;
} vae_name_ctx;

// diffusers name -> original name, e.g. decoder.up_blocks.0.resnets.2.conv_shortcut.weight ->
// decoder.up.3.block.2.nin_shortcut.weight (with 4 levels).
int vae_name_original(const char *diffusers_name, char *out, size_t outlen, const void *ctx);
// diffusers name -> the name in a diffusers file (the same, or the pre-0.14 attention names).
int vae_name_diffusers(const char *diffusers_name, char *out, size_t outlen, const void *ctx);
