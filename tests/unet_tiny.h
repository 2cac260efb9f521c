// A tiny random UNet for gradient and adapter tests: 3 levels with mixed plain and
// cross-attention blocks, a 2-block transformer, center_input_sample, output scale factors,
// and a 5×6 latent (odd sizes: stride-2 convs round up, upsampling crops to the skip's size).
#pragma once
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "tests/test.h"
#include "unet/unet.h"

static inline int tiny_rand_visitor(void *ctx, const param_desc *p) {
    uint64_t *seed = ctx;
    int64_t n = shape_numel(p->ndim, p->shape);
    float *d = sl_alloc_f32(n);
    float b = p->fan_in > 0 ? 1.0f / sqrtf((float)p->fan_in) : 0.5f;
    if (p->kind == PARAM_NORM_WEIGHT) fill_uniform(d, (size_t)n, (*seed)++, 0.6f, 1.4f);
    else if (p->kind == PARAM_NORM_BIAS) fill_uniform(d, (size_t)n, (*seed)++, -0.3f, 0.3f);
    else fill_uniform(d, (size_t)n, (*seed)++, -1.5f * b, 1.5f * b);
    *p->slot = d;
    return 0;
}

// The tiny config (linear or 1×1-conv proj_in/out) with random weights from seed.
static inline unet_model *tiny_unet(int linear_proj, uint64_t seed) {
    const char *dir = tmp_path(linear_proj ? "tiny_lp" : "tiny_conv");
    char path[1024];
    snprintf(path, sizeof path, "mkdir -p %s", dir);
    if (system(path) != 0) return NULL;
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return NULL;
    fprintf(f,
            "{\"_class_name\": \"UNet2DConditionModel\", \"in_channels\": 3, \"out_channels\": 2,\n"
            " \"block_out_channels\": [8, 12, 16], \"layers_per_block\": 1,\n"
            " \"down_block_types\": [\"CrossAttnDownBlock2D\", \"DownBlock2D\", \"CrossAttnDownBlock2D\"],\n"
            " \"up_block_types\": [\"CrossAttnUpBlock2D\", \"UpBlock2D\", \"CrossAttnUpBlock2D\"],\n"
            " \"attention_head_dim\": [2, 3, 2], \"transformer_layers_per_block\": [1, 1, 2],\n"
            " \"cross_attention_dim\": 6, \"norm_num_groups\": 4, \"use_linear_projection\": %s,\n"
            " \"center_input_sample\": true, \"mid_block_scale_factor\": 0.8, \"resnet_out_scale_factor\": 1.25,\n"
            " \"freq_shift\": 1, \"flip_sin_to_cos\": false}\n",
            linear_proj ? "true" : "false");
    fclose(f);
    unet_config cfg;
    if (unet_config_load_dir(&cfg, dir) != 0) {
        fprintf(stderr, "    %s\n", sl_error_msg());
        return NULL;
    }
    unet_model *m = unet_model_new(&cfg);
    unet_walk(m, tiny_rand_visitor, &seed);
    return m;
}

typedef struct {
    int N, h, w, L, Ci, Co, D;
    float *x, *t, *ctx, *target;
} tiny_io;

static inline void tiny_io_new(tiny_io *io, const unet_model *m, uint64_t seed) {
    io->N = 2, io->h = 5, io->w = 6, io->L = 3;
    io->Ci = m->cfg.in_channels, io->Co = m->cfg.out_channels, io->D = m->cfg.cross_attention_dim;
    int64_t nx = (int64_t)io->N * io->Ci * io->h * io->w, no = (int64_t)io->N * io->Co * io->h * io->w;
    io->x = sl_alloc_f32(nx);
    fill_uniform(io->x, (size_t)nx, seed, -1.0f, 1.0f);
    io->t = sl_alloc_f32(io->N);
    io->t[0] = 17.0f, io->t[1] = 803.0f;
    io->ctx = sl_alloc_f32((int64_t)io->N * io->L * io->D);
    fill_uniform(io->ctx, (size_t)io->N * io->L * io->D, seed + 1, -1.0f, 1.0f);
    io->target = sl_alloc_f32(no);
    fill_uniform(io->target, (size_t)no, seed + 2, -1.0f, 1.0f);
}

static inline void tiny_io_free(tiny_io *io) {
    sl_free_aligned(io->x);
    sl_free_aligned(io->t);
    sl_free_aligned(io->ctx);
    sl_free_aligned(io->target);
}

