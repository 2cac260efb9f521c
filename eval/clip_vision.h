// CLIP's image tower in transformers' CLIPModel layout (openai/clip-vit-base-patch32, ViT-L/14, any
// size its vision_config gives): the shared ViT with a bias-free patch conv, pre_layrnorm on the
// embeddings, quick_gelu, LayerNorm eps 1e-5; image_embeds = visual_projection(post_layernorm(CLS)),
// the CLIP-I feature.
#pragma once
#include "engine/io/config.h"
#include "eval/vit.h"

extern const vit_names CLIP_VISION_NAMES;   // vision_model.* of a CLIPModel file

typedef struct {
    vit_model *vit;
    float *proj;   // (P, D) visual_projection.weight, no bias
    int proj_dim;  // P
} clip_vision_model;

// The sizes from a CLIPModel config's `vision_config` object (`vc`; hidden_size, intermediate_size,
// num_attention_heads, num_hidden_layers, image_size, patch_size are required). -1 with sl_error.
int clip_vision_config_read(vit_config *c, const json_config *vc);

// Walks the vision tower and visual_projection (P, D) of m.
int clip_vision_walk(clip_vision_model *m, param_visitor fn, void *ctx);
void clip_vision_free(clip_vision_model *m);

// pixels (N, C, S, S), CLIP-normalised -> embeds (N, P) = image_embeds; pooled (may be NULL)
// (N, D) = post_layernorm(CLS) (pooler_output); last (may be NULL) (N, T, D) = the encoder output
// before post_layernorm (last_hidden_state); hs (may be NULL): layers + 1 pointers as vit_forward
// (hs[0] after pre_layrnorm).
void clip_vision_forward(const clip_vision_model *m, const float *pixels, int N, float *embeds, float *pooled,
                         float *last, float **hs);
