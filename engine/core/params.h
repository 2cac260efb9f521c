// A model's parameter list, walked by one function per model (the single source of truth for
// names, shapes and where each tensor lives): loading, `init` (random weights at real shapes),
// counting and freeing all use the same walk.
#pragma once
#include <stdint.h>

typedef enum {
    PARAM_WEIGHT,        // linear/conv weight: PyTorch default init, uniform ±1/sqrt(fan_in)
    PARAM_BIAS,          // bias of such a layer: same range as its weight
    PARAM_NORM_WEIGHT,   // GroupNorm/LayerNorm gamma: 1
    PARAM_NORM_BIAS,     // GroupNorm/LayerNorm beta: 0
} param_kind;

typedef struct {
    const char *name;    // diffusers name, e.g. "down_blocks.0.resnets.0.conv1.weight"
    int ndim;
    int64_t shape[4];
    param_kind kind;
    int64_t fan_in;      // inputs per output (C_in·k·k for a conv), for PARAM_WEIGHT/PARAM_BIAS
    float **slot;        // where the model keeps the f32 data (NULL = not allocated)
} param_desc;

// Called once per parameter; a nonzero return stops the walk and is returned by it.
typedef int (*param_visitor)(void *ctx, const param_desc *p);

// A visitor that frees each parameter's f32 data and clears its slot (the models' *_free walk
// with it).
int param_free_visitor(void *ctx, const param_desc *p);

// Holds a just-loaded GEMM weight (PARAM_WEIGHT with 2 or more dimensions) in bf16 while the
// loaders' switch is on (engine/core/bf16_weights.h); anything else is left as it is. Loaders call
// it for every parameter they load that only GEMMs read (not embedding tables).
void param_hold_loaded(const param_desc *p);

// A visitor that holds every GEMM weight (as above, without the switch) except those whose slot
// is in ctx (a NULL-terminated array of float ** to keep f32, e.g. layers with adapters), or all
// of them when ctx is NULL.
int param_hold_visitor(void *ctx, const param_desc *p);
