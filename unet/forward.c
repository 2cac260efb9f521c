// The UNet forward: time embedding, conv_in, then the layers as a sequence of ops (down path
// collecting skips, mid block, up path consuming them), then the output head. One code path
// serves inference (buffers freed as soon as nothing reads them, so the largest live set is the
// skips plus a few (N, C, h, w) activations) and training (everything backward needs is kept
// in a tape, see unet/backward.c).
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/activations.h"
#include "engine/kernels/conv2d.h"
#include "engine/core/error.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/norm.h"
#include "engine/kernels/resample.h"
#include "engine/core/tensor.h"
#include "engine/kernels/timestep.h"
#include "unet/internal.h"
#include "unet/unet.h"

static void trace4(const unet_trace *t, const float *d, int64_t N, int64_t C, int64_t H, int64_t W, const char *fmt,
                   ...) __attribute__((format(printf, 7, 8)));
static void trace4(const unet_trace *t, const float *d, int64_t N, int64_t C, int64_t H, int64_t W, const char *fmt,
                   ...) {
    if (!t || !t->fn) return;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    int64_t shape[4] = {N, C, H, W};
    t->fn(t->ctx, name, d, W ? 4 : 2, shape);
}

void unet_concat_channels(float *out, const float *a, int Ca, const float *b, int Cb, int N, int HW) {
    for (int n = 0; n < N; n++) {
        memcpy(out + (int64_t)n * (Ca + Cb) * HW, a + (int64_t)n * Ca * HW, sizeof(float) * (size_t)Ca * HW);
        memcpy(out + ((int64_t)n * (Ca + Cb) + Ca) * HW, b + (int64_t)n * Cb * HW, sizeof(float) * (size_t)Cb * HW);
    }
}

// For sizes that are not multiples of 2^(levels-1), diffusers interpolates to the size of the
// skip the next block takes, which equals the top-left crop of the 2× upsample.
void unet_upsample_to(float *out, const float *x, int N, int C, int H, int W, int Ho, int Wo) {
    if (Ho == 2 * H && Wo == 2 * W) {
        upsample_nearest2x_forward(out, x, N, C, H, W);
        return;
    }
    float *u = sl_alloc_f32((int64_t)N * C * 4 * H * W);
    upsample_nearest2x_forward(u, x, N, C, H, W);
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < (int64_t)N * C; nc++)
        for (int y = 0; y < Ho; y++)
            memcpy(out + (nc * Ho + y) * Wo, u + (nc * 2 * H + y) * 2 * W, sizeof(float) * (size_t)Wo);
    sl_free_aligned(u);
}

// ---------------------------------------------------------------- the op sequence

const char *unet_op_module(const unet_op *op, char *buf, size_t len) {
    static const char *const layer[] = {"resnets", "attentions", "downsamplers", "upsamplers"};
    if (op->part == 1) snprintf(buf, len, "mid_block.%s.%d", layer[op->kind], op->j);
    else snprintf(buf, len, "%s_blocks.%d.%s.%d", op->part ? "up" : "down", op->i, layer[op->kind], op->j);
    return buf;
}

static unet_op *add_op(unet_tape *T, unet_op_kind kind, int part, int i, int j, int C_in, int C_out, int H, int W,
                       int Ho, int Wo) {
    unet_op *op = &T->ops[T->n_ops++];
    *op = (unet_op){.kind = kind, .part = part, .i = i, .j = j, .C_in = C_in, .C_out = C_out, .H = H, .W = W,
                    .Ho = Ho, .Wo = Wo, .skip = -1, .out_skip = -1};
    return op;
}

