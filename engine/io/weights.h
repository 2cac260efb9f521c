// Loading a model's weights by their diffusers names from either layout. A model supplies a
// name map (diffusers name -> name in the file, without the prefix); the loader widens any
// float dtype to f32, checks shapes and, at the end, names every tensor nothing consumed.
#pragma once
#include <stddef.h>

#include "engine/io/safetensors.h"

// Writes the stored name for `diffusers_name` into out; returns 0, or -1 when it has none.
typedef int (*weight_name_map)(const char *diffusers_name, char *out, size_t outlen);
// The same with a context, for maps that need the config or the file (e.g. the VAE decoder's
// reversed block order in the original layout, or older diffusers attention names).
typedef int (*weight_name_map_ctx)(const char *diffusers_name, char *out, size_t outlen, const void *ctx);

typedef struct {
    st_file *file;
    const char *prefix;      // e.g. "model.diffusion_model." or "" for a diffusers component file
    weight_name_map map;     // NULL: names are stored as they are
    weight_name_map_ctx map_ctx;   // used instead of map when set, called with ctx
    const void *ctx;
} weight_loader;

// Loads `name` as owned f32 with the expected shape (a stored (C, C, 1, 1) matches an expected
// (C, C) and vice versa: 1×1 convs and linears are interchangeable). NULL with sl_error.
float *weights_load(weight_loader *wl, const char *name, int ndim, const int64_t *shape);
// Rows [row0, row0 + rows) of a stored 2-D (or 1-D) tensor, e.g. q/k/v out of a fused in_proj.
float *weights_load_rows(weight_loader *wl, const char *stored_name, int row0, int rows, int cols);
// Errors (naming the first few) when a tensor under the prefix was never loaded, unless its
// name (after the prefix) starts with one of the `ignore` prefixes (NULL-terminated list).
int weights_check_unused(weight_loader *wl, const char *const *ignore);
