#include "pipeline/prompt.h"

#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "pipeline/prompt_syntax.h"

int sd_encode_ids(const sd_model *m, const int32_t *ids, int n_chunks, float *cond) {
    int ctx = m->text->cfg.max_pos;
    // each chunk is encoded on its own; the chunks' conditionings follow each other in cond
    return clip_text_condition(m->text, ids, n_chunks, ctx, m->clip_skip, cond);
}

// ids (n, ctx) for a prompt: one truncated row, or A1111 chunks.
static int32_t *plain_ids(const sd_model *m, const char *text, int long_prompts, int *n) {
    int ctx = m->text->cfg.max_pos;
    if (long_prompts) return clip_encode_chunks(m->tok, text, ctx, n);
    int32_t *ids = sl_malloc(sizeof(int32_t) * (size_t)ctx);
    if (clip_encode(m->tok, text, ctx, ids, 1) < 0) { free(ids); return NULL; }
    *n = 1;
    return ids;
}

// The tokens of an emphasis parse with their weights (BREAK = id -1), chunked as A1111 does, or
// (without long prompts) truncated to one row with the BREAKs ignored.
static int32_t *weighted_ids(const sd_model *m, const prompt_attention *a, int long_prompts, int *n, float **weights) {
    int ctx = m->text->cfg.max_pos, nt = 0, cap = 0, breaks = 0;
    int *tok = NULL;
    float *w = NULL;
    for (int s = 0; s < a->n; s++) {
        int k, is_break = prompt_segment_is_break(&a->seg[s]);
        int *t = is_break ? NULL : clip_tokenize(m->tok, a->seg[s].text, &k);
        if (is_break) k = long_prompts ? 1 : 0, breaks++;
        if (nt + k > cap) {
            cap = 2 * (nt + k) + 16;
            tok = sl_realloc(tok, (size_t)cap * sizeof *tok);
            w = sl_realloc(w, (size_t)cap * sizeof *w);
        }
        for (int q = 0; q < k; q++) {
            tok[nt + q] = is_break ? -1 : t[q];
            w[nt + q] = is_break ? 1.0f : (float)a->seg[s].weight;
        }
        nt += k;
        free(t);
    }
    int32_t *ids;
    if (long_prompts) {
        ids = clip_chunk_tokens(m->tok, tok, w, nt, ctx, n, weights);
    } else {
        if (breaks) sl_warn("the prompt's BREAK ends a 75-token chunk only with --long-prompts; ignored");
        if (nt > ctx - 2)
            sl_warn("the prompt is %d tokens long; CLIP reads %d, the rest is dropped (--long-prompts keeps it)", nt, ctx - 2);
        ids = sl_malloc(sizeof(int32_t) * (size_t)ctx);
        clip_ids_row(m->tok, tok, nt, ctx, ids);
        float *wr = sl_malloc(sizeof(float) * (size_t)ctx);
        for (int q = 0; q < ctx; q++) wr[q] = q >= 1 && q <= nt && q <= ctx - 2 ? w[q - 1] : 1.0f;
        *weights = wr;
        *n = 1;
    }
    free(tok);
    free(w);
    return ids;
}

// ids (n, ctx) for a prompt, and with emphasis its token weights (n, ctx), NULL when all are 1.
static int32_t *prompt_ids(const sd_model *m, const char *text, int flags, int *n, float **weights) {
    *weights = NULL;
    int long_prompts = (flags & SD_PROMPT_LONG) != 0;
    if (!(flags & SD_PROMPT_EMPHASIS)) return plain_ids(m, text, long_prompts, n);
    prompt_attention a;
    if (prompt_parse_attention(text, &a) != 0) return NULL;
    int32_t *ids;
    if (a.n == 1 && a.seg[0].weight == 1.0 && !prompt_segment_is_break(&a.seg[0]))
        ids = plain_ids(m, a.seg[0].text, long_prompts, n);   // no emphasis: just the escapes resolved
    else
        ids = weighted_ids(m, &a, long_prompts, n, weights);
    prompt_attention_free(&a);
    return ids;
}

void sd_apply_emphasis(float *z, const float *weights, int L, int D) {
    double before = 0, after = 0;
    for (int64_t q = 0; q < (int64_t)L * D; q++) before += z[q];
    for (int t = 0; t < L; t++)
        for (int d = 0; d < D; d++) {
            float *v = &z[(int64_t)t * D + d];
            *v = *v * weights[t];
            after += *v;
        }
    float r = (float)(before / after);   // the means' ratio: the sums' over the same count
    for (int64_t q = 0; q < (int64_t)L * D; q++) z[q] = z[q] * r;
}

int sd_encode_prompts(const sd_model *m, const char *prompt, const char *negative, int want_uncond, int flags,
                      sd_conditioning *out) {
    memset(out, 0, sizeof *out);
    int ctx = m->text->cfg.max_pos, D = m->text->cfg.hidden;
    int nc = 0, nu = 0;
    float *c_w = NULL, *u_w = NULL;
    int32_t *c_ids = prompt_ids(m, prompt, flags, &nc, &c_w);
    if (!c_ids) return -1;
    int32_t *u_ids = NULL;
    if (want_uncond) {
        u_ids = prompt_ids(m, negative ? negative : "", flags, &nu, &u_w);
        if (!u_ids) { free(c_ids); free(c_w); return -1; }
    }
    // both branches get the same number of chunks: the shorter repeats the empty prompt's chunk
    int n = nc > nu ? nc : nu;
    int32_t *empty = NULL;
    if (n > nc || (want_uncond && n > nu)) {
        int ne;
        empty = plain_ids(m, "", 0, &ne);
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
    // emphasis per chunk, on the encoder's output (A1111's "Original" emphasis)
    for (int k = 0; rc == 0 && k < n; k++) {
        if (c_w && k < nc) sd_apply_emphasis(all + (size_t)k * ctx * D, c_w + (size_t)k * ctx, ctx, D);
        if (u_w && k < nu) sd_apply_emphasis(all + (size_t)(n + k) * ctx * D, u_w + (size_t)k * ctx, ctx, D);
    }
    free(c_w);
    free(u_w);
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
