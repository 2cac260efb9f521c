// Small file helpers the subcommands share.
#pragma once
#include <stdint.h>

#include "engine/io/folders.h"
#include "engine/io/safetensors.h"

// 1 when s ends with suffix (ASCII case-insensitive: ".PNG" is a PNG too).
int ends_with(const char *s, const char *suffix);

// ---- inputs of the `forward` and `backward` commands (safetensors files); each dies with one clear line ----

// The tensor `name` of f with ndim dims, none empty; `what` describes it for the errors, shape
// first, e.g. "(N, C, h, w) latents".
const st_entry *input_tensor(const st_file *f, const char *name, int ndim, const char *what);
// Dies unless e is F32.
void input_require_f32(const st_file *f, const st_entry *e, const char *what);
// The (N, L) I32 or I64 token ids in e as int32 (owned; free()).
int32_t *input_token_ids(const st_file *f, const st_entry *e);

// The UNet's inputs in f, checked before the model is loaded: x (N, C, h, w) F32, t (N) F32, I64 or
// I32 timesteps, context (N, L, D) F32, with one batch size N.
typedef struct {
    const st_entry *x, *t, *context;
    int N, h, w, L;
} unet_inputs;
unet_inputs input_unet(const st_file *f);
// Dies unless x has in_channels channels and context is cross_attention_dim wide (once the UNet is loaded).
void input_unet_match(const st_file *f, const unet_inputs *u, int in_channels, int cross_attention_dim);
// t (N) as f32 (sl_alloc_f32; free with sl_free_aligned).
float *input_timesteps(const unet_inputs *u);
// A copy of the F32 tensor e (sl_alloc_f32; free with sl_free_aligned).
float *input_copy_f32(const st_entry *e);
