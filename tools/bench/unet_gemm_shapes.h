// The GEMMs one UNet forward runs, walked from the model's config: conv (im2col: C_out × H·W ×
// C_in·k·k per image), linear (tokens × d_out × d_in) and attention (per image and head: scores
// HW × Lk × Dh, values HW × Dh × Lk). Shared by bench_unet_work and bench_gemm.
//   count_unet(model, batch, h, w, context_len) fills shapes[0 .. n_shapes) (distinct shapes with
//   how often each runs), total_flops and attn_flops.
// `kind` says how the engine calls each: KIND_CONV gemm(N, N) on weights × im2col columns,
// KIND_LINEAR gemm(N, T) on x × Wᵀ, KIND_SCORES gemm(N, T) on Q × Kᵀ, KIND_VALUES gemm(N, N) on P × V.
#pragma once
#include <stdint.h>

#include "unet/unet.h"

enum { KIND_CONV, KIND_LINEAR, KIND_SCORES, KIND_VALUES };

typedef struct { int64_t M, N, K, count; int attn, kind; } gemm_shape;
static gemm_shape shapes[512];
static int n_shapes;
static double total_flops, attn_flops;
static int in_attention;   // the shapes being added are attention's (scores, values)
static int cur_kind;       // KIND_* of the shapes being added

// C (M, N) = A (M, K) · B (K, N), `count` times
static void add(int64_t M, int64_t N, int64_t K, int64_t count) {
    total_flops += 2.0 * (double)M * (double)N * (double)K * (double)count;
    for (int i = 0; i < n_shapes; i++)
        if (shapes[i].M == M && shapes[i].N == N && shapes[i].K == K && shapes[i].attn == in_attention &&
            shapes[i].kind == cur_kind) {
            shapes[i].count += count;
            return;
        }
    if (n_shapes < 512) shapes[n_shapes++] = (gemm_shape){M, N, K, count, in_attention, cur_kind};
}

// conv as GEMM per image: (C_out) × (H_out·W_out) × (C_in·k·k)
static void conv(int N, int C_in, int C_out, int Ho, int Wo, int k) {
    cur_kind = KIND_CONV;
    add(C_out, (int64_t)Ho * Wo, (int64_t)C_in * k * k, N);
}
static void linear(int64_t M, int d_in, int d_out) {
    cur_kind = KIND_LINEAR;
    add(M, d_out, d_in, 1);
}

static void resnet(const resnet_block *r, int N, int H, int W) {
    conv(N, r->C_in, r->C_out, H, W, 3);
    conv(N, r->C_out, r->C_out, H, W, 3);
    if (r->C_in != r->C_out) conv(N, r->C_in, r->C_out, H, W, 1);
    linear(N, r->temb_dim, r->C_out);
}

static void transformer(const unet_transformer *t, int N, int HW, int L) {
    int C = t->C;
    int64_t M = (int64_t)N * HW;
    linear(M, C, C);   // proj_in
    for (int b = 0; b < t->n_blocks; b++) {
        const unet_tblock *tb = &t->blocks[b];
        int Dh = tb->head_dim, H = tb->heads;
        for (int i = 0; i < 4; i++) linear(M, C, C);   // q, k, v, out
        linear(M, C, C);                                // attn2 q
        linear((int64_t)N * L, tb->D, C);               // attn2 k
        linear((int64_t)N * L, tb->D, C);               // attn2 v
        linear(M, C, C);                                // attn2 out
        linear(M, C, 2 * tb->ff_inner);
        linear(M, tb->ff_inner, C);
        // attention: per image and head, scores (HW × Lk × Dh) and values (HW × Dh × Lk)
        double before = total_flops;
        in_attention = 1;
        cur_kind = KIND_SCORES;
        add(HW, HW, Dh, (int64_t)N * H);
        cur_kind = KIND_VALUES;
        add(HW, Dh, HW, (int64_t)N * H);
        cur_kind = KIND_SCORES;
        add(HW, L, Dh, (int64_t)N * H);
        cur_kind = KIND_VALUES;
        add(HW, Dh, L, (int64_t)N * H);
        in_attention = 0;
        attn_flops += total_flops - before;
    }
    linear(M, C, C);   // proj_out
}

static void count_unet(const unet_model *m, int N, int h, int w, int L) {
    const unet_config *c = &m->cfg;
    int H = h, W = w, C0 = c->block_out_channels[0], T = c->time_embed_dim;
    linear(N, C0, T);
    linear(N, T, T);
    conv(N, c->in_channels, C0, H, W, c->conv_in_kernel);
    for (int i = 0; i < c->n_levels; i++) {
        const unet_block *b = &m->down[i];
        for (int j = 0; j < b->n_res; j++) {
            resnet(&b->res[j], N, H, W);
            if (b->has_attn) transformer(&b->attn[j], N, H * W, L);
        }
        if (b->has_resample) {
            H /= 2;
            W /= 2;
            conv(N, b->C_out, b->C_out, H, W, 3);
        }
    }
    resnet(&m->mid_res[0], N, H, W);
    transformer(&m->mid_attn, N, H * W, L);
    resnet(&m->mid_res[1], N, H, W);
    for (int i = 0; i < c->n_levels; i++) {
        const unet_block *b = &m->up[i];
        for (int j = 0; j < b->n_res; j++) {
            resnet(&b->res[j], N, H, W);
            if (b->has_attn) transformer(&b->attn[j], N, H * W, L);
        }
        if (b->has_resample) {
            H *= 2;
            W *= 2;
            conv(N, b->C_out, b->C_out, H, W, 3);
        }
    }
    conv(N, C0, c->out_channels, H, W, c->conv_out_kernel);
}
