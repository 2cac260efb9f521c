// The Stable Diffusion UNet (diffusers UNet2DConditionModel, SD 1.x / 2.x): weights, loading
// from either layout, and the forward pass
//   time_proj -> time_embedding -> conv_in -> down blocks (skips) -> mid block
//   -> up blocks (skip concatenation) -> GroupNorm+SiLU -> conv_out.
// All weights are f32 (16-bit files are widened once at load).
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/adapters/adapter.h"
#include "engine/adapters/adapter_set.h"
#include "engine/core/params.h"
#include "engine/blocks/resnet.h"
#include "unet/config.h"

// The Linear layers of a BasicTransformerBlock, in forward order (indices of unet_tblock.ad).
enum {
    TB_ATTN1_Q, TB_ATTN1_K, TB_ATTN1_V, TB_ATTN1_OUT,
    TB_ATTN2_Q, TB_ATTN2_K, TB_ATTN2_V, TB_ATTN2_OUT,
    TB_FF1, TB_FF2,
    TB_N_LINEARS
};

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
    adapter *ad[TB_N_LINEARS];                  // attached adapters (not owned), NULL: plain Linear
} unet_tblock;

// Transformer2DModel: GroupNorm (eps 1e-6) -> proj_in -> blocks -> proj_out -> + input.
// A 1×1-conv proj_in/out (SD 1.x) equals a Linear on the tokens, so both use (C, C) weights.
typedef struct {
    int C, groups, n_blocks, linear_proj;
    float *norm_w, *norm_b;                     // (C)
    float *proj_in_w, *proj_in_b;               // (C, C), (C)
    float *proj_out_w, *proj_out_b;             // (C, C), (C)
    unet_tblock *blocks;                        // (n_blocks)
    adapter *proj_in_ad, *proj_out_ad;          // attached adapters (not owned) or NULL
} unet_transformer;

// The convolutions of a ResNet block adapters can target, in resnet_block field order.
enum { RES_CONV1, RES_CONV2, RES_CONV_SHORTCUT, RES_N_CONVS };
typedef struct {
    adapter *conv[RES_N_CONVS];                 // attached adapters (not owned), NULL: plain conv
} unet_resnet_adapters;

// One down or up block: n_res resnets, each followed by a transformer when has_attn, then an
// optional stride-2 conv (down) or nearest 2× upsample + conv (up).
typedef struct {
    int n_res, has_attn, has_resample;
    int C_out, heads;
    resnet_block *res;                          // (n_res)
    unet_resnet_adapters *res_ad;               // (n_res)
    unet_transformer *attn;                     // (n_res) or NULL
    float *resample_w, *resample_b;             // (C_out, C_out, 3, 3), (C_out)
    adapter *resample_ad;                       // attached adapter of the resample conv, or NULL
} unet_block;

