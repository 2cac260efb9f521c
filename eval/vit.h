// The Vision Transformer shared by DINO and CLIP's image tower: a patch embedding (a conv with
// stride = kernel = patch, as one GEMM over the patches), a class token and learned position
// embeddings, an optional LayerNorm on the embeddings (CLIP's pre_layrnorm), pre-LN encoder
// blocks (LN1 -> MHA -> +residual; LN2 -> fc1 -> GELU / quick_gelu -> fc2 -> +residual) and a
// final LayerNorm (DINO's `norm`, CLIP's post_layernorm) that the families apply themselves.
// Tokens are (N, T, D) with T = (S/P)² + 1, the class token first.
#pragma once
#include "engine/blocks/encoder_layer.h"
#include "engine/core/params.h"

typedef enum { VIT_ACT_GELU, VIT_ACT_QUICK_GELU } vit_act;

typedef struct {
    int hidden;         // D
    int layers;
    int heads;
    int intermediate;   // MLP width I
    int image_size;     // S (square input)
    int patch_size;     // P (S % P == 0)
    int channels;       // C (3)
    float eps;          // LayerNorm epsilon
    vit_act act;
    int patch_bias;     // the patch conv has a bias (DINO) or not (CLIP)
    int qkv_bias;       // q, k, v projections have biases
    int pre_norm;       // a LayerNorm on the embeddings (CLIP's pre_layrnorm)
} vit_config;

typedef encoder_layer vit_layer;   // pre-LN; q/k/v biases NULL without qkv_bias

typedef struct {
    vit_config cfg;
    float *patch_w, *patch_b;     // (D, C, P, P), (D) or NULL
    float *cls;                   // (D)
    float *pos;                   // (T, D)
    float *pre_ln_w, *pre_ln_b;   // (D), NULL without pre_norm
    vit_layer *layer;             // cfg.layers of them
    float *ln_w, *ln_b;           // (D) the final LayerNorm
} vit_model;

// Where a family keeps the tensors: names of the embeddings and the final norm, and per layer
// (a printf format with one %d for the layer index, then the sub-module's name). The class
// token and position table are stored as (1, 1, D) / (1, T, D) when *_3d is set, else (D) / (T, D).
typedef struct {
    const char *cls;
    int cls_3d;
    const char *pos;
    int pos_3d;
    const char *patch;     // the conv; ".weight" / ".bias" are appended
    const char *pre_ln;    // NULL when the family has none
    const char *layer;     // e.g. "encoder.layer.%d."
    const char *ln1, *q, *k, *v, *o, *ln2, *fc1, *fc2;
    const char *ln_final;
} vit_names;

// Tokens per image: (S/P)² + 1.
int vit_tokens(const vit_config *c);
// 0, or -1 with sl_error naming `path` when the sizes are inconsistent.
int vit_config_check(const vit_config *c, const char *path);

vit_model *vit_model_new(const vit_config *c);   // no weights yet
void vit_free(vit_model *m);
// Every tensor of m under the family's names (shapes, init kinds, slots): loading, freeing and
// random initialisation use this one walk. A nonzero visitor return stops it.
int vit_walk(vit_model *m, const vit_names *names, param_visitor fn, void *ctx);

// pixels (N, C, S, S), already normalised -> x (N, T, D): the last block's output, before the
// final LayerNorm. hs (may be NULL): layers + 1 pointers, each NULL or (N, T, D), receiving the
// embeddings (after pre_layrnorm when the model has it) and each block's output.
void vit_forward(const vit_model *m, const float *pixels, int N, float *x, float **hs);
// out (M, D) = the final LayerNorm of x (M, D).
void vit_final_norm(const vit_model *m, float *out, const float *x, int M);
