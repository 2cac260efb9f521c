// Helpers shared by the UNet's forward and backward files (not part of the UNet's API).
#pragma once
#include <stdint.h>

#define TRANSFORMER_GN_EPS 1e-6f   // Transformer2DModel's GroupNorm epsilon (diffusers hard-codes it)

// y += x, n elements
void unet_add_inplace(float *y, const float *x, int64_t n);
// out (N, HW, C) = x (N, C, HW) transposed per image, in cache-sized tiles
void unet_nchw_to_nlc(float *out, const float *x, int N, int C, int HW);
// out (N, C, HW) = t (N, HW, C) transposed [+ res (N, C, HW)]
void unet_nlc_to_nchw(float *out, const float *t, const float *res, int N, int C, int HW);

#include "unet/unet.h"

// The UNet as a sequence of layers ("ops") between conv_in and the output head, in forward
// order: down blocks (resnet, transformer, ..., downsample), mid block, up blocks (resnet on
// [h, skip], transformer, ..., upsample). The forward runs them in order; the backward in reverse.
typedef enum { OP_RESNET, OP_TRANSFORMER, OP_DOWNSAMPLE, OP_UPSAMPLE } unet_op_kind;

typedef struct {
    unet_op_kind kind;
    int part, i, j;          // part 0: down_blocks.i, 1: mid_block, 2: up_blocks.i; j: layer in the block
    int C_in, Cs, C_out;     // input channels, skip channels concatenated after them (up resnets; else 0), output
    int H, W, Ho, Wo;        // input and output sizes
    int skip;                // up resnets: index of the skip concatenated after the input, else -1
    int out_skip;            // this op's output is skip #out_skip (a later up resnet takes it), else -1
    float *out;              // (N, C_out, Ho, Wo), owned; the next op's input
    resnet_acts ra;          // OP_RESNET activations (training)
    transformer_acts ta;     // OP_TRANSFORMER activations (training; partial under checkpointing)
} unet_op;

#define UNET_MAX_SKIPS (3 * UNET_MAX_LEVELS + 2)
#define UNET_MAX_OPS (8 * UNET_MAX_LEVELS + 8)

struct unet_tape {
    const unet_model *m;
    int N, h, w, L, checkpoint, used;
    unet_adapt ua;                     // fixed at the forward: recomputation and backward use the same u
    const float *x, *t, *ctx;          // borrowed inputs
    float *xin;                        // conv_in's input (x, or 2x − 1 owned here when center_input_sample)
    float *tp, *e1, *temb, *temb_silu; // sinusoids (N, C0); linear_1 out, linear_2 out, SiLU(temb) (N, T)
    float *c0;                         // conv_in output (N, C0, h, w) = skip 0
    float *skips[UNET_MAX_SKIPS];      // skip k (borrowed: c0 or an op's out)
    int n_skips;
    unet_op ops[UNET_MAX_OPS];
    int n_ops;
};

// The layer an op runs, in model m (or in a gradient mirror of it).
static inline resnet_block *unet_op_resnet(const unet_model *m, const unet_op *op) {
    unet_model *mm = (unet_model *)m;
    return op->part == 1 ? &mm->mid_res[op->j] : &(op->part == 0 ? mm->down : mm->up)[op->i].res[op->j];
}
static inline unet_transformer *unet_op_transformer(const unet_model *m, const unet_op *op) {
    unet_model *mm = (unet_model *)m;
    return op->part == 1 ? &mm->mid_attn : &(op->part == 0 ? mm->down : mm->up)[op->i].attn[op->j];
}
static inline unet_resnet_adapters *unet_op_resnet_adapters(const unet_model *m, const unet_op *op) {
    unet_model *mm = (unet_model *)m;
    return op->part == 1 ? &mm->mid_res_ad[op->j] : &(op->part == 0 ? mm->down : mm->up)[op->i].res_ad[op->j];
}
static inline unet_block *unet_op_block(const unet_model *m, const unet_op *op) {
    unet_model *mm = (unet_model *)m;
    return &(op->part == 0 ? mm->down : mm->up)[op->i];
}

// What the forward keeps of an op for backward.
enum {
    UNET_KEEP_NONE,        // inference
    UNET_KEEP_ALL,         // every activation
    UNET_KEEP_CHECKPOINT,  // resnets: their one activation h (a 3×3 conv to recompute, little memory);
                           // transformers: block inputs/outputs and residual streams (the rest is
                           // recomputed in backward by transformer_recompute)
};
// Runs one op: op->out = layer(input [, skip]) (allocated) and keeps its activations as asked.
// The diffusers module path of an op's layer, e.g. "up_blocks.1.attentions.2", into buf.
const char *unet_op_module(const unet_op *op, char *buf, size_t len);
void unet_op_forward(unet_op *op, const unet_model *m, const float *in, const float *skip, const float *temb_silu,
                     const float *ctx, const unet_adapt *ua, int N, int L, int keep, const unet_trace *trace);
// out (N, Ca+Cb, HW) = [a (N, Ca, HW), b (N, Cb, HW)] along channels
void unet_concat_channels(float *out, const float *a, int Ca, const float *b, int Cb, int N, int HW);
// out (N, C, Ho, Wo) = the top-left Ho×Wo of nearest-2×(x (N, C, H, W)), Ho ≤ 2H, Wo ≤ 2W
void unet_upsample_to(float *out, const float *x, int N, int C, int H, int W, int Ho, int Wo);

// ResNet convolutions by index (RES_CONV1, ...): where the weight lives and its matrix shape
// (C_out, C_in·k·k).
float **unet_resnet_conv(resnet_block *rb, int k, int *d_in, int *d_out);
// rb with the kernels of its adapted convolutions merged (unet_conv_weight) into *merged, which
// otherwise shares rb's weights; rb itself when no conv has an adapter (ad may be NULL).
// unet_resnet_merged_free(merged, rb) frees what it allocated.
const resnet_block *unet_resnet_merged(resnet_block *merged, const resnet_block *rb, const unet_resnet_adapters *ad,
                                       const unet_adapt *ua);
void unet_resnet_merged_free(resnet_block *merged, const resnet_block *rb);
