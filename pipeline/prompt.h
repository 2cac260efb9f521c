// Prompts to the UNet's conditioning: tokenize, encode, and (with long prompts) concatenate
// A1111-style 75-token chunks. The prompt and the negative prompt get the same length so both
// classifier-free-guidance branches run in one batch.
#pragma once
#include "pipeline/sd_model.h"

typedef struct {
    float *cond, *uncond;   // (L, D) each; uncond is NULL when not asked for
    int L, D;
} sd_conditioning;

// Encodes `prompt` (and `negative`, when want_uncond; NULL = the empty prompt). Without
// long_prompts a prompt past 75 tokens is truncated with a warning. 0, or -1 with sl_error.
int sd_encode_prompts(const sd_model *m, const char *prompt, const char *negative, int want_uncond, int long_prompts,
                      sd_conditioning *out);
// The same from token ids: ids (n_chunks, 77) rows concatenated along the sequence.
int sd_encode_ids(const sd_model *m, const int32_t *ids, int n_chunks, float *cond);
void sd_conditioning_free(sd_conditioning *c);
