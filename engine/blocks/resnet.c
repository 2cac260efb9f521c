// ResNet block forward and backward, composed from the kernels (GroupNorm+SiLU, conv2d, linear).
#include "engine/blocks/resnet.h"

#include <string.h>

#include "engine/kernels/activations.h"
#include "engine/kernels/conv2d.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/norm.h"
#include "engine/core/tensor.h"

int64_t resnet_scratch_floats(const resnet_block *rb, int N, int H, int W) {
    int64_t NHW = (int64_t)N * H * W;
    int cmax = rb->C_in > rb->C_out ? rb->C_in : rb->C_out;
    return ((int64_t)cmax + rb->C_out) * NHW + (rb->temb_dim > 0 ? (int64_t)N * rb->C_out : 0);
}

// The first half, shared by the forward and the checkpoint recomputation so both give the
// same bits: a (N, C_in, HW) = SiLU(GN1(x)); h (N, C_out, HW) = conv1(a) + Linear(temb_silu)
// per channel, using t (N, C_out) as scratch.
static void first_half(float *h, float *a, float *t, const float *x, const float *temb_silu, const resnet_block *rb,
                       int N, int H, int W) {
    int Ci = rb->C_in, Co = rb->C_out, HW = H * W;
    groupnorm_forward(a, NULL, NULL, x, rb->norm1_w, rb->norm1_b, N, Ci, HW, rb->groups, rb->eps, 1);
    conv2d_forward(h, a, rb->conv1_w, rb->conv1_b, (conv2d_shape){N, Ci, H, W, Co, 3, 1, 1});
    if (rb->temb_dim > 0 && temb_silu) {
        linear_forward(t, temb_silu, rb->temb_w, rb->temb_b, N, rb->temb_dim, Co);
#pragma omp parallel for schedule(static)
        for (int nc = 0; nc < N * Co; nc++) {
            float *hc = h + (int64_t)nc * HW;
            for (int i = 0; i < HW; i++) hc[i] += t[nc];
        }
    }
}

// out == NULL: only the first half (into keep_h). keep_h (may be NULL) receives h.
static void forward_impl(float *out, const float *x, const float *temb_silu, const resnet_block *rb, int N, int H,
                         int W, float *scratch, float *keep_h) {
    int Ci = rb->C_in, Co = rb->C_out, HW = H * W;
    int cmax = Ci > Co ? Ci : Co;
    float *a = scratch;                               // (N, max(Ci, Co), HW): normed + SiLU input of a conv
    float *h = a + (int64_t)N * cmax * HW;            // (N, Co, HW): conv1 output, later the skip path
    float *t = h + (int64_t)N * Co * HW;              // (N, Co): projected time embedding
    first_half(h, a, t, x, temb_silu, rb, N, H, W);
    if (keep_h) memcpy(keep_h, h, sizeof(float) * (size_t)N * Co * HW);
    if (!out) return;

    groupnorm_forward(a, NULL, NULL, h, rb->norm2_w, rb->norm2_b, N, Co, HW, rb->groups, rb->eps, 1);
    // dropout is the identity at inference
    conv2d_forward(out, a, rb->conv2_w, rb->conv2_b, (conv2d_shape){N, Co, H, W, Co, 3, 1, 1});

    const float *skip = x;
    if (rb->skip_w) {   // 1×1 conv when the channel count changes
        conv2d_forward(h, x, rb->skip_w, rb->skip_b, (conv2d_shape){N, Ci, H, W, Co, 1, 1, 0});
        skip = h;
    }
    int64_t n = (int64_t)N * Co * HW;
    if (rb->output_scale_factor == 1.0f) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] += skip[i];
    } else {
        // diffusers divides: (input + hidden) / output_scale_factor
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) out[i] = (skip[i] + out[i]) / rb->output_scale_factor;
    }
}

void resnet_forward_ws(float *out, const float *x, const float *temb_silu, const resnet_block *rb, int N, int H, int W,
                       float *scratch) {
    forward_impl(out, x, temb_silu, rb, N, H, W, scratch, NULL);
}

void resnet_forward(float *out, const float *x, const float *temb_silu, const resnet_block *rb, int N, int H, int W) {
    float *scratch = sl_alloc_f32(resnet_scratch_floats(rb, N, H, W));
    resnet_forward_ws(out, x, temb_silu, rb, N, H, W, scratch);
    sl_free_aligned(scratch);
}

void resnet_free(resnet_block *rb) {
    float **p[] = {&rb->norm1_w, &rb->norm1_b, &rb->conv1_w, &rb->conv1_b, &rb->temb_w, &rb->temb_b,
                   &rb->norm2_w, &rb->norm2_b, &rb->conv2_w, &rb->conv2_b, &rb->skip_w, &rb->skip_b};
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
        sl_free_aligned(*p[i]);
        *p[i] = NULL;
    }
}

// ---------------------------------------------------------------- training

void resnet_acts_free(resnet_acts *a) {
    sl_free_aligned(a->h);
    a->h = NULL;
}

