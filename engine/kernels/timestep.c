// Sinusoidal timestep embedding, step for step as diffusers' get_timestep_embedding does it in f32:
// exponent = (f32)(-ln 10000) · i / (half − shift); freq = exp(exponent); arg = t · freq.
#include "engine/kernels/timestep.h"

#include <math.h>
#include <stdint.h>

void timestep_embedding(float *out, const float *t, int N, int dim, int flip_sin_to_cos, float freq_shift) {
    int half = dim / 2;
    const float neg_log_period = (float)(-log(10000.0));   // the Python double, rounded to f32 as torch does
    const float denom = (float)half - freq_shift;
    for (int n = 0; n < N; n++) {
        float *o = out + (int64_t)n * dim;   // (dim)
        for (int i = 0; i < half; i++) {
            float e = neg_log_period * (float)i;
            e = e / denom;
            float arg = t[n] * expf(e);
            float s = sinf(arg), c = cosf(arg);
            o[i] = flip_sin_to_cos ? c : s;
            o[half + i] = flip_sin_to_cos ? s : c;
        }
        if (dim % 2) o[dim - 1] = 0.0f;
    }
}
