// bench_unet_work: what one UNet forward costs in GEMM work, and how fast plain sgemm runs the
// same shapes on this machine. Also writes random inputs for `singlora forward unet` (and a
// target for `singlora backward unet`).
//   build/bench_unet_work --config DIR --batch N --size H W --context L [--inputs FILE] [--no-sgemm]
// Prints "flops <total>" and, unless --no-sgemm, "sgemm_gflops <rate>" where the rate is the
// UNet's GEMM FLOPs divided by the time sgemm takes for all of them (each distinct shape timed
// once, weighted by how often the forward runs it); the same split into conv/linear shapes and
// attention shapes (whole (HW × HW × head_dim) products per head), and a 2048³ reference; "sgemm"
// is gemm() with its active kernel (gemm_kernel names it).
#include "engine/kernels/gemm.h"
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "tools/args.h"
#include "unet/unet.h"
#include "tools/bench/unet_gemm_shapes.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

// Seconds sgemm needs for one (M, N, K) product (best of a few runs, at least ~0.2 s of work).
static double time_sgemm(int64_t M, int64_t N, int64_t K) {
    float *A = sl_alloc_f32(M * K), *B = sl_alloc_f32(K * N), *C = sl_alloc_f32(M * N);
    for (int64_t i = 0; i < M * K; i++) A[i] = (float)((i * 7) % 13) * 0.01f;
    for (int64_t i = 0; i < K * N; i++) B[i] = (float)((i * 5) % 11) * 0.01f;
    double flops = 2.0 * (double)M * (double)N * (double)K, best = INFINITY;
    int reps = (int)fmin(20, fmax(2, 2e9 / flops));
    for (int r = 0; r < reps; r++) {
        double t0 = now_s();
        gemm(GEMM_N, GEMM_N, (int)M, (int)N, (int)K, 1.0f, A, (int)K, B, (int)N, 0.0f, C, (int)N);
        best = fmin(best, now_s() - t0);
    }
    sl_free_aligned(A);
    sl_free_aligned(B);
    sl_free_aligned(C);
    return best;
}

static void write_inputs(const char *path, const unet_config *c, int N, int h, int w, int L) {
    int64_t nx = (int64_t)N * c->in_channels * h * w, nc = (int64_t)N * L * c->cross_attention_dim;
    int64_t no = (int64_t)N * c->out_channels * h * w;
    float *x = sl_alloc_f32(nx), *ctx = sl_alloc_f32(nc), *t = sl_alloc_f32(N), *target = sl_alloc_f32(no);
    uint64_t s = 12345;
    for (int64_t i = 0; i < nx + nc + no; i++) {   // roughly unit-variance noise
        double u = 0;
        for (int k = 0; k < 4; k++) {
            s = s * 6364136223846793005ull + 1442695040888963407ull;
            u += (double)(s >> 11) * 0x1p-53;
        }
        float v = (float)((u - 2.0) * 1.7320508);
        if (i < nx) x[i] = v;
        else if (i < nx + nc) ctx[i - nx] = v;
        else target[i - nx - nc] = v;   // for `singlora backward unet`
    }
    for (int n = 0; n < N; n++) t[n] = (float)(999 - (n * 997) % 1000);
    st_writer *wr = st_writer_new();
    st_writer_add(wr, "x", DT_F32, 4, (int64_t[]){N, c->in_channels, h, w}, x);
    st_writer_add(wr, "t", DT_F32, 1, (int64_t[]){N}, t);
    st_writer_add(wr, "context", DT_F32, 3, (int64_t[]){N, L, c->cross_attention_dim}, ctx);
    st_writer_add(wr, "target", DT_F32, 4, (int64_t[]){N, c->out_channels, h, w}, target);
    if (st_writer_save(wr, path) != 0) sl_fail();
    st_writer_free(wr);
    sl_free_aligned(x);
    sl_free_aligned(ctx);
    sl_free_aligned(t);
    sl_free_aligned(target);
}

int main(int argc, char **argv) {
    const char *dir = NULL, *inputs = NULL, *v;
    int N = 2, h = 64, w = 64, L = 77, sgemm = 1;
    for (int i = 1; i < argc; i++) {
        if (arg_value(argc, argv, &i, "--config", &dir)) {}
        else if (arg_value(argc, argv, &i, "--inputs", &inputs)) {}
        else if (arg_value(argc, argv, &i, "--batch", &v)) N = (int)arg_int_range("--batch", v, 1, 4096);
        else if (arg_value(argc, argv, &i, "--context", &v)) L = (int)arg_int_range("--context", v, 1, 4096);
        else if (arg_value(argc, argv, &i, "--size", &v) && i + 1 < argc) {
            h = (int)arg_int_range("--size", v, 1, 8192);
            w = (int)arg_int_range("--size", argv[++i], 1, 8192);
        } else if (!strcmp(argv[i], "--no-sgemm")) sgemm = 0;
        else arg_unknown("bench_unet_work", argv[i]);
    }
    if (!dir) sl_die(NULL, "usage: bench_unet_work --config DIR [--batch N] [--size H W] [--context L] [--inputs FILE] [--no-sgemm]");
    unet_config cfg;
    if (unet_config_load_dir(&cfg, dir) != 0) sl_fail();
    if (inputs) write_inputs(inputs, &cfg, N, h, w, L);
    unet_model *m = unet_model_new(&cfg);
    count_unet(m, N, h, w, L);
    unet_free(m);
    printf("flops %.6e\n", total_flops);
    printf("attention_flops %.6e\n", attn_flops);
    printf("gemm_shapes %d\n", n_shapes);
    printf("gemm_kernel %s\n", gemm_kernel_name(gemm_active_kernel()));
    printf("openblas_core %s\n", openblas_get_corename());
    if (sgemm) {
        double t[2] = {0, 0};   // conv/linear shapes, attention shapes
        for (int i = 0; i < n_shapes; i++)
            t[shapes[i].attn] += time_sgemm(shapes[i].M, shapes[i].N, shapes[i].K) * (double)shapes[i].count;
        printf("sgemm_seconds %.3f\n", t[0] + t[1]);
        printf("sgemm_gflops %.1f\n", total_flops / (t[0] + t[1]) * 1e-9);
        printf("sgemm_convlin_gflops %.1f\n", (total_flops - attn_flops) / t[0] * 1e-9);
        printf("sgemm_attention_gflops %.1f\n", attn_flops / t[1] * 1e-9);
        printf("sgemm_square_gflops %.1f\n", 2.0 * 2048.0 * 2048.0 * 2048.0 / time_sgemm(2048, 2048, 2048) * 1e-9);
    }
    return 0;
}