typedef struct {
    unet_config cfg;
    float *time_w1, *time_b1;                   // (T, C0), (T)
    float *time_w2, *time_b2;                   // (T, T), (T)
    float *conv_in_w, *conv_in_b;               // (C0, C_in, k, k), (C0)
    unet_block down[UNET_MAX_LEVELS];
    resnet_block mid_res[2];
    unet_resnet_adapters mid_res_ad[2];
    unet_transformer mid_attn;
    unet_block up[UNET_MAX_LEVELS];             // up[0] is the deepest
    float *norm_out_w, *norm_out_b;             // (C0)
    float *conv_out_w, *conv_out_b;             // (C_out, C0, k, k), (C_out)
    adapter_set *adapters;                      // attached by unet_attach_adapters (not owned), or NULL
    float adapter_scale;                        // strength of the attached adapters (1)
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

// ---- adaptable modules and adapters (unet/params.c, unet/adapters.c)
// Every module adapters and LoRA files can target, each a weight matrix W (d_out, d_in):
// - the Linear layers of the transformers: attn1/attn2 to_q, to_k, to_v, to_out.0, ff.net.0.proj,
//   ff.net.2 of every BasicTransformerBlock and proj_in/proj_out of every Transformer2DModel
//   (SD 1.x's 1×1 convs are Linears over channels: their (C, C, 1, 1) weight is the (C, C) matrix);
// - the convolutions of the ResNet blocks (conv1, conv2, conv_shortcut) and of the down/up
//   samplers (conv), LoCon-style: a (C_out, C_in, k, k) kernel is the (C_out, C_in·k·k) matrix.
typedef struct {
    const char *path;       // diffusers module path, e.g. down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k
    int d_in, d_out;
    int kernel;             // 0: applied as a Linear; k ≥ 1: a k×k convolution, d_in = C_in·k·k
    float **weight;         // where the model keeps W (d_out, d_in)
    float **bias;           // (d_out), or NULL when the layer has none (to_q, to_k, to_v)
    adapter **adapter;      // the layer's adapter slot (unet_attach_adapters sets it)
} unet_linear;
// Called once per module in a fixed order; l->path is valid during the call only.
// A nonzero return stops the walk and is returned by it.
typedef int (*unet_linear_visitor)(void *ctx, const unet_linear *l);
// The one enumeration of adaptable modules (built by the same walk as unet_walk's names).
int unet_walk_linears(unet_model *m, unet_linear_visitor fn, void *ctx);

// Holds every GEMM weight of m in bf16 (engine/core/bf16_weights.h: half the memory, for
// --precision bf16 with frozen weights) except those of layers with an attached adapter, whose
// forward reads W0 itself (DoRA's norms, merged conv kernels). For a UNet loaded in f32 whose
// LoRA files and adapters are applied; a plain one can be held as it loads (sd_load_opts).
void unet_hold_bf16(unet_model *m);
// 16 hex digits: model_hash over the diffusers names and shapes of every UNet parameter.
void unet_model_hash(unet_model *m, char out[17]);

// Binds every slot of `s` to its module (by module path): fixes and checks each adapter's
// layer shape (adapter_bind_shape) and sets the module's adapter pointer. A slot that names no
// Linear of this UNet is an error naming it (and `path`, the adapter file). A base-model hash
// that differs from this UNet's is only a warning. scale multiplies the adapters' effect (1 =
// as trained; DoRA interpolates between the base and the adapted layer). s == NULL detaches.
// The set is not owned and must outlive its use; its step (so u(t)) is read at every forward.
int unet_attach_adapters(unet_model *m, adapter_set *s, float scale, const char *path);

// The adapter values a forward uses, fixed for one forward and its backward: u = the SingLoRA
// ramp u(t) of the attached set at its current optimizer step (never advanced by forwards or
// recomputation), and the strength.
typedef struct {
    float u, scale;
} unet_adapt;
unet_adapt unet_adapter_state(const unet_model *m);

// y (M, d_out) = x (M, d_in)·Wᵀ + b through adapter `a` when one is attached (a == NULL: the
// plain Linear). ua == NULL means u = scale = 1.
void unet_linear_forward(float *y, const float *x, const float *w, const float *b, const adapter *a,
                         const unet_adapt *ua, int M, int d_in, int d_out);
// Accumulates dx (M, d_in), dw (d_out, d_in), db (d_out) (each may be NULL: a frozen W costs no
// dW GEMM) and the adapter's gradients when it has gradient buffers (adapter_alloc_grads).
// W0's gradient under a DoRA adapter is not defined here (unet_backward refuses it).
void unet_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                          adapter *a, const unet_adapt *ua, int M, int d_in, int d_out);

// A convolution's kernel with its adapter merged, in a new buffer: W0 (d_out, d_in) plus ΔW at
// the forward's u and strength (adapter_merge_into; exactly what merging the adapter into the
// model computes), so the adapted conv is one ordinary conv. NULL a: NULL (use W0).
float *unet_conv_weight(const float *w0, const adapter *a, const unet_adapt *ua, int d_in, int d_out);
// From dw (d_out, d_in) = dL/d(merged kernel): the adapter's gradients (when it has gradient
// buffers) and W0's (dw0 += dw when dw0 is not NULL).
void unet_conv_weight_backward(float *dw0, const float *dw, const float *w0, adapter *a, const unet_adapt *ua, int d_in,
                               int d_out);

// ---- forward (unet/unet.c, unet/transformer.c)
// Optional hook that sees intermediate outputs by diffusers module name ("conv_in",
// "down_blocks.0.resnets.0", "mid_block", ...); data is only valid during the call.
typedef struct {
    void (*fn)(void *ctx, const char *name, const float *data, int ndim, const int64_t *shape);
    void *ctx;
} unet_trace;

// out (N, C_out, h, w) = unet(x (N, C_in, h, w), t (N), context (N, L, D)), D the config's
// cross_attention_dim. Any h, w: sizes that are not multiples of 2^(levels-1) are handled as
// diffusers does (stride-2 convs round up, upsampling matches the skip's size). Attached
// adapters apply (unet_attach_adapters). Returns 0, or -1 with sl_error for shapes the model
// cannot take.
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

// What a Transformer2DModel's backward needs: each block's input and activations. The
// GroupNorm and proj_in input are recomputed from the transformer's input.
typedef struct {
    int n_blocks;
    float **hs;                                 // (n_blocks + 1) × (N·HW, C): block k's input; hs[n_blocks] feeds proj_out
    tblock_acts *blocks;                        // (n_blocks)
} transformer_acts;
void transformer_acts_free(transformer_acts *a);

// out (N, L, C) = block(x (N, L, C), ctx (N, Lc, D)). out may not alias x. With acts == NULL
// (inference) intermediates are freed as soon as they are dead. ua: adapter values (NULL: u = 1).
void tblock_forward(float *out, const float *x, const float *ctx, const unet_tblock *tb, const unet_adapt *ua, int N,
                    int L, int Lc, tblock_acts *acts, const unet_trace *trace, const char *name);
// out (N, C, H, W) = transformer(x (N, C, H, W), ctx (N, Lc, D)); acts as for tblock_forward.
void transformer_forward(float *out, const float *x, const float *ctx, const unet_transformer *tr,
                         const unet_adapt *ua, int N, int H, int W, int Lc, transformer_acts *acts,
                         const unet_trace *trace, const char *name);

