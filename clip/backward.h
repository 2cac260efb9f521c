// CLIP text encoder training: a forward that records its activations (a tape), the backward
// through the final LayerNorm, every layer and both embedding tables, and gradient mirrors
// (a clip_text_model of the same structure whose parameter pointers are f32 gradient buffers,
// as unet_grads_new / vae_grads_new give for the UNet and the VAE).
#pragma once
#include <stdint.h>

#include "clip/text_encoder.h"

typedef struct {
    const clip_text_model *m;
    int N, L;
    int32_t *ids;              // (N, L) copy
    encoder_shape sh;
    encoder_scratch *layer;    // m->cfg.layers of them: each layer's activations
    float *x_last;             // (N·L, D) the last layer's output, the final LayerNorm's input
    float *mean, *rstd;        // (N·L) the final LayerNorm's statistics
} clip_text_tape;

// out (N, L, D) = clip_text_forward(m, ids, N, L, all layers, out) (the same numbers), and the
// tape its backward needs. NULL with sl_error (the same checks as clip_text_forward).
clip_text_tape *clip_text_forward_train(const clip_text_model *m, const int32_t *ids, int N, int L, float *out);
// Accumulates (+=) into the mirror g the gradient of the loss given dout (N, L, D), its
// gradient at the final LayerNorm's output. The token table gets gradient rows for the ids
// used only. The tape stays valid (free it with clip_text_tape_free).
void clip_text_backward(clip_text_model *g, const float *dout, const clip_text_tape *t);
void clip_text_tape_free(clip_text_tape *t);

// A gradient mirror of m: every parameter, zeroed. Free with clip_text_free.
clip_text_model *clip_text_grads_new(const clip_text_model *m);
