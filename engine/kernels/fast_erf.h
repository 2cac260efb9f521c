// A vectorisable 1 + erf(x) for exact (erf) GELU: glibc's erff is a scalar call that keeps the
// GELU/GEGLU loops from vectorising. erfc(z) for z = |x| ≥ 0 is t·exp(−z² + P(t)) with
// t = 1/(1 + z/2) and the degree-9 Chebyshev-fitted P of Numerical Recipes (erfcc: fractional
// error < 1.2e-7 for every z), evaluated with fast_expf (~1e-7); then 1 + erf(x) = 2 − erfc(x)
// for x ≥ 0 and erfc(−x) for x < 0, so the negative tail keeps its relative accuracy (1 + erff
// rounds it away). Checked against double erf in tests/test_kernels_activations.c.
#pragma once
#include "engine/kernels/fast_exp.h"

static inline float fast_one_plus_erff(float x) {
    float z = x < 0.0f ? -x : x;
    float t = 1.0f / (1.0f + 0.5f * z);
    float p = 0.17087277f;
    p = p * t - 0.82215223f;
    p = p * t + 1.48851587f;
    p = p * t - 1.13520398f;
    p = p * t + 0.27886807f;
    p = p * t - 0.18628806f;
    p = p * t + 0.09678418f;
    p = p * t + 0.37409196f;
    p = p * t + 1.00002368f;
    p = p * t - 1.26551223f;
    float erfc = t * fast_expf(-z * z + p);
    return x >= 0.0f ? 2.0f - erfc : erfc;
}
