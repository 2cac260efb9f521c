// The Stable Diffusion UNet (diffusers UNet2DConditionModel, SD 1.x / 2.x): weights, loading
// from either layout, and the forward pass
//   time_proj -> time_embedding -> conv_in -> down blocks (skips) -> mid block
//   -> up blocks (skip concatenation) -> GroupNorm+SiLU -> conv_out.
// All weights are f32 (16-bit files are widened once at load).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/params.h"
#include "engine/resnet.h"
#include "unet/config.h"

// BasicTransformerBlock: LN -> self-attention, LN -> cross-attention on the context,
// LN -> GEGLU feed-forward; each with a residual. Linear weights are (d_out, d_in).
typedef struct {
    int C, D, heads, head_dim, ff_inner;        // ff_inner F = 4·C
    float *norm1_w, *norm1_b;                   // (C)
    float *attn1_q, *attn1_k, *attn1_v;         // (C, C), no bias
    float *attn1_out_w, *attn1_out_b;           // (C, C), (C)
    float *norm2_w, *norm2_b;                   // (C)
    float *attn2_q;                             // (C, C)
    float *attn2_k, *attn2_v;                   // (C, D)
    float *attn2_out_w, *attn2_out_b;           // (C, C), (C)
    float *norm3_w, *norm3_b;                   // (C)
    float *ff1_w, *ff1_b;                       // (2F, C), (2F): GEGLU projection [value | gate]
    float *ff2_w, *ff2_b;                       // (C, F), (C)
} unet_tblock;

// Transformer2DModel: GroupNorm (eps 1e-6) -> proj_in -> blocks -> proj_out -> + input.
// A 1×1-conv proj_in/out (SD 1.x) equals a Linear on the tokens, so both use (C, C) weights.
typedef struct {
    int C, groups, n_blocks, linear_proj;
    float *norm_w, *norm_b;                     // (C)
    float *proj_in_w, *proj_in_b;               // (C, C), (C)
    float *proj_out_w, *proj_out_b;             // (C, C), (C)
    unet_tblock *blocks;                        // (n_blocks)
} unet_transformer;

// One down or up block: n_res resnets, each followed by a transformer when has_attn, then an
// optional stride-2 conv (down) or nearest 2× upsample + conv (up).
typedef struct {
    int n_res, has_attn, has_resample;
    int C_out, heads;
    resnet_block *res;                          // (n_res)
    unet_transformer *attn;                     // (n_res) or NULL
    float *resample_w, *resample_b;             // (C_out, C_out, 3, 3), (C_out)
} unet_block;

typedef struct {
    unet_config cfg;
    float *time_w1, *time_b1;                   // (T, C0), (T)
    float *time_w2, *time_b2;                   // (T, T), (T)
    float *conv_in_w, *conv_in_b;               // (C0, C_in, k, k), (C0)
    unet_block down[UNET_MAX_LEVELS];
    resnet_block mid_res[2];
    unet_transformer mid_attn;
    unet_block up[UNET_MAX_LEVELS];             // up[0] is the deepest
    float *norm_out_w, *norm_out_b;             // (C0)
    float *conv_out_w, *conv_out_b;             // (C_out, C0, k, k), (C_out)
} unet_model;

// ---- structure and parameters (unet/params.c)
// A model with its block structure built from cfg and every weight pointer NULL.
unet_model *unet_model_new(const unet_config *cfg);
// Visits every parameter in a fixed order: diffusers name, shape, init kind, slot.
int unet_walk(unet_model *m, param_visitor fn, void *ctx);
// Frees the weights and the structure.
void unet_free(unet_model *m);
// Every (diffusers name, shape) of the UNet a config describes (for `init` and tests).
int unet_enumerate(const unet_config *cfg, param_visitor fn, void *ctx);

// ---- names (unet/names.c)
// The original single-file name (without "model.diffusion_model.") of a diffusers name;
// 0, or -1 when the name is not a UNet parameter of this config.
int unet_original_name(const unet_config *cfg, const char *diffusers_name, char *out, size_t len);
// weights.h's weight_name_map_ctx; ctx is the unet_config.
int unet_weight_name_map(const char *diffusers_name, char *out, size_t len, const void *cfg);

// ---- loading (unet/load.c)
// PATH: a diffusers folder (unet/diffusion_pytorch_model[.variant].safetensors), a diffusers
// component file, or an original single-file checkpoint (UNet under model.diffusion_model.).
// config_dir (may be NULL) holds unet/config.json and overrides the folder's config or the
// detection from shapes. F32/F16/BF16 files are widened to f32. NULL with sl_error.
unet_model *unet_load(const char *path, const char *config_dir, const char *variant);

// ---- forward (unet/unet.c, unet/transformer.c)
// Optional hook that sees intermediate outputs by diffusers module name ("conv_in",
// "down_blocks.0.resnets.0", "mid_block", ...); data is only valid during the call.
typedef struct {
    void (*fn)(void *ctx, const char *name, const float *data, int ndim, const int64_t *shape);
    void *ctx;
} unet_trace;

// out (N, C_out, h, w) = unet(x (N, C_in, h, w), t (N), context (N, L, D)), D the config's
// cross_attention_dim. Any h, w: sizes that are not multiples of 2^(levels-1) are handled as
// diffusers does (stride-2 convs round up, upsampling matches the skip's size).
// Returns 0, or -1 with sl_error for shapes the model cannot take.
int unet_forward(float *out, const float *x, const float *t, const float *context, int N, int h, int w, int L,
                 const unet_model *m, const unet_trace *trace);

// What a BasicTransformerBlock's backward needs, filled by tblock_forward when asked for
// (M = N·L tokens, Mc = N·Lc context tokens). All buffers are owned; tblock_acts_free frees them.
typedef struct {
    float *n1, *mean1, *rstd1;                  // LN1 out (M, C), stats (M)
    float *q1, *k1, *v1, *a1;                   // (M, C): projections and attention output (before to_out)
    float *x1;                                  // (M, C) after the self-attention residual
    float *n2, *mean2, *rstd2;                  // (M, C), (M)
    float *q2, *a2;                             // (M, C)
    float *k2, *v2;                             // (Mc, C) from the context
    float *x2;                                  // (M, C) after the cross-attention residual
    float *n3, *mean3, *rstd3;                  // (M, C), (M)
    float *ff_h;                                // (M, 2F) GEGLU projection output
    float *ff_g;                                // (M, F) GEGLU output
} tblock_acts;
void tblock_acts_free(tblock_acts *a);

// out (N, L, C) = block(x (N, L, C), ctx (N, Lc, D)). out may not alias x. With acts == NULL
// (inference) intermediates are freed as soon as they are dead.
void tblock_forward(float *out, const float *x, const float *ctx, const unet_tblock *tb, int N, int L, int Lc,
                    tblock_acts *acts, const unet_trace *trace, const char *name);
// out (N, C, H, W) = transformer(x (N, C, H, W), ctx (N, Lc, D)).
void transformer_forward(float *out, const float *x, const float *ctx, const unet_transformer *tr, int N, int H,
                         int W, int Lc, const unet_trace *trace, const char *name);
