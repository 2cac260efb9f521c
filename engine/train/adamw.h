// AdamW exactly as torch.optim.AdamW (amsgrad off, maximize off) on flat f32 blocks:
//   p ← p·(1 − lr·wd);  m ← β1·m + (1−β1)·g;  v ← β2·v + (1−β2)·g²
//   p ← p − (lr/(1−β1^K))·m / (√v/√(1−β2^K) + ε)           K = the 1-based step number
#pragma once
#include <stdint.h>

typedef struct {
    double beta1, beta2, eps, weight_decay;
} adamw_opts;

// One update of the n parameters p with gradients g and moments m, v (n each), step K >= 1.
void adamw_step(float *p, const float *g, float *m, float *v, int64_t n, int64_t K, double lr, const adamw_opts *o);
