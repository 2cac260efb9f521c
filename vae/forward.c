// VAE forward: encoder and decoder, each split into a full-resolution part (the levels, which
// tiling cuts into tiles) and a latent-resolution part (the mid block with its global attention).
// Buffers are allocated per layer and freed as soon as the next exists, so the peak is a few
// activations of the largest layer.
#include <math.h>
#include <string.h>

#include "engine/kernels/attention.h"
#include "engine/kernels/conv2d.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/norm.h"
#include "engine/kernels/resample.h"
#include "engine/core/tensor.h"
#include "vae/forward.h"

// out (N, C_out, Ho, Wo) = conv(x (N, C_in, H, W)), new buffer.
static float *conv_new(const vae_conv *cv, const float *x, int N, int H, int W, int stride, int pad, int *Ho, int *Wo) {
    conv2d_shape s = {N, cv->C_in, H, W, cv->C_out, cv->k, stride, pad};
    int ho = conv2d_out_h(s), wo = conv2d_out_w(s);
    float *out = sl_alloc_f32((int64_t)N * cv->C_out * ho * wo);
    conv2d_forward(out, x, cv->w, cv->b, s);
    if (Ho) *Ho = ho;
    if (Wo) *Wo = wo;
    return out;
}

// (N, A, B) -> (N, B, A)
static void transpose_batched(float *out, const float *x, int N, int A, int B) {
    const int T = 32;
#pragma omp parallel for collapse(2) schedule(static)
    for (int n = 0; n < N; n++)
        for (int a0 = 0; a0 < A; a0 += T) {
            const float *xn = x + (int64_t)n * A * B;
            float *on = out + (int64_t)n * A * B;
            int a1 = a0 + T < A ? a0 + T : A;
            for (int b0 = 0; b0 < B; b0 += T) {
                int b1 = b0 + T < B ? b0 + T : B;
                for (int a = a0; a < a1; a++)
                    for (int b = b0; b < b1; b++) on[(int64_t)b * A + a] = xn[(int64_t)a * B + b];
            }
        }
}

// x (N, C, HW) += proj_out(attention(q, k, v)) with q, k, v projections of GroupNorm(x) over the
// HW tokens, one head of width C (scale 1/sqrt(C)). The attention kernel is tiled over queries:
// no HW×HW buffer exists.
void vae_attn_forward(float *x, const vae_attn *a, int N, int HW) {
    int C = a->C;
    int64_t n = (int64_t)N * C * HW;
    float *g = sl_alloc_f32(n);      // (N, C, HW)
    float *tok = sl_alloc_f32(n);    // (N, HW, C)
    groupnorm_forward(g, NULL, NULL, x, a->norm_w, a->norm_b, N, C, HW, a->groups, a->eps, 0);
    transpose_batched(tok, g, N, C, HW);
    float *q = g;                    // reuse: (N·HW, C)
    float *k = sl_alloc_f32(n), *v = sl_alloc_f32(n);
    linear_forward(q, tok, a->q_w, a->q_b, N * HW, C, C);
    linear_forward(k, tok, a->k_w, a->k_b, N * HW, C, C);
    linear_forward(v, tok, a->v_w, a->v_b, N * HW, C, C);
    float *o = tok;                  // (N, HW, C)
    attention_forward(o, q, k, v, N, HW, HW, 1, C, 1.0f / sqrtf((float)C), 0);
    linear_forward(k, o, a->o_w, a->o_b, N * HW, C, C);   // (N, HW, C)
    transpose_batched(v, k, N, HW, C);                     // (N, C, HW)
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < n; i++) x[i] = v[i] + x[i];
    sl_free_aligned(g), sl_free_aligned(tok), sl_free_aligned(k), sl_free_aligned(v);
}

// Runs a resnet on *x (N, C_in, H, W), replacing it by the (N, C_out, H, W) output.
static void resnet_step(float **x, const resnet_block *rb, int N, int H, int W) {
    float *out = sl_alloc_f32((int64_t)N * rb->C_out * H * W);
    resnet_forward(out, *x, NULL, rb, N, H, W);
    sl_free_aligned(*x);
    *x = out;
}

// mid block (resnet, attention, resnet) on x (N, C, H, W), in place of *x
static void mid_block(float **x, const vae_coder *cd, const vae_config *c, int N, int H, int W) {
    resnet_step(x, &cd->mid_res[0], N, H, W);
    if (c->mid_attention) vae_attn_forward(*x, &cd->mid_attn, N, H * W);
    resnet_step(x, &cd->mid_res[1], N, H, W);
}

// GN + SiLU then conv_out, replacing *x
static void out_head(float **x, const vae_coder *cd, const vae_config *c, int N, int H, int W) {
    int C = cd->conv_out.C_in;
    int64_t n = (int64_t)N * C * H * W;
    float *a = sl_alloc_f32(n);
    groupnorm_forward(a, NULL, NULL, *x, cd->norm_out_w, cd->norm_out_b, N, C, H * W, c->groups, c->eps, 1);
    sl_free_aligned(*x);
    *x = conv_new(&cd->conv_out, a, N, H, W, 1, 1, NULL, NULL);
    sl_free_aligned(a);
}