// Lays out the ops for an h×w latent: channels, sizes, and which outputs are skips.
static void plan_ops(unet_tape *T, const unet_model *m, int h, int w) {
    const unet_config *c = &m->cfg;
    int C = c->block_out_channels[0], H = h, W = w;
    int sC[UNET_MAX_SKIPS], sH[UNET_MAX_SKIPS], sW[UNET_MAX_SKIPS], ns = 0;   // the skip stack's sizes
    sC[ns] = C, sH[ns] = H, sW[ns++] = W;                                       // skip 0: conv_in's output
    for (int i = 0; i < c->n_levels; i++) {
        const unet_block *b = &m->down[i];
        for (int j = 0; j < b->n_res; j++) {
            unet_op *op = add_op(T, OP_RESNET, 0, i, j, C, b->res[j].C_out, H, W, H, W);
            C = b->res[j].C_out;
            if (b->has_attn) op = add_op(T, OP_TRANSFORMER, 0, i, j, C, C, H, W, H, W);
            op->out_skip = ns;
            sC[ns] = C, sH[ns] = H, sW[ns++] = W;
        }
        if (b->has_resample) {   // stride 2, padding 1: ceil(H / 2)
            unet_op *op = add_op(T, OP_DOWNSAMPLE, 0, i, 0, C, C, H, W, (H + 1) / 2, (W + 1) / 2);
            H = op->Ho, W = op->Wo;
            op->out_skip = ns;
            sC[ns] = C, sH[ns] = H, sW[ns++] = W;
        }
    }
    add_op(T, OP_RESNET, 1, 0, 0, C, C, H, W, H, W);
    add_op(T, OP_TRANSFORMER, 1, 0, 0, C, C, H, W, H, W);
    add_op(T, OP_RESNET, 1, 0, 1, C, C, H, W, H, W);
    for (int i = 0; i < c->n_levels; i++) {
        const unet_block *b = &m->up[i];
        for (int j = 0; j < b->n_res; j++) {   // each resnet takes [h, skip] along channels
            unet_op *op = add_op(T, OP_RESNET, 2, i, j, C, b->res[j].C_out, H, W, H, W);
            op->skip = --ns;
            op->Cs = sC[ns];
            C = b->res[j].C_out;
            if (b->has_attn) add_op(T, OP_TRANSFORMER, 2, i, j, C, C, H, W, H, W);
        }
        if (b->has_resample) {   // nearest 2× to the size of the skip the next block takes
            unet_op *op = add_op(T, OP_UPSAMPLE, 2, i, 0, C, C, H, W, sH[ns - 1], sW[ns - 1]);
            H = op->Ho, W = op->Wo;
        }
    }
    T->n_skips = 0;
}

void unet_op_forward(unet_op *op, const unet_model *m, const float *in, const float *skip, const float *temb_silu,
                     const float *ctx, const unet_adapt *ua, int N, int L, int keep, const unet_trace *trace) {
    op->out = sl_alloc_f32((int64_t)N * op->C_out * op->Ho * op->Wo);
    switch (op->kind) {
    case OP_RESNET: {
        resnet_block merged;
        const resnet_block *rb0 = unet_op_resnet(m, op);
        const resnet_block *rb = unet_resnet_merged(&merged, rb0, unet_op_resnet_adapters(m, op), ua);
        const float *x = in;
        float *cat = NULL;
        if (skip) {
            cat = sl_alloc_f32((int64_t)N * (op->C_in + op->Cs) * op->H * op->W);
            unet_concat_channels(cat, in, op->C_in, skip, op->Cs, N, op->H * op->W);
            x = cat;
        }
        if (keep != UNET_KEEP_NONE) resnet_forward_train(op->out, x, temb_silu, rb, N, op->H, op->W, &op->ra);
        else resnet_forward(op->out, x, temb_silu, rb, N, op->H, op->W);
        sl_free_aligned(cat);
        if (rb != rb0) unet_resnet_merged_free(&merged, rb0);
        break;
    }
    case OP_TRANSFORMER: {
        char name[64];
        unet_op_module(op, name, sizeof name);
        const unet_transformer *tr = unet_op_transformer(m, op);
        if (keep == UNET_KEEP_CHECKPOINT) transformer_forward_checkpoint(op->out, in, ctx, tr, ua, N, op->H, op->W, L, &op->ta);
        else transformer_forward(op->out, in, ctx, tr, ua, N, op->H, op->W, L, keep ? &op->ta : NULL, trace, name);
        break;
    }
    case OP_DOWNSAMPLE: {
        const unet_block *b = unet_op_block(m, op);
        float *wm = unet_conv_weight(b->resample_w, b->resample_ad, ua, op->C_in * 9, op->C_out);
        conv2d_forward(op->out, in, wm ? wm : b->resample_w, b->resample_b,
                       (conv2d_shape){N, op->C_in, op->H, op->W, op->C_out, 3, 2, 1});
        sl_free_aligned(wm);
        break;
    }
    case OP_UPSAMPLE: {
        const unet_block *b = unet_op_block(m, op);
        float *u = sl_alloc_f32((int64_t)N * op->C_in * op->Ho * op->Wo);
        unet_upsample_to(u, in, N, op->C_in, op->H, op->W, op->Ho, op->Wo);
        float *wm = unet_conv_weight(b->resample_w, b->resample_ad, ua, op->C_in * 9, op->C_out);
        conv2d_forward(op->out, u, wm ? wm : b->resample_w, b->resample_b,
                       (conv2d_shape){N, op->C_in, op->Ho, op->Wo, op->C_out, 3, 1, 1});
        sl_free_aligned(wm);
        sl_free_aligned(u);
        break;
    }
    }
}

