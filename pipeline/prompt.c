#include "pipeline/prompt.h"

#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"

int sd_encode_ids(const sd_model *m, const int32_t *ids, int n_chunks, float *cond) {
    int ctx = m->text->cfg.max_pos;
    // each chunk is encoded on its own; the chunks' conditionings follow each other in cond
    return clip_text_condition(m->text, ids, n_chunks, ctx, m->clip_skip, cond);
}

// ids (n, ctx) for a prompt: one truncated row, or A1111 chunks.
static int32_t *prompt_ids(const sd_model *m, const char *text, int long_prompts, int *n) {
    int ctx = m->text->cfg.max_pos;
    if (long_prompts) return clip_encode_chunks(m->tok, text, ctx, n);
    int32_t *ids = sl_malloc(sizeof(int32_t) * (size_t)ctx);
    if (clip_encode(m->tok, text, ctx, ids, 1) < 0) { free(ids); return NULL; }
    *n = 1;
    return ids;
}

int sd_encode_prompts(const sd_model *m, const char *prompt, const char *negative, int want_uncond, int long_prompts,
                      sd_conditioning *out) {
    memset(out, 0, sizeof *out);
    int ctx = m->text->cfg.max_pos, D = m->text->cfg.hidden;
    int nc = 0, nu = 0;
    int32_t *c_ids = prompt_ids(m, prompt, long_prompts, &nc);
    if (!c_ids) return -1;
    int32_t *u_ids = NULL;
    if (want_uncond) {
        u_ids = prompt_ids(m, negative ? negative : "", long_prompts, &nu);
        if (!u_ids) { free(c_ids); return -1; }
    }
    // both branches get the same number of chunks: the shorter repeats the empty prompt's chunk
    int n = nc > nu ? nc : nu;
    int32_t *empty = NULL;
    if (n > nc || (want_uncond && n > nu)) {
        int ne;
        empty = prompt_ids(m, "", 0, &ne);
        if (!empty) { free(c_ids); free(u_ids); return -1; }
    }
    int32_t *ids = sl_malloc(sizeof(int32_t) * (size_t)n * ctx * 2);
    for (int k = 0; k < n; k++) {
        memcpy(ids + (size_t)k * ctx, k < nc ? c_ids + (size_t)k * ctx : empty, sizeof(int32_t) * ctx);
        if (want_uncond)
            memcpy(ids + (size_t)(n + k) * ctx, k < nu ? u_ids + (size_t)k * ctx : empty, sizeof(int32_t) * ctx);
    }
    int rows = want_uncond ? 2 * n : n;
    float *all = sl_alloc_f32((int64_t)rows * ctx * D);
    int rc = sd_encode_ids(m, ids, rows, all);
    free(ids);
    free(c_ids);
    free(u_ids);
    free(empty);
    if (rc != 0) { sl_free_aligned(all); return -1; }
    out->L = n * ctx;
    out->D = D;
    out->cond = sl_alloc_f32((int64_t)out->L * D);
    memcpy(out->cond, all, sizeof(float) * (size_t)out->L * D);
    if (want_uncond) {
        out->uncond = sl_alloc_f32((int64_t)out->L * D);
        memcpy(out->uncond, all + (size_t)out->L * D, sizeof(float) * (size_t)out->L * D);
    }
    sl_free_aligned(all);
    return 0;
}

void sd_conditioning_free(sd_conditioning *c) {
    sl_free_aligned(c->cond);
    sl_free_aligned(c->uncond);
    memset(c, 0, sizeof *c);
}
