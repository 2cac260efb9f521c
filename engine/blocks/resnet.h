// The ResNet block shared by the UNet (with a time embedding) and the VAE (without):
//   h = conv1(SiLU(GN1(x))) [+ Linear(SiLU(temb)) per channel];  h = conv2(SiLU(GN2(h)))
//   out = (skip(x) + h) / output_scale_factor,  skip = 1×1 conv when C_in != C_out, else identity.
#pragma once
#include <stdint.h>

typedef struct {
    int C_in, C_out, groups, temb_dim;   // temb_dim 0: no time embedding (VAE)
    float eps, output_scale_factor;
    float *norm1_w, *norm1_b;            // (C_in)
    float *conv1_w, *conv1_b;            // (C_out, C_in, 3, 3), (C_out)
    float *temb_w, *temb_b;              // (C_out, temb_dim), (C_out); NULL when temb_dim == 0
    float *norm2_w, *norm2_b;            // (C_out)
    float *conv2_w, *conv2_b;            // (C_out, C_out, 3, 3), (C_out)
    float *skip_w, *skip_b;              // (C_out, C_in, 1, 1), (C_out); NULL when C_in == C_out
} resnet_block;

// out (N, C_out, H, W) from x (N, C_in, H, W); temb_silu (N, temb_dim) is SiLU(time embedding),
// computed once by the caller (NULL when temb_dim == 0).
// out must not alias x. Allocates its scratch (resnet_scratch_floats) for the call.
void resnet_forward(float *out, const float *x, const float *temb_silu, const resnet_block *rb, int N, int H, int W);
// Floats of scratch resnet_forward_ws needs: (max(C_in, C_out) + C_out)·N·H·W (+ N·C_out with temb).
int64_t resnet_scratch_floats(const resnet_block *rb, int N, int H, int W);
// The same with caller-provided scratch (e.g. reused across blocks).
void resnet_forward_ws(float *out, const float *x, const float *temb_silu, const resnet_block *rb, int N, int H, int W,
                       float *scratch);
// Frees the weights (sl_free_aligned) and sets the pointers to NULL.
void resnet_free(resnet_block *rb);

// ---- training

// What the backward keeps of a forward: h (N, C_out, H, W) = conv1(SiLU(GN1(x))) + time
// projection, GN2's input. Everything else (GroupNorm statistics, SiLU inputs) is recomputed
// from x and h in backward: GroupNorm passes are cheap next to the convolutions.
typedef struct {
    float *h;
} resnet_acts;
void resnet_acts_free(resnet_acts *a);

// resnet_forward that also fills acts (allocating acts->h). out == NULL computes only the acts
// (gradient checkpointing: the recomputation runs exactly the forward's first half, so h is
// bit-identical to the one the full forward kept).
void resnet_forward_train(float *out, const float *x, const float *temb_silu, const resnet_block *rb, int N, int H,
                          int W, resnet_acts *acts);
// Accumulates (+=) dx (N, C_in, H, W), dtemb_silu (N, temb_dim) and the parameter gradients in
// `grad` (a resnet_block whose pointers are gradient buffers, NULL for frozen parameters; grad
// itself may be NULL). A frozen conv costs only its input-gradient GEMM. dx and dtemb_silu may
// be NULL. dout (N, C_out, H, W) = dL/dout; x and temb_silu as in the forward.
void resnet_backward(float *dx, float *dtemb_silu, resnet_block *grad, const float *dout, const float *x,
                     const float *temb_silu, const resnet_block *rb, const resnet_acts *acts, int N, int H, int W);

// dx (N, C, HW) += the gradient through a = SiLU(GroupNorm(x)) given da = dL/da; dgamma, dbeta
// (C) += theirs (each may be NULL). The normalized x is recomputed from x.
void groupnorm_silu_backward(float *dx, float *dgamma, float *dbeta, const float *da, const float *x,
                             const float *gamma, const float *beta, int N, int C, int HW, int G, float eps);
