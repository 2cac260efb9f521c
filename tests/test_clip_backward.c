// CLIP text encoder backward: one encoder layer (causal + quick_gelu as CLIP's text tower,
// bidirectional + gelu as the ViTs) against central finite differences of a double reference,
// every entry of every tensor; the whole text encoder against directional finite differences
// of its own f32 forward, the training forward equal to the inference forward, and the token
// table's gradient confined to the rows of the ids used.
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "clip/backward.h"
#include "clip/text_encoder.h"
#include "engine/core/tensor.h"
#include "tests/param_check.h"
#include "tests/reference.h"
#include "tests/test.h"

// ---------------------------------------------------------------- one layer

enum { P_LN1W, P_LN1B, P_QW, P_QB, P_KW, P_KB, P_VW, P_VB, P_OW, P_OB, P_LN2W, P_LN2B, P_F1W, P_F1B, P_F2W, P_F2B,
       P_X, P_NP };

typedef struct {
    tparam p[P_NP];
    encoder_shape sh;
    double *R;
} layer_case;

static double ref_act(double x, encoder_act a) { return a == ENCODER_ACT_GELU ? ref_gelu(x) : x / (1.0 + exp(-1.702 * x)); }

// the layer in double: x + o(attn(LN1 x)), then + fc2(act(fc1(LN2 ·)))
static double layer_loss(void *ctx) {
    layer_case *c = ctx;
    const encoder_shape *s = &c->sh;
    int M = s->N * s->L, D = s->D, I = s->I;
    int64_t MD = (int64_t)M * D;
    double *x = malloc(sizeof(double) * MD), *h = malloc(sizeof(double) * MD), *q = malloc(sizeof(double) * MD);
    double *k = malloc(sizeof(double) * MD), *v = malloc(sizeof(double) * MD), *a = malloc(sizeof(double) * MD);
    double *t = malloc(sizeof(double) * MD), *f = malloc(sizeof(double) * (size_t)M * I);
    memcpy(x, c->p[P_X].d, sizeof(double) * MD);
    ref_layernorm(h, x, c->p[P_LN1W].d, c->p[P_LN1B].d, M, D, s->eps);
    ref_linear(q, h, c->p[P_QW].d, c->p[P_QB].d, M, D, D);
    ref_linear(k, h, c->p[P_KW].d, c->p[P_KB].d, M, D, D);
    ref_linear(v, h, c->p[P_VW].d, c->p[P_VB].d, M, D, D);
    ref_attention(a, q, k, v, s->N, s->L, s->L, s->H, D / s->H, 1.0 / sqrt((double)(D / s->H)), s->causal);
    ref_linear(t, a, c->p[P_OW].d, c->p[P_OB].d, M, D, D);
    for (int64_t i = 0; i < MD; i++) x[i] += t[i];
    ref_layernorm(h, x, c->p[P_LN2W].d, c->p[P_LN2B].d, M, D, s->eps);
    ref_linear(f, h, c->p[P_F1W].d, c->p[P_F1B].d, M, D, I);
    for (int64_t i = 0; i < (int64_t)M * I; i++) f[i] = ref_act(f[i], s->act);
    ref_linear(t, f, c->p[P_F2W].d, c->p[P_F2B].d, M, I, D);
    double sum = 0;
    for (int64_t i = 0; i < MD; i++) sum += (x[i] + t[i]) * c->R[i];
    free(x), free(h), free(q), free(k), free(v), free(a), free(t), free(f);
    return sum;
}

