// Double-precision reference ops for the tests: direct loops, no blocking or tiling, so they
// are easy to read and check. Kernel, block and model tests compare against these and take
// finite differences of them.
#pragma once
#include "engine/kernels/conv2d.h"

// y (M, d_out) = x (M, d_in)·wᵀ + b; w (d_out, d_in), b (d_out) or NULL.
void ref_linear(double *y, const double *x, const double *w, const double *b, int M, int d_in, int d_out);
double ref_silu(double x);
double ref_gelu(double x);   // exact (erf) GELU
// y (N, C, HW) = GroupNorm(x) (+ SiLU when silu), G groups.
void ref_groupnorm(double *y, const double *x, const double *gamma, const double *beta, int N, int C, int HW, int G,
                   double eps, int silu);
// y (M, C) = LayerNorm over each row.
void ref_layernorm(double *y, const double *x, const double *gamma, const double *beta, int M, int C, double eps);
// out (N, C_out, H_out, W_out) = conv(x, w) + b for any kernel, stride and padding; b may be NULL.
void ref_conv2d(double *out, const double *x, const double *w, const double *b, conv2d_shape s);
// out (B, Lq, H·Dh) = softmax(q·kᵀ·scale [+ causal mask])·v per batch and head.
void ref_attention(double *out, const double *q, const double *k, const double *v, int B, int Lq, int Lk, int H, int Dh,
                   double scale, int causal);
