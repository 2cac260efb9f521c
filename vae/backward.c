// VAE backward: each layer's forward/backward pair on plain arrays, and a tape of ops (each keeps
// its input; the backward walks them in reverse, recomputing cheap intermediates from the input)
// for the encoder and the decoder.
#include "vae/backward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/kernels/attention.h"
#include "engine/kernels/conv2d.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/norm.h"
#include "engine/kernels/resample.h"
#include "vae/forward.h"

#define G(p, f) ((p) ? (p)->f : NULL)

// ---------------------------------------------------------------- pieces

void vae_conv_forward(float *out, const float *x, const vae_conv *cv, int N, int H, int W) {
    conv2d_forward(out, x, cv->w, cv->b, (conv2d_shape){N, cv->C_in, H, W, cv->C_out, cv->k, 1, cv->k / 2});
}

void vae_conv_backward(float *dx, vae_conv *g, const float *dout, const float *x, const vae_conv *cv, int N, int H,
                       int W) {
    conv2d_backward(dx, G(g, w), G(g, b), dout, x, cv->w, (conv2d_shape){N, cv->C_in, H, W, cv->C_out, cv->k, 1, cv->k / 2});
}

// p (N, C, H+1, W+1) = x zero-padded right and bottom by one
static float *pad_rb(const float *x, int N, int C, int H, int W) {
    int Hp = H + 1, Wp = W + 1;
    float *p = sl_alloc_f32((int64_t)N * C * Hp * Wp);
#pragma omp parallel for schedule(static)
    for (int nc = 0; nc < N * C; nc++) {
        const float *src = x + (int64_t)nc * H * W;
        float *dst = p + (int64_t)nc * Hp * Wp;
        for (int y = 0; y < H; y++) {
            memcpy(dst + (int64_t)y * Wp, src + (int64_t)y * W, sizeof(float) * W);
            dst[(int64_t)y * Wp + W] = 0.0f;
        }
        memset(dst + (int64_t)H * Wp, 0, sizeof(float) * Wp);
    }
    return p;
}

void vae_down_forward(float *out, const float *x, const vae_conv *cv, int N, int H, int W, int *Ho, int *Wo) {
    float *p = pad_rb(x, N, cv->C_in, H, W);
    conv2d_shape s = {N, cv->C_in, H + 1, W + 1, cv->C_out, 3, 2, 0};
    conv2d_forward(out, p, cv->w, cv->b, s);
    if (Ho) *Ho = conv2d_out_h(s);
    if (Wo) *Wo = conv2d_out_w(s);
    sl_free_aligned(p);
}

void vae_down_backward(float *dx, vae_conv *g, const float *dout, const float *x, const vae_conv *cv, int N, int H,
                       int W) {
    int C = cv->C_in, Hp = H + 1, Wp = W + 1;
    float *p = pad_rb(x, N, C, H, W);
    float *dp = dx ? sl_zeros_f32((int64_t)N * C * Hp * Wp) : NULL;
    conv2d_backward(dp, G(g, w), G(g, b), dout, p, cv->w, (conv2d_shape){N, C, Hp, Wp, cv->C_out, 3, 2, 0});
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int nc = 0; nc < N * C; nc++)
            for (int y = 0; y < H; y++)
                for (int xx = 0; xx < W; xx++)
                    dx[(int64_t)nc * H * W + (int64_t)y * W + xx] += dp[(int64_t)nc * Hp * Wp + (int64_t)y * Wp + xx];
    }
    sl_free_aligned(p);
    sl_free_aligned(dp);
}

void vae_up_forward(float *out, const float *x, const vae_conv *cv, int N, int H, int W) {
    float *u = sl_alloc_f32((int64_t)N * cv->C_in * 4 * H * W);
    upsample_nearest2x_forward(u, x, N, cv->C_in, H, W);
    conv2d_forward(out, u, cv->w, cv->b, (conv2d_shape){N, cv->C_in, 2 * H, 2 * W, cv->C_out, 3, 1, 1});
    sl_free_aligned(u);
}

