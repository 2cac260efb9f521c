// Prompts to the UNet's conditioning: tokenize, encode, and (with long prompts) concatenate
// A1111-style 75-token chunks. The prompt and the negative prompt get the same length so both
// classifier-free-guidance branches run in one batch.
#pragma once
#include "pipeline/sd_model.h"

typedef struct {
    float *cond, *uncond;   // (L, D) each; uncond is NULL when not asked for
    int L, D;
} sd_conditioning;

enum {
    SD_PROMPT_LONG = 1,      // A1111-style 75-token chunks (else a prompt past 75 tokens is truncated)
    SD_PROMPT_EMPHASIS = 2,  // A1111's (word:1.2) / (word) / [word] / BREAK syntax (pipeline/prompt_syntax.h)
};

// Encodes `prompt` (and `negative`, when want_uncond; NULL = the empty prompt) with `flags`
// (SD_PROMPT_*; 0 = the text as it is, truncated past 75 tokens with a warning). With emphasis,
// each chunk's conditioning z (ctx, D) is weighted per token and its mean restored, as A1111's
// default "Original" emphasis: z *= w[token]; z *= mean(z before) / mean(z after).
// 0, or -1 with sl_error.
int sd_encode_prompts(const sd_model *m, const char *prompt, const char *negative, int want_uncond, int flags,
                      sd_conditioning *out);
// That weighting on one chunk: z (L, D), weights (L).
void sd_apply_emphasis(float *z, const float *weights, int L, int D);
// The same from token ids: ids (n_chunks, 77) rows concatenated along the sequence.
int sd_encode_ids(const sd_model *m, const int32_t *ids, int n_chunks, float *cond);
void sd_conditioning_free(sd_conditioning *c);
