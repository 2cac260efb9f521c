// The CLIP text encoder (transformers' CLIPTextModel; SD 1.x: OpenAI CLIP ViT-L/14, SD 2.x:
// OpenCLIP ViT-H/14): token + position embeddings, pre-LayerNorm transformer layers with causal
// self-attention (LN1 -> MHA -> +residual; LN2 -> fc1 -> quick_gelu/gelu -> fc2 -> +residual),
// a final LayerNorm. Loaded from a diffusers folder or an original single-file checkpoint.
#pragma once
#include "engine/blocks/encoder_layer.h"
#include <stdint.h>

#include "clip/names.h"
#include "engine/core/params.h"

typedef enum { CLIP_ACT_QUICK_GELU, CLIP_ACT_GELU } clip_act;

typedef struct {
    int hidden;         // D
    int layers;         // transformer layers held (an SD 2.x original's unused last layer is not)
    int heads;
    int intermediate;   // MLP width I
    int max_pos;        // context length (77)
    int vocab;
    float eps;          // LayerNorm epsilon
    clip_act act;
    int eos_id;         // pooling: transformers takes argmax(ids) when this is 2 (legacy configs)
} clip_text_config;

typedef encoder_layer clip_text_layer;   // pre-LN: LN1, q/k/v/o (D, D), LN2, fc1 (I, D), fc2 (D, I)

typedef struct {
    clip_text_config cfg;
    clip_layout layout;      // where the weights came from
    int sd2;                 // SD 2.x text encoder (OpenCLIP: gelu; conditions on the penultimate layer)
    float *tok_emb;          // (vocab, D)
    float *pos_emb;          // (max_pos, D)
    clip_text_layer *layer;  // cfg.layers of them
    float *lnf_w, *lnf_b;    // (D)
} clip_text_model;

// Loads the text encoder of `model`: a diffusers folder (text_encoder/), a text_encoder folder,
// a diffusers text-encoder file, or an original single file (cond_stage_model.*). `config`
// (may be NULL): a diffusers folder, a text_encoder folder or a config.json to read the
// sizes from (needed for originals whose width is not a multiple of 64, i.e. the tiny test
// models); otherwise the originals' config is detected from tensor shapes. `variant` ("fp16"
// or NULL) picks a diffusers folder's model.<variant>.safetensors. 16-bit weights are widened
// to f32. For an SD 2.x original (OpenCLIP) the last resblock is skipped: SD 2.x conditions on
// the penultimate layer, and diffusers' converted text_encoder drops that layer the same way.
// NULL with sl_error.
clip_text_model *clip_text_load(const char *model, const char *config, const char *variant);
void clip_text_free(clip_text_model *m);

// The parameters (clip/params.c): one walk over every tensor of m (diffusers names, shapes,
// init kinds, slots), used by the loader, clip_text_free and `singlora init`. m->layer must
// hold cfg.layers entries (clip_text_model_new). A nonzero visitor return stops the walk.
int clip_text_walk(clip_text_model *m, param_visitor fn, void *ctx);
clip_text_model *clip_text_model_new(const clip_text_config *c);   // no weights yet
// Walks the parameters of a model with config c without allocating weights.
int clip_text_enumerate(const clip_text_config *c, param_visitor fn, void *ctx);
// Reads c from a config.json, a text_encoder folder or a diffusers folder (text_encoder/
// config.json). clip_text_config_path: which file that is (owned), NULL with sl_error.
int clip_text_config_load(clip_text_config *c, const char *path);
char *clip_text_config_path(const char *path);
// 0 when c's sizes are usable (positive, heads divide hidden, CLIP_MIN_CONTEXT..CLIP_MAX_CONTEXT
// positions), else -1 with sl_error naming `where`. Every loader runs it on the config it ends with.
int clip_text_config_check(const clip_text_config *c, const char *where);

// ids (N, L) with L <= max_pos. Runs the embeddings and the first n_layers layers;
// out (N, L, D) = final LayerNorm of layer n_layers' output. hs (may be NULL): n_layers + 1
// pointers, each NULL or (N, L, D), receiving the embeddings (hs[0]) and each layer's output
// before the final LayerNorm (transformers' hidden_states). 0, or -1 with sl_error (an id
// outside the vocabulary, L too long, n_layers out of range).
int clip_text_forward(const clip_text_model *m, const int32_t *ids, int N, int L, int n_layers, float *out,
                      float **hs);

// The layers the UNet's conditioning is taken after: all held layers, or with A1111's clip skip
// (SD 1.x; 1 = last layer, 2 = penultimate, ...) fewer. SD 2.x ignores clip skip (its held
// layers already end at the penultimate one; A1111 does the same) and warns when it is > 1.
// -1 with sl_error when clip_skip is out of range.
int clip_text_cond_layers(const clip_text_model *m, int clip_skip);

// cond (N, L, D): the conditioning for the UNet's cross-attention.
int clip_text_condition(const clip_text_model *m, const int32_t *ids, int N, int L, int clip_skip, float *cond);

// pooled (N, D): last (N, L, D) (the final-LN output of the last layer) at each row's EOS
// position: the first eos_id, or, with legacy configs (eos_token_id 2), the largest id.
void clip_text_pool(const clip_text_model *m, const int32_t *ids, int N, int L, const float *last, float *pooled);