// ---- gradient checkpointing (unet/transformer.c)
// A transformer's training forward that keeps only its blocks' inputs and outputs (acts->hs) and
// each block's residual stream x1, x2 (3 (N·HW, C) tensors a block instead of ~18). Memory
// that spares the recomputation the self-attention forward.
void transformer_forward_checkpoint(float *out, const float *x, const float *ctx, const unet_transformer *tr,
                                    const unet_adapt *ua, int N, int H, int W, int Lc, transformer_acts *acts);
// Refills a block's acts from its input x and the kept x1, x2 with exactly the values
// tblock_forward computes (the same calls on the same inputs), leaving out what the backward
// will not read: the attention outputs a1, a2 and the GEGLU output ff_g unless the Linear that
// reads them (to_out.0, ff.net.2) trains (g's weight buffer) or has an adapter.
void tblock_recompute(tblock_acts *a, const float *x, const float *ctx, const unet_tblock *tb, const unet_tblock *g,
                      const unet_adapt *ua, int N, int L, int Lc);
// The same for every block of a transformer whose acts transformer_forward_checkpoint filled.
void transformer_recompute(transformer_acts *acts, const float *ctx, const unet_transformer *tr,
                           const unet_transformer *g, const unet_adapt *ua, int N, int H, int W, int Lc);

// ---- backward (unet/transformer_backward.c, unet/backward.c)
// Gradients of parameters live in a "gradient mirror": a unet_model of the same structure
// whose parameter pointers are f32 gradient buffers (same shapes), or NULL for frozen
// parameters, which then get no weight-gradient GEMM at all. A NULL mirror freezes everything.

// dx (N, L, C) += dL/dx, dctx (N, Lc, D) += dL/dctx (NULL: not needed; the k/v projections are
// then skipped unless they train), g's non-NULL buffers += their gradients (g may be NULL),
// attached adapters' gradient buffers += theirs. dout (N, L, C), acts from tblock_forward.
void tblock_backward(float *dx, float *dctx, unet_tblock *g, const float *dout, const float *x, const float *ctx,
                     const unet_tblock *tb, const unet_adapt *ua, const tblock_acts *acts, int N, int L, int Lc);
// The same for a Transformer2DModel: dx (N, C, H, W) += ..., dout (N, C, H, W).
void transformer_backward(float *dx, float *dctx, unet_transformer *g, const float *dout, const float *x,
                          const float *ctx, const unet_transformer *tr, const unet_adapt *ua,
                          const transformer_acts *acts, int N, int H, int W, int Lc);

// A gradient mirror of m with zeroed buffers for the parameters `params` selects: NULL, "" or
// "none" (nothing), "all" (full fine-tuning), or a comma-separated list of diffusers parameter
// names, each exact or a shell pattern (`*.attn2.to_k.weight`; fnmatch). An item that matches no
// parameter is an error naming it. Free with unet_free.
unet_model *unet_grads_new(const unet_model *m, const char *params);
// Zeroes every gradient buffer of a mirror (between optimizer steps).
void unet_grads_zero(unet_model *g);
// Number of parameters (floats) with gradient buffers.
int64_t unet_grads_count(unet_model *g);

// A training forward's record (unet/unet.c, unet/backward.c): every layer's input and, without
// gradient checkpointing, every layer's activations. With checkpointing, a transformer keeps its
// blocks' inputs/outputs and residual streams (x1, x2) and recomputes the rest in backward (the
// same calls, so the same bits), skipping the self-attention forward; a resnet keeps its one
// activation h (about 5 % of the activation memory, and a 3×3 conv to recompute).
typedef struct unet_tape unet_tape;
// out = unet_forward(...) (same values) and the tape for unet_backward. x, t, context must stay
// alive and unchanged until unet_tape_free. NULL with sl_error for bad shapes.
unet_tape *unet_forward_train(float *out, const float *x, const float *t, const float *context, int N, int h, int w,
                              int L, const unet_model *m, int checkpoint);
// From dout = dL/dout (N, C_out, h, w): dx (N, C_in, h, w) += dL/dx and dcontext (N, L, D) +=
// dL/dcontext (each may be NULL), grads (a mirror of the model, may be NULL) += parameter
// gradients, attached adapters with gradient buffers += theirs. The timestep is not
// differentiated. Uses the tape up (frees activations as it goes): call once per tape.
// 0, or -1 with sl_error (a used tape, a W0 gradient under a DoRA adapter).
int unet_backward(float *dx, float *dcontext, unet_model *grads, const float *dout, unet_tape *tape);
void unet_tape_free(unet_tape *tape);

// Without a model, fixes the (d_out, d_in) of SingLoRA slots from the SD transformer layout:
// attention projections other than attn2.to_k/to_v and proj_in/out are square, ff.net.0.proj
// is (8C, C) (GEGLU), ff.net.2 is (C, 4C), and attn2.to_k/to_v are (C, D) with C taken from a
// square sibling in the same block. 0, or -1 with sl_error naming a slot it cannot place
// (a convolution's slot, of any method: its kernel size is not in the file).
int unet_infer_adapter_shapes(adapter_set *s, const char *path);
