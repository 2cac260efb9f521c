// Where the CLIP text encoder's tensors live in each layout, by their diffusers
// (transformers CLIPTextModel) names: `text_model.encoder.layers.N.self_attn.q_proj.weight`.
#pragma once
#include <stddef.h>

typedef enum {
    CLIP_LAYOUT_DIFFUSERS,   // text_encoder/model.safetensors: the names as they are
    CLIP_LAYOUT_SD1,         // cond_stage_model.transformer.text_model.* (SD 1.x single file)
    CLIP_LAYOUT_SD1_OLD,     // cond_stage_model.transformer.* (older transformers, no text_model.)
    CLIP_LAYOUT_OPENCLIP,    // cond_stage_model.model.* (SD 2.x: OpenCLIP, fused q/k/v)
} clip_layout;

const char *clip_layout_name(clip_layout l);
// The prefix of the text encoder in a single file ("" for diffusers).
const char *clip_layout_prefix(clip_layout l);

// Writes the stored name (after the prefix) of the diffusers tensor `name` into out. For
// OpenCLIP's fused attention input projection, *qkv gets 0, 1 or 2 (rows [qkv·D, (qkv+1)·D) of
// in_proj_weight / in_proj_bias); otherwise -1. Returns -1 for a name the layout lacks.
int clip_text_stored_name(clip_layout layout, const char *name, char *out, size_t len, int *qkv);