static void layer_fd_case(const char *what, encoder_act act, int causal) {
    layer_case c;
    memset(&c, 0, sizeof c);
    c.sh = (encoder_shape){2, 5, 8, 2, 12, 1e-5f, act, causal};
    const int D = 8, I = 12, M = 10;
    const char *names[P_NP] = {"ln1.w", "ln1.b", "q.w", "q.b", "k.w", "k.b", "v.w", "v.b", "o.w", "o.b",
                               "ln2.w", "ln2.b", "fc1.w", "fc1.b", "fc2.w", "fc2.b", "x (input)"};
    int64_t sizes[P_NP] = {D, D, D * D, D, D * D, D, D * D, D, D * D, D, D, D, I * D, I, D * I, D, (int64_t)M * D};
    for (int i = 0; i < P_NP; i++) {
        int norm_w = i == P_LN1W || i == P_LN2W;
        tp_new(&c.p[i], names[i], sizes[i], 300 + i, norm_w ? 0.5f : -0.5f, norm_w ? 1.5f : 0.5f);
    }
    for (int i = 0; i < M * D; i++) c.p[P_X].f[i] *= 3, c.p[P_X].d[i] *= 3;   // LayerNorm inputs of some size
    float *Rf = rand_f32((int64_t)M * D, 320, -1, 1);
    c.R = to_f64(Rf, (int64_t)M * D);
    float *pf[P_NP], *pg[P_NP];
    for (int i = 0; i < P_NP; i++) pf[i] = c.p[i].f, pg[i] = c.p[i].g;
    encoder_layer y = {pf[0], pf[1], pf[2], pf[3], pf[4], pf[5], pf[6], pf[7], pf[8], pf[9], pf[10], pf[11], pf[12], pf[13], pf[14], pf[15]};
    encoder_layer g = {pg[0], pg[1], pg[2], pg[3], pg[4], pg[5], pg[6], pg[7], pg[8], pg[9], pg[10], pg[11], pg[12], pg[13], pg[14], pg[15]};
    encoder_scratch s;
    encoder_scratch_alloc(&s, &c.sh);
    float *x = sl_alloc_f32((int64_t)M * D);
    memcpy(x, c.p[P_X].f, sizeof(float) * M * D);
    encoder_layer_forward(x, &y, &c.sh, &s);
    // the forward against the reference: Σ out·R
    double l = layer_loss(&c), lf = 0;
    for (int i = 0; i < M * D; i++) lf += (double)x[i] * c.R[i];
    CHECK_MSG(fabs(l - lf) < 1e-4 * (fabs(l) > 1 ? fabs(l) : 1), "%s forward: %.9g vs reference %.9g", what, lf, l);
    // the backward turns the output's gradient R into the input's; stored with GRAD_BASE as the others
    float *d = sl_alloc_f32((int64_t)M * D), *dx = c.p[P_X].g;
    for (int i = 0; i < M * D; i++) d[i] = Rf[i];
    encoder_layer_backward(d, &g, &y, &c.sh, &s);
    for (int i = 0; i < M * D; i++) dx[i] = GRAD_BASE + d[i];
    // k's bias has a zero gradient (softmax is shift invariant per query): checked as such
    c.p[P_KB].frozen = 1;
    double kb = 0;
    for (int i = 0; i < D; i++) kb = fmax(kb, fabs(c.p[P_KB].g[i] - GRAD_BASE));
    CHECK_MSG(kb < 1e-5, "%s k.b: |grad| %.3g, expected 0", what, kb);
    fd_check_all(what, layer_loss, &c, c.p, P_NP, 1e-4);
    encoder_scratch_free(&s);
    for (int i = 0; i < P_NP; i++) tp_free(&c.p[i], 1);
    sl_free_aligned(x), sl_free_aligned(d);
    free(Rf), free(c.R);
}

TEST(encoder_layer_backward_causal_quick_gelu) { layer_fd_case("text layer", ENCODER_ACT_QUICK_GELU, 1); }
TEST(encoder_layer_backward_bidirectional_gelu) { layer_fd_case("vit layer", ENCODER_ACT_GELU, 0); }

// ---------------------------------------------------------------- the whole text encoder

static int fill_visitor(void *ctx, const param_desc *p) {
    uint64_t *seed = ctx;
    int64_t n = shape_numel(p->ndim, p->shape);
    *p->slot = sl_alloc_f32(n);
    float lo = p->kind == PARAM_NORM_WEIGHT ? 0.6f : -0.4f, hi = p->kind == PARAM_NORM_WEIGHT ? 1.4f : 0.4f;
    fill_uniform(*p->slot, (size_t)n, (*seed)++, lo, hi);
    return 0;
}

