// The UNet forward: time embedding, down path collecting skips, mid block, up path consuming
// them, output head. Buffers are freed as soon as nothing reads them any more, so the largest
// live set is the skips plus a few (N, C, h, w) activations.
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/activations.h"
#include "engine/conv2d.h"
#include "engine/error.h"
#include "engine/linear.h"
#include "engine/norm.h"
#include "engine/resample.h"
#include "engine/tensor.h"
#include "engine/timestep.h"
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

// out (N, Ca+Cb, HW) = [a (N, Ca, HW), b (N, Cb, HW)] along channels
static void concat_channels(float *out, const float *a, int Ca, const float *b, int Cb, int N, int HW) {
    for (int n = 0; n < N; n++) {
        memcpy(out + (int64_t)n * (Ca + Cb) * HW, a + (int64_t)n * Ca * HW, sizeof(float) * (size_t)Ca * HW);
        memcpy(out + ((int64_t)n * (Ca + Cb) + Ca) * HW, b + (int64_t)n * Cb * HW, sizeof(float) * (size_t)Cb * HW);
    }
}

static float *conv(const float *x, const float *w, const float *b, int N, int C_in, int H, int W, int C_out, int k,
                   int stride) {
    conv2d_shape s = {.N = N, .C_in = C_in, .H = H, .W = W, .C_out = C_out, .k = k, .stride = stride, .pad = k / 2};
    float *out = sl_alloc_f32((int64_t)N * C_out * conv2d_out_h(s) * conv2d_out_w(s));
    conv2d_forward(out, x, w, b, s);
    return out;
}

// A stack of skip activations (the outputs of conv_in and every down layer) with their sizes.
typedef struct {
    float *data[3 * UNET_MAX_LEVELS + 2];
    int C[3 * UNET_MAX_LEVELS + 2], H[3 * UNET_MAX_LEVELS + 2], W[3 * UNET_MAX_LEVELS + 2];
    int n;
} skip_stack;

static void push(skip_stack *sk, float *d, int C, int H, int W) {
    sk->data[sk->n] = d;
    sk->C[sk->n] = C;
    sk->H[sk->n] = H;
    sk->W[sk->n++] = W;
}

// out (N, C, Ho, Wo) = the top-left Ho×Wo of x (N, C, H, W)
static void crop(float *out, const float *x, int N, int C, int H, int W, int Ho, int Wo) {
#pragma omp parallel for schedule(static)
    for (int64_t nc = 0; nc < (int64_t)N * C; nc++)
        for (int y = 0; y < Ho; y++) memcpy(out + (nc * Ho + y) * Wo, x + (nc * H + y) * W, sizeof(float) * (size_t)Wo);
}