float *vae_encoder_levels(const vae_model *m, const float *image, int N, int H, int W, int *h, int *w) {
    const vae_coder *e = &m->enc;
    float *x = conv_new(&e->conv_in, image, N, H, W, 1, 1, NULL, NULL);
    for (int i = 0; i < m->cfg.n_levels; i++) {
        const vae_level *lv = &e->levels[i];
        for (int j = 0; j < lv->n_resnets; j++) resnet_step(&x, &lv->resnets[j], N, H, W);
        if (lv->resample) {
            // diffusers' Downsample2D(padding=0) pads right and bottom by one, then a 3×3 stride-2 conv
            int C = lv->sample.C_in, Hp = H + 1, Wp = W + 1;
            float *p = sl_alloc_f32((int64_t)N * C * Hp * Wp);   // (N, C, H+1, W+1)
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
            sl_free_aligned(x);
            x = conv_new(&lv->sample, p, N, Hp, Wp, 2, 0, &H, &W);
            sl_free_aligned(p);
        }
    }
    *h = H, *w = W;
    return x;
}

void vae_encoder_head(const vae_model *m, float *moments, float *feat, int N, int h, int w) {
    const vae_config *c = &m->cfg;
    float *x = feat;
    mid_block(&x, &m->enc, c, N, h, w);
    out_head(&x, &m->enc, c, N, h, w);
    int64_t n = (int64_t)N * 2 * c->latent_channels * h * w;
    if (c->quant_conv) {
        conv2d_forward(moments, x, m->quant.w, m->quant.b, (conv2d_shape){N, 2 * c->latent_channels, h, w, 2 * c->latent_channels, 1, 1, 0});
    } else {
        memcpy(moments, x, sizeof(float) * (size_t)n);
    }
    sl_free_aligned(x);
}

float *vae_decoder_head(const vae_model *m, const float *latent, int N, int h, int w) {
    const vae_config *c = &m->cfg;
    int L = c->latent_channels;
    float *z = NULL;
    if (c->post_quant_conv) z = conv_new(&m->post_quant, latent, N, h, w, 1, 0, NULL, NULL);
    float *x = conv_new(&m->dec.conv_in, z ? z : latent, N, h, w, 1, 1, NULL, NULL);
    sl_free_aligned(z);
    (void)L;
    mid_block(&x, &m->dec, c, N, h, w);
    return x;
}

void vae_decoder_levels(const vae_model *m, float *image, float *feat, int N, int h, int w) {
    const vae_coder *d = &m->dec;
    const vae_config *c = &m->cfg;
    float *x = feat;
    int H = h, W = w;
    for (int i = 0; i < c->n_levels; i++) {
        const vae_level *lv = &d->levels[i];
        for (int j = 0; j < lv->n_resnets; j++) resnet_step(&x, &lv->resnets[j], N, H, W);
        if (lv->resample) {
            int C = lv->sample.C_in;
            float *u = sl_alloc_f32((int64_t)N * C * 4 * H * W);   // (N, C, 2H, 2W)
            upsample_nearest2x_forward(u, x, N, C, H, W);
            sl_free_aligned(x);
            H *= 2, W *= 2;
            x = conv_new(&lv->sample, u, N, H, W, 1, 1, NULL, NULL);
            sl_free_aligned(u);
        }
    }
    out_head(&x, d, c, N, H, W);
    memcpy(image, x, sizeof(float) * (size_t)N * c->out_channels * H * W);
    sl_free_aligned(x);
}

void vae_encode(const vae_model *m, float *moments, const float *image, int N, int H, int W) {
    int h, w;
    float *feat = vae_encoder_levels(m, image, N, H, W, &h, &w);
    vae_encoder_head(m, moments, feat, N, h, w);
}

void vae_decode(const vae_model *m, float *image, const float *latent, int N, int h, int w) {
    float *feat = vae_decoder_head(m, latent, N, h, w);
    vae_decoder_levels(m, image, feat, N, h, w);
}

void vae_posterior(const vae_config *c, float *mean, float *logvar, float *sample, const float *moments,
                   const float *eps, int N, int h, int w) {
    int L = c->latent_channels;
    int64_t per = (int64_t)L * h * w;   // one half of a sample's moments
    for (int n = 0; n < N; n++) {
        const float *mu = moments + (int64_t)n * 2 * per, *lv = mu + per;
        for (int64_t i = 0; i < per; i++) {
            float l = lv[i] < -30.0f ? -30.0f : lv[i] > 20.0f ? 20.0f : lv[i];
            if (mean) mean[n * per + i] = mu[i];
            if (logvar) logvar[n * per + i] = l;
            if (sample && eps) sample[n * per + i] = mu[i] + expf(0.5f * l) * eps[n * per + i];
        }
    }
}