void vae_up_backward(float *dx, vae_conv *g, const float *dout, const float *x, const vae_conv *cv, int N, int H,
                     int W) {
    int C = cv->C_in;
    int64_t nu = (int64_t)N * C * 4 * H * W;
    float *u = sl_alloc_f32(nu), *du = dx ? sl_zeros_f32(nu) : NULL;
    upsample_nearest2x_forward(u, x, N, C, H, W);
    conv2d_backward(du, G(g, w), G(g, b), dout, u, cv->w, (conv2d_shape){N, C, 2 * H, 2 * W, cv->C_out, 3, 1, 1});
    if (dx) upsample_nearest2x_backward(dx, du, N, C, H, W);
    sl_free_aligned(u);
    sl_free_aligned(du);
}

// (N, A, B) -> (N, B, A)
static void transpose_batched(float *out, const float *x, int N, int A, int B) {
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int a = 0; a < A; a++) {
            const float *xa = x + ((int64_t)n * A + a) * B;
            float *on = out + (int64_t)n * A * B;
            for (int b = 0; b < B; b++) on[(int64_t)b * A + a] = xa[b];
        }
}

void vae_attn_backward(float *dx, vae_attn *g, const float *dout, const float *x, const vae_attn *a, int N, int HW) {
    const int C = a->C;
    const int64_t n = (int64_t)N * C * HW;
    const int M = N * HW;
    const float scale = 1.0f / sqrtf((float)C);
    // recompute the forward's intermediates (the same calls as vae_attn_forward)
    float *gn = sl_alloc_f32(n), *tok = sl_alloc_f32(n);
    float *mean = sl_alloc_f32((int64_t)N * a->groups), *rstd = sl_alloc_f32((int64_t)N * a->groups);
    groupnorm_forward(gn, mean, rstd, x, a->norm_w, a->norm_b, N, C, HW, a->groups, a->eps, 0);
    transpose_batched(tok, gn, N, C, HW);   // (N, HW, C)
    float *q = sl_alloc_f32(n), *k = sl_alloc_f32(n), *v = sl_alloc_f32(n), *o = sl_alloc_f32(n);
    linear_forward(q, tok, a->q_w, a->q_b, M, C, C);
    linear_forward(k, tok, a->k_w, a->k_b, M, C, C);
    linear_forward(v, tok, a->v_w, a->v_b, M, C, C);
    attention_forward(o, q, k, v, N, HW, HW, 1, C, scale, 0);

    // out = x + transpose(o·Woᵀ + bo)
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) dx[i] += dout[i];
    }
    float *dy = sl_alloc_f32(n);   // (N, HW, C)
    transpose_batched(dy, dout, N, C, HW);
    float *d_o = sl_zeros_f32(n);
    linear_backward(d_o, G(g, o_w), G(g, o_b), dy, o, a->o_w, M, C, C);
    float *dq = sl_zeros_f32(n), *dk = sl_zeros_f32(n), *dv = sl_zeros_f32(n);
    attention_backward(dq, dk, dv, d_o, q, k, v, N, HW, HW, 1, C, scale, 0);
    float *dtok = d_o;   // reuse (N, HW, C)
    memset(dtok, 0, sizeof(float) * (size_t)n);
    int need_dtok = dx || G(g, norm_w) || G(g, norm_b);
    linear_backward(need_dtok ? dtok : NULL, G(g, q_w), G(g, q_b), dq, tok, a->q_w, M, C, C);
    linear_backward(need_dtok ? dtok : NULL, G(g, k_w), G(g, k_b), dk, tok, a->k_w, M, C, C);
    linear_backward(need_dtok ? dtok : NULL, G(g, v_w), G(g, v_b), dv, tok, a->v_w, M, C, C);
    if (need_dtok) {
        float *dgn = dy;   // reuse: (N, C, HW)
        transpose_batched(dgn, dtok, N, HW, C);
        groupnorm_backward(dx, G(g, norm_w), G(g, norm_b), dgn, x, mean, rstd, a->norm_w, N, C, HW, a->groups);
    }
    sl_free_aligned(gn), sl_free_aligned(tok), sl_free_aligned(mean), sl_free_aligned(rstd);
    sl_free_aligned(q), sl_free_aligned(k), sl_free_aligned(v), sl_free_aligned(o);
    sl_free_aligned(dy), sl_free_aligned(d_o), sl_free_aligned(dq), sl_free_aligned(dk), sl_free_aligned(dv);
}

void vae_head_forward(float *out, const float *x, const vae_coder *cd, const vae_config *c, int N, int H, int W) {
    int C = cd->conv_out.C_in;
    float *a = sl_alloc_f32((int64_t)N * C * H * W);
    groupnorm_forward(a, NULL, NULL, x, cd->norm_out_w, cd->norm_out_b, N, C, H * W, c->groups, c->eps, 1);
    vae_conv_forward(out, a, &cd->conv_out, N, H, W);
    sl_free_aligned(a);
}