int unet_forward(float *out, const float *x, const float *t, const float *context, int N, int h, int w, int L,
                 const unet_model *m, const unet_trace *trace) {
    const unet_config *c = &m->cfg;
    const int n_lv = c->n_levels, C0 = c->block_out_channels[0], T = c->time_embed_dim;
    if (N < 1 || L < 1 || h < 1 || w < 1) return sl_error(NULL, "UNet input: empty batch, context or latent");
    if ((int64_t)N * h * w > (1 << 30) / 8 || (int64_t)N * L > (1 << 24))
        return sl_error(NULL, "UNet input: batch %d × %d×%d latents or %d context tokens is too large", N, h, w, L);

    // time embedding: temb_silu (N, T) = SiLU(linear_2(SiLU(linear_1(sinusoids(t)))))
    float *tp = sl_alloc_f32((int64_t)N * C0);
    timestep_embedding(tp, t, N, C0, c->flip_sin_to_cos, c->freq_shift);
    trace4(trace, tp, N, C0, 0, 0, "time_proj");
    float *e1 = sl_alloc_f32((int64_t)N * T);
    linear_forward(e1, tp, m->time_w1, m->time_b1, N, C0, T);
    silu_forward(e1, e1, (int64_t)N * T);
    float *temb = sl_alloc_f32((int64_t)N * T);
    linear_forward(temb, e1, m->time_w2, m->time_b2, N, T, T);
    trace4(trace, temb, N, T, 0, 0, "time_embedding");
    silu_forward(temb, temb, (int64_t)N * T);   // every resnet applies SiLU before its projection
    sl_free_aligned(tp);
    sl_free_aligned(e1);

    // conv_in
    const float *xin = x;
    float *centered = NULL;
    if (c->center_input_sample) {
        int64_t n = (int64_t)N * c->in_channels * h * w;
        centered = sl_alloc_f32(n);
        for (int64_t i = 0; i < n; i++) centered[i] = 2.0f * x[i] - 1.0f;
        xin = centered;
    }
    int H = h, W = w;
    float *cur = conv(xin, m->conv_in_w, m->conv_in_b, N, c->in_channels, H, W, C0, c->conv_in_kernel, 1);
    sl_free_aligned(centered);
    trace4(trace, cur, N, C0, H, W, "conv_in");
    int C = C0;

    // down path: every layer's output is a skip for the up path
    skip_stack sk = {.n = 0};
    push(&sk, cur, C, H, W);
    for (int i = 0; i < n_lv; i++) {
        const unet_block *b = &m->down[i];
        for (int j = 0; j < b->n_res; j++) {
            const resnet_block *rb = &b->res[j];
            float *r = sl_alloc_f32((int64_t)N * rb->C_out * H * W);
            resnet_forward(r, cur, temb, rb, N, H, W);
            C = rb->C_out;
            trace4(trace, r, N, C, H, W, "down_blocks.%d.resnets.%d", i, j);
            if (b->has_attn) {
                float *a = sl_alloc_f32((int64_t)N * C * H * W);
                char name[64];
                snprintf(name, sizeof name, "down_blocks.%d.attentions.%d", i, j);
                transformer_forward(a, r, context, &b->attn[j], N, H, W, L, trace, name);
                sl_free_aligned(r);
                r = a;
            }
            cur = r;
            push(&sk, cur, C, H, W);
        }
        if (b->has_resample) {
            cur = conv(cur, b->resample_w, b->resample_b, N, C, H, W, C, 3, 2);
            H = (H + 1) / 2;   // stride 2, padding 1: ceil(H / 2)
            W = (W + 1) / 2;
            push(&sk, cur, C, H, W);
        }
        trace4(trace, cur, N, C, H, W, "down_blocks.%d", i);
    }

    // mid block: resnet, transformer, resnet
    float *r0 = sl_alloc_f32((int64_t)N * C * H * W);
    resnet_forward(r0, cur, temb, &m->mid_res[0], N, H, W);
    float *a = sl_alloc_f32((int64_t)N * C * H * W);
    transformer_forward(a, r0, context, &m->mid_attn, N, H, W, L, trace, "mid_block.attentions.0");
    resnet_forward(r0, a, temb, &m->mid_res[1], N, H, W);
    sl_free_aligned(a);
    cur = r0;   // owned here (not a skip)
    trace4(trace, cur, N, C, H, W, "mid_block");

    // up path: each resnet takes [h, skip] concatenated along channels
    for (int i = 0; i < n_lv; i++) {
        const unet_block *b = &m->up[i];
        for (int j = 0; j < b->n_res; j++) {
            const resnet_block *rb = &b->res[j];
            float *s = sk.data[--sk.n];
            int Cs = sk.C[sk.n];   // same H, W as cur
            float *cat = sl_alloc_f32((int64_t)N * (C + Cs) * H * W);
            concat_channels(cat, cur, C, s, Cs, N, H * W);
            sl_free_aligned(cur);
            sl_free_aligned(s);
            float *r = sl_alloc_f32((int64_t)N * rb->C_out * H * W);
            resnet_forward(r, cat, temb, rb, N, H, W);
            sl_free_aligned(cat);
            C = rb->C_out;
            trace4(trace, r, N, C, H, W, "up_blocks.%d.resnets.%d", i, j);
            if (b->has_attn) {
                float *at = sl_alloc_f32((int64_t)N * C * H * W);
                char name[64];
                snprintf(name, sizeof name, "up_blocks.%d.attentions.%d", i, j);
                transformer_forward(at, r, context, &b->attn[j], N, H, W, L, trace, name);
                sl_free_aligned(r);
                r = at;
            }
            cur = r;
        }
        if (b->has_resample) {
            // nearest 2× to the size of the skip the next block takes: for sizes that are not
            // multiples of 2^(levels-1), diffusers interpolates to that size, which equals the
            // top-left crop of the 2× upsample
            int Ht = sk.H[sk.n - 1], Wt = sk.W[sk.n - 1];
            float *u = sl_alloc_f32((int64_t)N * C * 4 * H * W);
            upsample_nearest2x_forward(u, cur, N, C, H, W);
            sl_free_aligned(cur);
            if (Ht != 2 * H || Wt != 2 * W) {
                float *c2 = sl_alloc_f32((int64_t)N * C * Ht * Wt);
                crop(c2, u, N, C, 2 * H, 2 * W, Ht, Wt);
                sl_free_aligned(u);
                u = c2;
            }
            H = Ht;
            W = Wt;
            cur = conv(u, b->resample_w, b->resample_b, N, C, H, W, C, 3, 1);
            sl_free_aligned(u);
        }
        trace4(trace, cur, N, C, H, W, "up_blocks.%d", i);
    }

    // output head: conv_out(SiLU(GroupNorm(h)))
    float *g = sl_alloc_f32((int64_t)N * C * H * W);
    if (trace && trace->fn) {   // the trace wants the GroupNorm output before the SiLU
        groupnorm_forward(g, NULL, NULL, cur, m->norm_out_w, m->norm_out_b, N, C, H * W, c->norm_num_groups, c->norm_eps, 0);
        trace4(trace, g, N, C, H, W, "conv_norm_out");
        silu_forward(g, g, (int64_t)N * C * H * W);
    } else {
        groupnorm_forward(g, NULL, NULL, cur, m->norm_out_w, m->norm_out_b, N, C, H * W, c->norm_num_groups, c->norm_eps, 1);
    }
    sl_free_aligned(cur);
    conv2d_shape s = {.N = N, .C_in = C, .H = H, .W = W, .C_out = c->out_channels, .k = c->conv_out_kernel, .stride = 1,
                      .pad = c->conv_out_kernel / 2};
    conv2d_forward(out, g, m->conv_out_w, m->conv_out_b, s);
    sl_free_aligned(g);
    sl_free_aligned(temb);
    trace4(trace, out, N, c->out_channels, H, W, "conv_out");
    return 0;
}