static inline int64_t tiny_out_n(const tiny_io *io) { return (int64_t)io->N * io->Co * io->h * io->w; }

// loss = mean((out − target)²) in double; dout (may be NULL) = its gradient.
static inline double tiny_loss(const float *out, const tiny_io *io, float *dout) {
    int64_t n = tiny_out_n(io);
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)out[i] - io->target[i];
        s += d * d;
        if (dout) dout[i] = (float)(2.0 * d / (double)n);
    }
    return s / (double)n;
}

// The inference forward's loss.
static inline double tiny_forward_loss(const unet_model *m, const tiny_io *io) {
    float *out = sl_alloc_f32(tiny_out_n(io));
    double l = unet_forward(out, io->x, io->t, io->ctx, io->N, io->h, io->w, io->L, m, NULL) == 0 ? tiny_loss(out, io, NULL)
                                                                                                  : NAN;
    sl_free_aligned(out);
    return l;
}

// Forward (training) + backward: loss, dx, dctx (each may be NULL), grads in g, adapters.
static inline double tiny_backward(const unet_model *m, const tiny_io *io, unet_model *g, float *dx, float *dctx, int ckpt) {
    int64_t no = tiny_out_n(io);
    float *out = sl_alloc_f32(no), *dout = sl_alloc_f32(no);
    unet_tape *tape = unet_forward_train(out, io->x, io->t, io->ctx, io->N, io->h, io->w, io->L, m, ckpt);
    if (!tape) return NAN;
    double l = tiny_loss(out, io, dout);
    if (unet_backward(dx, dctx, g, dout, tape) != 0) l = NAN;
    unet_tape_free(tape);
    sl_free_aligned(out);
    sl_free_aligned(dout);
    return l;
}

// Directional checks whose analytic value was below the resolvable floor (counted, reported).
static int directional_below_floor;

// Central difference of the loss along direction v (n floats) of the tensor p, step eps,
// against the analytic directional derivative Σ g·v. Returns |fd − an| / max(|an|, floor).
static inline double directional_check(const char *label, const unet_model *m, const tiny_io *io, float *p, const float *g,
                                int64_t n, double eps, double tol, uint64_t seed) {
    // v = g/max|g| + 0.3·noise: mostly along the analytic gradient, so Σ g·v does not cancel to
    // nothing (a wrong g shows as g_true·v != g·v), plus a random part that probes other directions
    float *v = sl_alloc_f32(n), *p0 = sl_alloc_f32(n);
    fill_uniform(v, (size_t)n, seed, -0.3f, 0.3f);
    memcpy(p0, p, sizeof(float) * (size_t)n);
    double an = 0, gmax = 0;
    for (int64_t i = 0; i < n; i++) gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    for (int64_t i = 0; i < n; i++) {
        if (gmax > 0) v[i] += (float)(g[i] / gmax);
        an += (double)g[i] * v[i];
    }
    // the f32 loss carries ~1e-7..1e-6 relative rounding noise, so the difference quotient
    // resolves derivatives down to ~1e-6·L/eps: a tensor with less effect than 1e-5·L/eps is
    // retried with a 10× larger step, and then checked against that floor (counted in
    // directional_below_floor)
    double fd = 0, floor = 0;
    for (int attempt = 0; attempt < 2; attempt++, eps *= 10) {
        for (int64_t i = 0; i < n; i++) p[i] = p0[i] + (float)eps * v[i];
        double lp = tiny_forward_loss(m, io);
        for (int64_t i = 0; i < n; i++) p[i] = p0[i] - (float)eps * v[i];
        double lm = tiny_forward_loss(m, io);
        memcpy(p, p0, sizeof(float) * (size_t)n);
        fd = (lp - lm) / (2 * eps);
        floor = 1e-5 * (lp + lm) / 2 / eps;
        if (fabs(an) >= floor) break;
    }
    if (fabs(an) < floor) directional_below_floor++;
    double rel = fabs(fd - an) / (fabs(an) > floor ? fabs(an) : floor);
    if (!(rel <= tol)) {
        fprintf(stderr, "    %-64s dir. deriv. analytic %.6g fd %.6g rel err %.3g\n", label, an, fd, rel);
        test_fail_at(__FILE__, __LINE__, "%s: directional derivative rel error %.3g > %.3g", label, rel, tol);
    }
    sl_free_aligned(v);
    sl_free_aligned(p0);
    return rel;
}
