// Element-wise activations and GEGLU. Backward functions accumulate (+=) into dx.
#pragma once
#include <stdint.h>

void silu_forward(float *out, const float *x, int64_t n);            // x·σ(x); out may equal x
void silu_backward(float *dx, const float *dout, const float *x, int64_t n);
void gelu_forward(float *out, const float *x, int64_t n);            // exact (erf) GELU
void gelu_backward(float *dx, const float *dout, const float *x, int64_t n);
void quick_gelu_forward(float *out, const float *x, int64_t n);      // x·σ(1.702·x), CLIP ViT-L
void quick_gelu_backward(float *dx, const float *dout, const float *x, int64_t n);

// diffusers GEGLU after its projection: h (M, 2F) = [a | gate] → out (M, F) = a · gelu(gate).
void geglu_forward(float *out, const float *h, int M, int F);
void geglu_backward(float *dh, const float *dout, const float *h, int M, int F);