void resnet_forward_train(float *out, const float *x, const float *temb_silu, const resnet_block *rb, int N, int H,
                          int W, resnet_acts *acts) {
    float *keep = NULL;
    if (acts) {
        resnet_acts_free(acts);
        keep = acts->h = sl_alloc_f32((int64_t)N * rb->C_out * H * W);
    }
    float *scratch = sl_alloc_f32(resnet_scratch_floats(rb, N, H, W));
    forward_impl(out, x, temb_silu, rb, N, H, W, scratch, keep);
    sl_free_aligned(scratch);
}

void groupnorm_silu_backward(float *dx, float *dgamma, float *dbeta, const float *da, const float *x,
                             const float *gamma, const float *beta, int N, int C, int HW, int G, float eps) {
    int64_t n = (int64_t)N * C * HW;
    float *z = sl_alloc_f32(n), *dz = sl_zeros_f32(n);          // (N, C, HW): GroupNorm output, its gradient
    float *mean = sl_alloc_f32((int64_t)N * G), *rstd = sl_alloc_f32((int64_t)N * G);
    groupnorm_forward(z, mean, rstd, x, gamma, beta, N, C, HW, G, eps, 0);
    silu_backward(dz, da, z, n);
    groupnorm_backward(dx, dgamma, dbeta, dz, x, mean, rstd, gamma, N, C, HW, G);
    sl_free_aligned(z);
    sl_free_aligned(dz);
    sl_free_aligned(mean);
    sl_free_aligned(rstd);
}

#define GRAD(f) (grad ? grad->f : NULL)

void resnet_backward(float *dx, float *dtemb_silu, resnet_block *grad, const float *dout, const float *x,
                     const float *temb_silu, const resnet_block *rb, const resnet_acts *acts, int N, int H, int W) {
    const int Ci = rb->C_in, Co = rb->C_out, HW = H * W, G = rb->groups;
    const int cmax = Ci > Co ? Ci : Co;
    const int64_t n_out = (int64_t)N * Co * HW, n_max = (int64_t)N * cmax * HW;
    const float *h = acts->h;

    // out = (skip(x) + conv2(...)) / s: both branches get d = dout / s
    float *d_scaled = NULL;
    const float *d = dout;
    if (rb->output_scale_factor != 1.0f) {
        d_scaled = sl_alloc_f32(n_out);
        float inv = 1.0f / rb->output_scale_factor;
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n_out; i++) d_scaled[i] = d[i] * inv;
        d = d_scaled;
    }
    if (rb->skip_w) {
        conv2d_backward(dx, GRAD(skip_w), GRAD(skip_b), d, x, rb->skip_w, (conv2d_shape){N, Ci, H, W, Co, 1, 1, 0});
    } else if (dx) {
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n_out; i++) dx[i] += d[i];
    }

    // conv2 on a2 = SiLU(GN2(h)), recomputed exactly as the forward computed it
    float *a = sl_alloc_f32(n_max), *da = sl_zeros_f32(n_max);
    groupnorm_forward(a, NULL, NULL, h, rb->norm2_w, rb->norm2_b, N, Co, HW, G, rb->eps, 1);
    conv2d_backward(da, GRAD(conv2_w), GRAD(conv2_b), d, a, rb->conv2_w, (conv2d_shape){N, Co, H, W, Co, 3, 1, 1});
    sl_free_aligned(d_scaled);
    float *dh = sl_zeros_f32(n_out);
    groupnorm_silu_backward(dh, GRAD(norm2_w), GRAD(norm2_b), da, h, rb->norm2_w, rb->norm2_b, N, Co, HW, G, rb->eps);

    // h = conv1(a1) + t[n, c]: dt (N, Co) = Σ over pixels of dh
    if (rb->temb_dim > 0 && temb_silu && (dtemb_silu || GRAD(temb_w) || GRAD(temb_b))) {
        float *dt = sl_alloc_f32((int64_t)N * Co);
#pragma omp parallel for schedule(static)
        for (int nc = 0; nc < N * Co; nc++) {
            const float *p = dh + (int64_t)nc * HW;
            double s = 0.0;
            for (int i = 0; i < HW; i++) s += p[i];
            dt[nc] = (float)s;
        }
        linear_backward(dtemb_silu, GRAD(temb_w), GRAD(temb_b), dt, temb_silu, rb->temb_w, N, rb->temb_dim, Co);
        sl_free_aligned(dt);
    }

    // conv1 on a1 = SiLU(GN1(x)); then through GN1 to x
    int need_dx1 = dx || GRAD(norm1_w) || GRAD(norm1_b);
    groupnorm_forward(a, NULL, NULL, x, rb->norm1_w, rb->norm1_b, N, Ci, HW, G, rb->eps, 1);
    memset(da, 0, sizeof(float) * (size_t)N * Ci * HW);
    conv2d_backward(need_dx1 ? da : NULL, GRAD(conv1_w), GRAD(conv1_b), dh, a, rb->conv1_w,
                    (conv2d_shape){N, Ci, H, W, Co, 3, 1, 1});
    if (need_dx1)
        groupnorm_silu_backward(dx, GRAD(norm1_w), GRAD(norm1_b), da, x, rb->norm1_w, rb->norm1_b, N, Ci, HW, G, rb->eps);
    sl_free_aligned(a);
    sl_free_aligned(da);
    sl_free_aligned(dh);
}
