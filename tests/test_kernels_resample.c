// Nearest 2× upsampling: every output pixel equals its source; backward sums the 4 children.
#include <stdlib.h>

#include "engine/kernels/resample.h"
#include "tests/kernel_check.h"

TEST(upsample_nearest2x_forward_backward) {
    int N = 2, C = 3, H = 5, W = 7;
    int64_t n_in = (int64_t)N * C * H * W, n_out = 4 * n_in;
    float *x = rand_f32(n_in, 41, -1, 1), *y = malloc(sizeof(float) * n_out);
    upsample_nearest2x_forward(y, x, N, C, H, W);
    int bad = 0;
    for (int p = 0; p < N * C; p++)
        for (int i = 0; i < 2 * H; i++)
            for (int j = 0; j < 2 * W; j++)
                bad += y[(int64_t)p * 4 * H * W + i * 2 * W + j] != x[(int64_t)p * H * W + (i / 2) * W + j / 2];
    CHECK_EQ_INT(bad, 0);
    // L = Σ y·R is linear, so the gradient is exact: dx[i] = Σ of R over the 4 children.
    float *R = rand_f32(n_out, 42, -1, 1), *dx = const_f32(n_in, 0.5f);
    upsample_nearest2x_backward(dx, R, N, C, H, W);
    double *want = calloc(n_in, sizeof(double));
    for (int p = 0; p < N * C; p++)
        for (int i = 0; i < 2 * H; i++)
            for (int j = 0; j < 2 * W; j++)
                want[(int64_t)p * H * W + (i / 2) * W + j / 2] += R[(int64_t)p * 4 * H * W + i * 2 * W + j];
    check_grad("upsample backward", dx, 0.5f, want, n_in, 1e-6);
    free(x), free(y), free(R), free(dx), free(want);
}
