// A CLIP model in transformers' CLIPModel layout (a folder with config.json + model.safetensors,
// and the tokenizer's vocab.json + merges.txt): the image tower (eval/clip_vision.h) and the text
// tower (clip/text_encoder.h's transformer) with text_projection. text_embeds =
// text_projection(final-LN state at the first EOS), the CLIP-T feature.
#pragma once
#include <stdint.h>

#include "clip/text_encoder.h"
#include "clip/tokenizer.h"
#include "eval/clip_vision.h"

typedef struct {
    clip_vision_model *vision;
    clip_text_model *text;
    float *text_proj;          // (P, Dt) text_projection.weight, no bias
    int proj_dim;              // P (projection_dim)
    clip_tokenizer *tokenizer; // from the model's folder; NULL when it has none
} clip_model;

// `path`: a CLIPModel folder, or its model.safetensors (config.json beside it). The tokenizer is
// loaded when the folder has one (clip_model_encode_text then works). NULL with sl_error (not a
// CLIP model, missing config keys, wrong shapes, stray tensors).
clip_model *clip_model_load(const char *path);
void clip_model_free(clip_model *m);

// ids (N, L) -> embeds (N, P) = text_embeds; pooled (may be NULL) (N, Dt) = pooler_output;
// last (may be NULL) (N, L, Dt) = last_hidden_state (after the final LN); hs as
// clip_text_forward (may be NULL). 0, or -1 with sl_error (ids out of range, L too long).
int clip_model_text_forward(const clip_model *m, const int32_t *ids, int N, int L, float *embeds, float *pooled,
                            float *last, float **hs);
// The text embedding (P) of a prompt through the model's tokenizer (77 tokens). -1 with sl_error
// when the folder has no tokenizer.
int clip_model_encode_text(const clip_model *m, const char *prompt, float *embed);