void vae_head_backward(float *dx, vae_coder *g, const float *dout, const float *x, const vae_coder *cd,
                       const vae_config *c, int N, int H, int W) {
    int C = cd->conv_out.C_in;
    int64_t n = (int64_t)N * C * H * W;
    float *a = sl_alloc_f32(n);
    groupnorm_forward(a, NULL, NULL, x, cd->norm_out_w, cd->norm_out_b, N, C, H * W, c->groups, c->eps, 1);
    int need = dx || G(g, norm_out_w) || G(g, norm_out_b);
    float *da = need ? sl_zeros_f32(n) : NULL;
    vae_conv_backward(da, g ? &g->conv_out : NULL, dout, a, &cd->conv_out, N, H, W);
    if (need)
        groupnorm_silu_backward(dx, G(g, norm_out_w), G(g, norm_out_b), da, x, cd->norm_out_w, cd->norm_out_b, N, C,
                                H * W, c->groups, c->eps);
    sl_free_aligned(a);
    sl_free_aligned(da);
}

// ---------------------------------------------------------------- posterior

double vae_posterior_backward(const vae_config *c, float *dmoments, const float *dsample, const float *moments,
                              const float *eps, int N, int h, int w, double kl_weight, double kl_norm) {
    const int L = c->latent_channels;
    const int64_t per = (int64_t)L * h * w;
    double kl = 0.0;
    const double kw = kl_norm > 0 ? kl_weight / kl_norm : 0.0;
    for (int n = 0; n < N; n++) {
        const float *mu = moments + (int64_t)n * 2 * per, *lv = mu + per;
        float *dmu = dmoments + (int64_t)n * 2 * per, *dlv = dmu + per;
        for (int64_t i = 0; i < per; i++) {
            int inside = lv[i] >= -30.0f && lv[i] <= 20.0f;
            double l = lv[i] < -30.0f ? -30.0 : lv[i] > 20.0f ? 20.0 : lv[i];
            double var = exp(l), sd = exp(0.5 * l);
            kl += 0.5 * ((double)mu[i] * mu[i] + var - 1.0 - l);
            double gmu = kw * mu[i], glv = kw * 0.5 * (var - 1.0);
            if (dsample) {
                double ds = dsample[n * per + i];
                gmu += ds;
                if (eps) glv += ds * 0.5 * sd * eps[n * per + i];
            }
            dmu[i] += (float)gmu;
            if (inside) dlv[i] += (float)glv;
        }
    }
    return kl_norm > 0 ? kl / kl_norm : kl;
}

// ---------------------------------------------------------------- gradient mirrors

static int zero_alloc_visitor(void *ctx, const param_desc *p) {
    (void)ctx;
    *p->slot = sl_zeros_f32(shape_numel(p->ndim, p->shape));
    return 0;
}

static int zero_visitor(void *ctx, const param_desc *p) {
    (void)ctx;
    if (*p->slot) memset(*p->slot, 0, sizeof(float) * (size_t)shape_numel(p->ndim, p->shape));
    return 0;
}

vae_model *vae_grads_new(const vae_model *m) {
    vae_model *g = sl_calloc(1, sizeof *g);
    g->cfg = m->cfg;
    g->parts = m->parts;
    vae_walk(g, g->parts, zero_alloc_visitor, NULL);
    return g;
}

void vae_grads_zero(vae_model *g) { vae_walk(g, g->parts, zero_visitor, NULL); }

// ---------------------------------------------------------------- the tape

typedef enum { OP_CONV, OP_DOWN, OP_UP, OP_RESNET, OP_ATTN, OP_HEAD } op_kind;

typedef struct {
    op_kind kind;
    int C, H, W;                 // input (N, C, H, W)
    int Co, Ho, Wo;              // output
    const void *layer;           // vae_conv / resnet_block / vae_attn / vae_coder of the model
    void *grad;                  // the same in the mirror, or NULL
    float *in;                   // the kept input (owned; NULL for the first op: borrowed input)
    resnet_acts acts;
} vae_op;

struct vae_tape {
    const vae_config *cfg;
    int N, n_ops, cap, used;
    const float *input;          // borrowed: the first op's input
    vae_op *ops;
};

