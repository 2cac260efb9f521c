#include "engine/train/adamw.h"

#include <math.h>

void adamw_step(float *p, const float *g, float *m, float *v, int64_t n, int64_t K, double lr, const adamw_opts *o) {
    // the scalars as torch forms them (Python floats, i.e. doubles), then applied in f32
    const float decay = (float)(1.0 - lr * o->weight_decay);
    const float b1 = (float)o->beta1, b2 = (float)o->beta2;
    const float c1 = (float)(1.0 - o->beta1), c2 = (float)(1.0 - o->beta2);
    const double bc1 = 1.0 - pow(o->beta1, (double)K), bc2 = 1.0 - pow(o->beta2, (double)K);
    const float step_size = (float)(lr / bc1), bc2_sqrt = (float)sqrt(bc2), eps = (float)o->eps;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float gi = g[i];
        float pi = p[i] * decay;
        float mi = m[i] * b1 + gi * c1;
        float vi = v[i] * b2 + gi * gi * c2;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        m[i] = mi;
        v[i] = vi;
        p[i] = pi - step_size * (mi / denom);
    }
}
