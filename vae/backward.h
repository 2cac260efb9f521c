// VAE training: the backward of every AutoencoderKL layer (llm.c-style forward/backward pairs on
// plain arrays), a tape that records an encoder or decoder training forward, gradient mirrors,
// and the posterior's reparameterization and KL term.
//
// A gradient mirror is a vae_model of the same structure whose parameter pointers are f32
// gradient buffers (vae_grads_new), as the UNet's (unet_grads_new). A NULL mirror freezes all
// weights: the backward then computes only the input gradients.
#pragma once
#include <stdint.h>

#include "vae/vae.h"

// ---- pieces (each a forward and its backward; the backward accumulates, +=, into every
// gradient it is given, and any gradient pointer may be NULL)

// Downsample2D(padding=0): pad right and bottom by one, then a 3×3 stride-2 conv.
// out (N, C_out, ceil(H/2), ceil(W/2)) from x (N, C_in, H, W); *Ho, *Wo receive the size.
void vae_down_forward(float *out, const float *x, const vae_conv *cv, int N, int H, int W, int *Ho, int *Wo);
void vae_down_backward(float *dx, vae_conv *g, const float *dout, const float *x, const vae_conv *cv, int N, int H,
                       int W);
// Upsample2D: nearest 2× then a 3×3 conv. out (N, C_out, 2H, 2W) from x (N, C_in, H, W).
void vae_up_forward(float *out, const float *x, const vae_conv *cv, int N, int H, int W);
void vae_up_backward(float *dx, vae_conv *g, const float *dout, const float *x, const vae_conv *cv, int N, int H,
                     int W);
// A conv with stride 1 and padding k/2 (conv_in, conv_out, quant convs). out (N, C_out, H, W).
void vae_conv_forward(float *out, const float *x, const vae_conv *cv, int N, int H, int W);
void vae_conv_backward(float *dx, vae_conv *g, const float *dout, const float *x, const vae_conv *cv, int N, int H,
                       int W);
// The mid-block attention: out (N, C, HW) = x + attention (vae_attn_forward computes the same
// in place). The backward recomputes the forward's intermediates from x.
void vae_attn_backward(float *dx, vae_attn *g, const float *dout, const float *x, const vae_attn *a, int N, int HW);
// conv_norm_out + SiLU + conv_out: out (N, C_out, H, W) from x (N, C, H, W).
void vae_head_forward(float *out, const float *x, const vae_coder *cd, const vae_config *c, int N, int H, int W);
void vae_head_backward(float *dx, vae_coder *g, const float *dout, const float *x, const vae_coder *cd,
                       const vae_config *c, int N, int H, int W);

// ---- posterior (the reparameterization) and its KL term
// From moments (N, 2L, h, w) = [mean | logvar] and eps (N, L, h, w):
//   sample = mean + exp(logvar/2)·eps, logvar clamped to [-30, 20] as diffusers does.
// dmoments (N, 2L, h, w) += the gradient through the sample given dsample (may be NULL), plus
// kl_weight times the gradient of KL = Σ 0.5·(mean² + exp(logvar) − 1 − logvar) / kl_norm
// (diffusers' DiagonalGaussianDistribution.kl summed, divided by kl_norm). Returns that KL.
// The clamp passes no gradient to logvar outside [-30, 20] (torch.clamp's).
double vae_posterior_backward(const vae_config *c, float *dmoments, const float *dsample, const float *moments,
                              const float *eps, int N, int h, int w, double kl_weight, double kl_norm);

// ---- gradient mirrors
vae_model *vae_grads_new(const vae_model *m);   // zeroed buffers for every parameter of m's parts
void vae_grads_zero(vae_model *g);

// ---- the tape: a training forward of the encoder or the decoder
typedef struct vae_tape vae_tape;
// moments (N, 2L, H/f, W/f) = vae_encode(image) (the same values) and its tape. image must stay
// alive and unchanged until the tape is freed. g (may be NULL) is the mirror the backward fills.
vae_tape *vae_encode_train(const vae_model *m, vae_model *g, float *moments, const float *image, int N, int H, int W);
// image (N, out, f·h, f·w) = vae_decode(latent) and its tape; latent must stay alive.
vae_tape *vae_decode_train(const vae_model *m, vae_model *g, float *image, const float *latent, int N, int h, int w);
// From dout = dL/d(output): dx += dL/d(input) (NULL: not needed; the first layer then skips its
// input-gradient GEMM), the mirror's buffers += the parameter gradients. Frees the activations:
// call once per tape. 0, or -1 with sl_error for a used tape.
int vae_tape_backward(vae_tape *t, float *dx, const float *dout);
void vae_tape_free(vae_tape *t);