static vae_op *push(vae_tape *t, op_kind kind, const void *layer, void *grad) {
    if (t->n_ops == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 32;
        t->ops = sl_realloc(t->ops, sizeof *t->ops * (size_t)t->cap);
    }
    vae_op *op = &t->ops[t->n_ops++];
    memset(op, 0, sizeof *op);
    op->kind = kind, op->layer = layer, op->grad = grad;
    return op;
}

// Runs op on x (N, C, H, W) (kept as the op's input), returning the new output buffer.
static float *run_op(vae_tape *t, vae_op *op, float *x, int C, int H, int W) {
    const int N = t->N;
    op->C = C, op->H = H, op->W = W, op->in = x;
    op->Ho = H, op->Wo = W;
    float *out = NULL;
    switch (op->kind) {
    case OP_CONV: {
        const vae_conv *cv = op->layer;
        op->Co = cv->C_out;
        out = sl_alloc_f32((int64_t)N * op->Co * H * W);
        vae_conv_forward(out, x, cv, N, H, W);
        break;
    }
    case OP_DOWN: {
        const vae_conv *cv = op->layer;
        op->Co = cv->C_out;
        op->Ho = (H + 1 - 3) / 2 + 1, op->Wo = (W + 1 - 3) / 2 + 1;
        out = sl_alloc_f32((int64_t)N * op->Co * op->Ho * op->Wo);
        vae_down_forward(out, x, cv, N, H, W, &op->Ho, &op->Wo);
        break;
    }
    case OP_UP: {
        const vae_conv *cv = op->layer;
        op->Co = cv->C_out, op->Ho = 2 * H, op->Wo = 2 * W;
        out = sl_alloc_f32((int64_t)N * op->Co * op->Ho * op->Wo);
        vae_up_forward(out, x, cv, N, H, W);
        break;
    }
    case OP_RESNET: {
        const resnet_block *rb = op->layer;
        op->Co = rb->C_out;
        out = sl_alloc_f32((int64_t)N * op->Co * H * W);
        resnet_forward_train(out, x, NULL, rb, N, H, W, &op->acts);
        break;
    }
    case OP_ATTN: {
        op->Co = C;
        int64_t n = (int64_t)N * C * H * W;
        out = sl_alloc_f32(n);
        memcpy(out, x, sizeof(float) * (size_t)n);
        vae_attn_forward(out, op->layer, N, H * W);
        break;
    }
    case OP_HEAD: {
        const vae_coder *cd = op->layer;
        op->Co = cd->conv_out.C_out;
        out = sl_alloc_f32((int64_t)N * op->Co * H * W);
        vae_head_forward(out, x, cd, t->cfg, N, H, W);
        break;
    }
    }
    return out;
}

static void op_backward(vae_tape *t, vae_op *op, float *dx, const float *dout) {
    const int N = t->N, H = op->H, W = op->W;
    const float *x = op->in ? op->in : t->input;
    switch (op->kind) {
    case OP_CONV: vae_conv_backward(dx, op->grad, dout, x, op->layer, N, H, W); break;
    case OP_DOWN: vae_down_backward(dx, op->grad, dout, x, op->layer, N, H, W); break;
    case OP_UP: vae_up_backward(dx, op->grad, dout, x, op->layer, N, H, W); break;
    case OP_RESNET: resnet_backward(dx, NULL, op->grad, dout, x, NULL, op->layer, &op->acts, N, H, W); break;
    case OP_ATTN: vae_attn_backward(dx, op->grad, dout, x, op->layer, N, H * W); break;
    case OP_HEAD: vae_head_backward(dx, op->grad, dout, x, op->layer, t->cfg, N, H, W); break;
    }
}

static vae_tape *tape_new(const vae_model *m, int N, const float *input) {
    vae_tape *t = sl_calloc(1, sizeof *t);
    t->cfg = &m->cfg, t->N = N, t->input = input;
    return t;
}

// Runs the recorded ops in order from the (borrowed) input; returns the last output.
static float *tape_run(vae_tape *t, int C, int H, int W, int *Co, int *Ho, int *Wo) {
    float *x = (float *)t->input;
    for (int i = 0; i < t->n_ops; i++) {
        vae_op *op = &t->ops[i];
        float *out = run_op(t, op, x, C, H, W);
        if (i == 0) op->in = NULL;   // borrowed
        x = out, C = op->Co, H = op->Ho, W = op->Wo;
    }
    *Co = C, *Ho = H, *Wo = W;
    return x;
}