typedef struct {
    const clip_text_model *m;
    const int32_t *ids;
    int N, L;
    const float *R;
} text_io;

static double text_loss(void *ctx) {
    const text_io *io = ctx;
    int64_t n = (int64_t)io->N * io->L * io->m->cfg.hidden;
    float *out = sl_alloc_f32(n);
    clip_text_forward(io->m, io->ids, io->N, io->L, io->m->cfg.layers, out, NULL);
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)out[i] * io->R[i];
    sl_free_aligned(out);
    return s;
}

TEST(clip_text_backward_directional) {
    clip_text_config c = {.hidden = 12, .layers = 2, .heads = 3, .intermediate = 20, .max_pos = 9, .vocab = 40,
                          .eps = 1e-5f, .act = CLIP_ACT_QUICK_GELU, .eos_id = 39};
    clip_text_model *m = clip_text_model_new(&c);
    uint64_t seed = 500;
    clip_text_walk(m, fill_visitor, &seed);
    clip_text_model *g = clip_text_grads_new(m);
    const int N = 3, L = 7, D = c.hidden;
    // ids 1..12 and the EOS as padding: rows 13..38 of the token table are never used
    int32_t ids[3 * 7] = {1, 5, 9, 39, 39, 39, 39, 1, 2, 3, 4, 5, 6, 39, 1, 12, 7, 7, 39, 39, 39};
    int64_t n = (int64_t)N * L * D;
    float *R = rand_f32(n, 510, -1, 1), *out = sl_alloc_f32(n), *ref = sl_alloc_f32(n);
    clip_text_tape *t = clip_text_forward_train(m, ids, N, L, out);
    REQUIRE(t);
    clip_text_forward(m, ids, N, L, c.layers, ref, NULL);
    CHECK(memcmp(out, ref, sizeof(float) * n) == 0);   // training forward == inference forward
    clip_text_backward(g, R, t);
    clip_text_tape_free(t);
    text_io io = {m, ids, N, L, R};
    param_list pm = {0}, pg = {0};
    clip_text_walk(m, param_list_visitor, &pm);
    clip_text_walk(g, param_list_visitor, &pg);
    REQUIRE(pm.n == pg.n && pm.n == 2 + 16 * c.layers + 2);
    double worst = 0, sum = 0;
    const char *worst_name = "";
    for (int i = 0; i < pm.n; i++) {
        if (strstr(pm.e[i].name, "k_proj.bias")) {   // zero gradient: softmax is shift invariant per query
            double mx = 0;
            for (int64_t k = 0; k < pg.e[i].n; k++) mx = fmax(mx, fabs(pg.e[i].p[k]));
            CHECK_MSG(mx < 1e-5, "%s: |grad| %.3g, expected 0", pm.e[i].name, mx);
            continue;
        }
        double rel = directional_fd(text_loss, &io, pm.e[i].p, pg.e[i].p, pm.e[i].n, 600 + i);
        CHECK_MSG(rel < 2e-2, "%s: directional derivative rel err %.3g", pm.e[i].name, rel);
        sum += rel;
        if (rel > worst) worst = rel, worst_name = pm.e[i].name;
    }
    // token rows: nonzero exactly for the ids used
    const float *gt = g->tok_emb;
    for (int r = 0; r < c.vocab; r++) {
        int used = 0;
        for (int i = 0; i < N * L; i++) used |= ids[i] == r;
        double mx = 0;
        for (int k = 0; k < D; k++) mx = fmax(mx, fabs(gt[r * D + k]));
        CHECK_MSG(used ? mx > 0 : mx == 0, "token row %d: used %d, max |grad| %.3g", r, used, mx);
    }
    fprintf(stderr, "    text encoder: %d tensors, directional rel err mean %.2g, worst %.2g (%s)\n", pm.n,
            sum / pm.n, worst, worst_name);
    param_list_free(&pm), param_list_free(&pg);
    free(R);
    sl_free_aligned(out), sl_free_aligned(ref);
    clip_text_free(g), clip_text_free(m);
}