// ---------------------------------------------------------------- the forward

static const char *PART[] = {"down_blocks", "mid_block", "up_blocks"};

// tp == NULL: inference. Otherwise tp (zeroed, with checkpoint set) receives the tape.
static int unet_run(float *out, const float *x, const float *t, const float *context, int N, int h, int w, int L,
                    const unet_model *m, const unet_trace *trace, unet_tape *tp) {
    const unet_config *c = &m->cfg;
    const int C0 = c->block_out_channels[0], T = c->time_embed_dim;
    if (N < 1 || L < 1 || h < 1 || w < 1) return sl_error(NULL, "UNet input: empty batch, context or latent");
    if ((int64_t)N * h * w > (1 << 30) / 8 || (int64_t)N * L > (1 << 24))
        return sl_error(NULL, "UNet input: batch %d × %d×%d latents or %d context tokens is too large", N, h, w, L);
    const int infer = tp == NULL;
    const int keep = !tp ? UNET_KEEP_NONE : tp->checkpoint ? UNET_KEEP_CHECKPOINT : UNET_KEEP_ALL;
    unet_tape *tape = tp ? tp : sl_calloc(1, sizeof *tape);
    *tape = (unet_tape){.m = m, .N = N, .h = h, .w = w, .L = L, .checkpoint = tape->checkpoint,
                        .ua = unet_adapter_state(m), .x = x, .t = t, .ctx = context};

    // time embedding: temb_silu (N, T) = SiLU(linear_2(SiLU(linear_1(sinusoids(t)))))
    float *tproj = sl_alloc_f32((int64_t)N * C0);
    timestep_embedding(tproj, t, N, C0, c->flip_sin_to_cos, c->freq_shift);
    trace4(trace, tproj, N, C0, 0, 0, "time_proj");
    float *e1 = sl_alloc_f32((int64_t)N * T), *s1 = sl_alloc_f32((int64_t)N * T);
    linear_forward(e1, tproj, m->time_w1, m->time_b1, N, C0, T);
    silu_forward(s1, e1, (int64_t)N * T);
    float *temb = sl_alloc_f32((int64_t)N * T), *temb_silu = sl_alloc_f32((int64_t)N * T);
    linear_forward(temb, s1, m->time_w2, m->time_b2, N, T, T);
    trace4(trace, temb, N, T, 0, 0, "time_embedding");
    silu_forward(temb_silu, temb, (int64_t)N * T);   // every resnet applies SiLU before its projection
    sl_free_aligned(s1);
    tape->tp = tproj, tape->e1 = e1, tape->temb = temb, tape->temb_silu = temb_silu;

    // conv_in
    const float *xin = x;
    if (c->center_input_sample) {
        int64_t n = (int64_t)N * c->in_channels * h * w;
        tape->xin = sl_alloc_f32(n);
        for (int64_t i = 0; i < n; i++) tape->xin[i] = 2.0f * x[i] - 1.0f;
        xin = tape->xin;
    }
    tape->c0 = sl_alloc_f32((int64_t)N * C0 * h * w);
    conv2d_forward(tape->c0, xin, m->conv_in_w, m->conv_in_b,
                   (conv2d_shape){N, c->in_channels, h, w, C0, c->conv_in_kernel, 1, c->conv_in_kernel / 2});
    if (infer) {
        sl_free_aligned(tape->xin);
        tape->xin = NULL;
    }
    trace4(trace, tape->c0, N, C0, h, w, "conv_in");

    // the layers; skip k is the output of the op with out_skip == k (skip 0: conv_in's)
    plan_ops(tape, m, h, w);
    int skip_owner[UNET_MAX_SKIPS];
    tape->skips[0] = tape->c0;
    skip_owner[0] = -1;
    const float *cur = tape->c0;
    for (int k = 0; k < tape->n_ops; k++) {
        unet_op *op = &tape->ops[k];
        const float *skip = op->skip >= 0 ? tape->skips[op->skip] : NULL;
        unet_op_forward(op, m, cur, skip, temb_silu, context, &tape->ua, N, L, keep, trace);
        if (op->out_skip >= 0) {
            tape->skips[op->out_skip] = op->out;
            skip_owner[op->out_skip] = k;
        }
        if (op->kind == OP_RESNET && op->part != 1)
            trace4(trace, op->out, N, op->C_out, op->Ho, op->Wo, "%s.%d.resnets.%d", PART[op->part], op->i, op->j);
        if (k == tape->n_ops - 1 || tape->ops[k + 1].part != op->part || tape->ops[k + 1].i != op->i) {
            if (op->part == 1) trace4(trace, op->out, N, op->C_out, op->Ho, op->Wo, "mid_block");
            else trace4(trace, op->out, N, op->C_out, op->Ho, op->Wo, "%s.%d", PART[op->part], op->i);
        }
        if (infer) {   // the input is dead unless it is a skip; a consumed skip is dead
            if (k > 0 && tape->ops[k - 1].out_skip < 0) {
                sl_free_aligned(tape->ops[k - 1].out);
                tape->ops[k - 1].out = NULL;
            }
            if (skip) {
                int o = skip_owner[op->skip];
                sl_free_aligned(tape->skips[op->skip]);
                tape->skips[op->skip] = NULL;
                if (o >= 0) tape->ops[o].out = NULL;
                else tape->c0 = NULL;
            }
        }
        cur = op->out;
    }

    // output head: conv_out(SiLU(GroupNorm(h)))
    const int64_t n0 = (int64_t)N * C0 * h * w;
    float *g = sl_alloc_f32(n0);
    if (trace && trace->fn) {   // the trace wants the GroupNorm output before the SiLU
        groupnorm_forward(g, NULL, NULL, cur, m->norm_out_w, m->norm_out_b, N, C0, h * w, c->norm_num_groups, c->norm_eps, 0);
        trace4(trace, g, N, C0, h, w, "conv_norm_out");
        silu_forward(g, g, n0);
    } else {
        groupnorm_forward(g, NULL, NULL, cur, m->norm_out_w, m->norm_out_b, N, C0, h * w, c->norm_num_groups, c->norm_eps, 1);
    }
    conv2d_forward(out, g, m->conv_out_w, m->conv_out_b,
                   (conv2d_shape){N, C0, h, w, c->out_channels, c->conv_out_kernel, 1, c->conv_out_kernel / 2});
    sl_free_aligned(g);
    trace4(trace, out, N, c->out_channels, h, w, "conv_out");
    if (infer) unet_tape_free(tape);
    return 0;
}

int unet_forward(float *out, const float *x, const float *t, const float *context, int N, int h, int w, int L,
                 const unet_model *m, const unet_trace *trace) {
    return unet_run(out, x, t, context, N, h, w, L, m, trace, NULL);
}

unet_tape *unet_forward_train(float *out, const float *x, const float *t, const float *context, int N, int h, int w,
                              int L, const unet_model *m, int checkpoint) {
    unet_tape *tape = sl_calloc(1, sizeof *tape);
    tape->checkpoint = checkpoint != 0;
    if (unet_run(out, x, t, context, N, h, w, L, m, NULL, tape) != 0) {
        free(tape);
        return NULL;
    }
    return tape;
}

void unet_tape_free(unet_tape *T) {
    if (!T) return;
    for (int k = 0; k < T->n_ops; k++) {
        sl_free_aligned(T->ops[k].out);
        resnet_acts_free(&T->ops[k].ra);
        transformer_acts_free(&T->ops[k].ta);
    }
    float *bufs[] = {T->xin, T->tp, T->e1, T->temb, T->temb_silu, T->c0};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) sl_free_aligned(bufs[i]);
    free(T);
}
