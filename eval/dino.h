// DINO ViT (facebookresearch/dino; the DINO metric uses ViT-S/16): the shared ViT with exact
// GELU, qkv biases and LayerNorm eps 1e-6; the feature is the final LayerNorm of the CLS token.
// Two layouts: transformers' ViTModel (the facebook/dino-vits16 folder: config.json +
// model.safetensors; a `vit.` prefix is stripped, pooler.* / head.* are ignored) and the
// original names (cls_token, pos_embed, blocks.N.attn.qkv fused, norm) with the config from the
// file's `config` metadata or, without it, from the tensor shapes (64-wide heads).
#pragma once
#include "eval/vit.h"

typedef enum { DINO_LAYOUT_HF, DINO_LAYOUT_ORIGINAL } dino_layout;

typedef struct {
    vit_model *vit;
    dino_layout layout;
} dino_model;

// The ViTModel names (after the stripped prefix) and the original ones.
extern const vit_names DINO_HF_NAMES;
extern const vit_names DINO_ORIGINAL_NAMES;

// `path`: a folder (config.json + model.safetensors) or a .safetensors file in either layout.
// NULL with sl_error (not a DINO ViT, missing config keys, wrong shapes, stray tensors).
dino_model *dino_load(const char *path);
void dino_free(dino_model *m);
const char *dino_layout_name(dino_layout l);

// pixels (N, C, S, S) ImageNet-normalised -> cls (N, D) = final LayerNorm of the CLS token;
// last (may be NULL) (N, T, D) = the final LayerNorm of every token (last_hidden_state);
// hs (may be NULL): layers + 1 pointers as vit_forward.
void dino_forward(const dino_model *m, const float *pixels, int N, float *cls, float *last, float **hs);
