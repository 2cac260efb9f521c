// GroupNorm over (N, C, HW) and LayerNorm over the last dim of (M, C).
#pragma once

// out (N, C, HW); mean, rstd (N, G) are saved for backward (may be NULL). When silu is set,
// out = SiLU(groupnorm(x)) (the UNet/VAE resnet pattern), fused in one pass.
void groupnorm_forward(float *out, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                       int N, int C, int HW, int G, float eps, int silu);
// Gradient of the plain GroupNorm (no SiLU): accumulates into dx, dgamma, dbeta (each may be NULL).
void groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                        const float *mean, const float *rstd, const float *gamma, int N, int C, int HW, int G);

// out (M, C) = LayerNorm(x) · gamma + beta; mean, rstd (M) saved (may be NULL).
void layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                       int M, int C, float eps);
void layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                        const float *mean, const float *rstd, const float *gamma, int M, int C);
