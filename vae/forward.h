// The VAE forward split into its stages (used by vae_encode/vae_decode and by the tiling).
#pragma once
#include "vae/vae.h"

// Encoder conv_in + levels: image (N, in, H, W) -> features (N, C_last, h, w), new buffer.
float *vae_encoder_levels(const vae_model *m, const float *image, int N, int H, int W, int *h, int *w);
// Encoder mid block, norm_out, conv_out, quant_conv: feat (consumed, freed) -> moments (N, 2L, h, w).
void vae_encoder_head(const vae_model *m, float *moments, float *feat, int N, int h, int w);
// post_quant_conv, decoder conv_in, mid block: latent (N, L, h, w) -> features (N, C_last, h, w), new buffer.
float *vae_decoder_head(const vae_model *m, const float *latent, int N, int h, int w);
// Decoder levels, norm_out, conv_out: feat (consumed, freed) -> image (N, out, f·h, f·w).
void vae_decoder_levels(const vae_model *m, float *image, float *feat, int N, int h, int w);
// x (N, C, HW) += mid-block attention of x.
void vae_attn_forward(float *x, const vae_attn *a, int N, int HW);