#define GPTR(g, expr) ((g) ? &(g)->expr : NULL)

static void push_mid(vae_tape *t, const vae_coder *cd, vae_coder *gc, const vae_config *c) {
    push(t, OP_RESNET, &cd->mid_res[0], gc ? &gc->mid_res[0] : NULL);
    if (c->mid_attention) push(t, OP_ATTN, &cd->mid_attn, gc ? &gc->mid_attn : NULL);
    push(t, OP_RESNET, &cd->mid_res[1], gc ? &gc->mid_res[1] : NULL);
}

vae_tape *vae_encode_train(const vae_model *m, vae_model *g, float *moments, const float *image, int N, int H, int W) {
    const vae_config *c = &m->cfg;
    vae_tape *t = tape_new(m, N, image);
    const vae_coder *e = &m->enc;
    vae_coder *ge = g ? &g->enc : NULL;
    push(t, OP_CONV, &e->conv_in, GPTR(ge, conv_in));
    for (int i = 0; i < c->n_levels; i++) {
        const vae_level *lv = &e->levels[i];
        for (int j = 0; j < lv->n_resnets; j++) push(t, OP_RESNET, &lv->resnets[j], ge ? &ge->levels[i].resnets[j] : NULL);
        if (lv->resample) push(t, OP_DOWN, &lv->sample, GPTR(ge, levels[i].sample));
    }
    push_mid(t, e, ge, c);
    push(t, OP_HEAD, e, ge);
    if (c->quant_conv) push(t, OP_CONV, &m->quant, GPTR(g, quant));
    int Co, Ho, Wo;
    float *out = tape_run(t, c->in_channels, H, W, &Co, &Ho, &Wo);
    memcpy(moments, out, sizeof(float) * (size_t)N * Co * Ho * Wo);
    sl_free_aligned(out);
    return t;
}

vae_tape *vae_decode_train(const vae_model *m, vae_model *g, float *image, const float *latent, int N, int h, int w) {
    const vae_config *c = &m->cfg;
    vae_tape *t = tape_new(m, N, latent);
    const vae_coder *d = &m->dec;
    vae_coder *gd = g ? &g->dec : NULL;
    if (c->post_quant_conv) push(t, OP_CONV, &m->post_quant, GPTR(g, post_quant));
    push(t, OP_CONV, &d->conv_in, GPTR(gd, conv_in));
    push_mid(t, d, gd, c);
    for (int i = 0; i < c->n_levels; i++) {
        const vae_level *lv = &d->levels[i];
        for (int j = 0; j < lv->n_resnets; j++) push(t, OP_RESNET, &lv->resnets[j], gd ? &gd->levels[i].resnets[j] : NULL);
        if (lv->resample) push(t, OP_UP, &lv->sample, GPTR(gd, levels[i].sample));
    }
    push(t, OP_HEAD, d, gd);
    int Co, Ho, Wo;
    float *out = tape_run(t, c->latent_channels, h, w, &Co, &Ho, &Wo);
    memcpy(image, out, sizeof(float) * (size_t)N * Co * Ho * Wo);
    sl_free_aligned(out);
    return t;
}

int vae_tape_backward(vae_tape *t, float *dx, const float *dout) {
    if (t->used) return sl_error(NULL, "vae backward: this tape was already used");
    t->used = 1;
    const int N = t->N;
    const vae_op *last = &t->ops[t->n_ops - 1];
    int64_t nlast = (int64_t)N * last->Co * last->Ho * last->Wo;
    float *d = sl_alloc_f32(nlast);
    memcpy(d, dout, sizeof(float) * (size_t)nlast);
    for (int i = t->n_ops - 1; i >= 0; i--) {
        vae_op *op = &t->ops[i];
        float *din = i > 0 ? sl_zeros_f32((int64_t)N * op->C * op->H * op->W) : dx;
        op_backward(t, op, din, d);
        sl_free_aligned(d);
        d = i > 0 ? din : NULL;
        sl_free_aligned(op->in);
        op->in = NULL;
        resnet_acts_free(&op->acts);
    }
    return 0;
}

void vae_tape_free(vae_tape *t) {
    if (!t) return;
    for (int i = 0; i < t->n_ops; i++) {
        sl_free_aligned(t->ops[i].in);
        resnet_acts_free(&t->ops[i].acts);
    }
    free(t->ops);
    free(t);
}
