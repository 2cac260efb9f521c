// bench_gemm: GFLOP/s of the own AVX-512 kernel (f32, and bf16 where the CPU has AVX512_BF16:
// vdpbf16ps, and AMX tiles where the CPU and OS offer them)
// against OpenBLAS on the GEMMs one SD 1.5 UNet forward runs, called the way the engine calls
// them: convs as gemm(N, N) weights × im2col band (the col buffer's 4 Mi-float limit), linears as
// gemm(N, T) x × Wᵀ on all threads; attention per query tile inside a parallel region (every
// thread its own single-threaded scores gemm(N, T) Q × Kᵀ and values gemm(N, N) P × V).
//   build/bench_gemm --config DIR [--batch N] [--size H W] [--context L] [--reps R] [--clock cpu|wall]
// Each shape: the kernels interleaved, R rounds, best time of each (load on the cores makes any
// single time noisy; ratios within one run are the figure to read). Totals weight every shape by
// how often the forward runs it.
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/kernels/gemm.h"
#include <cblas.h>
#include "tools/args.h"
#include "tools/bench/unet_gemm_shapes.h"

// --clock cpu (default): process CPU seconds divided by the thread count, i.e. the time the
// work would take with the cores to itself; other processes' load then mostly drops out (spinning
// at barriers still counts, so poor parallel efficiency still shows); attention's per-thread calls
// count the slowest thread's own CPU seconds. --clock wall: elapsed time.
static int use_cpu_clock = 1;
static int clock_threads = 1;
static double now_s(void) {
    struct timespec ts;
    clock_gettime(use_cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    double t = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    return use_cpu_clock ? t / clock_threads : t;
}

typedef void (*gemm_fn)(gemm_op, gemm_op, int, int, int, float, const float *, int, const float *, int, float,
                        float *, int);
enum { K_OPENBLAS, K_AVX512, K_BF16, K_AMX, N_KERNELS };
static const char *kernel_names[N_KERNELS] = {"openblas", "avx512", "bf16", "amx"};
static gemm_fn kernels[N_KERNELS] = {gemm_openblas, gemm_avx512, gemm_bf16_avx512, gemm_bf16_amx};

typedef struct {
    int M, N, K;
    gemm_op ta, tb;
    int per_thread;   // attention: every thread runs its own copy single-threaded
    double count;     // calls per forward (per thread's copy counted once each)
} bench_case;

// Seconds for one call of kernel k (best of the rounds it is given); one buffer set per thread.
typedef struct { float *A, *B, *C; } operands;

static double time_once(int k, const bench_case *c, operands *ops) {
    int lda = c->ta == GEMM_N ? c->K : c->M, ldb = c->tb == GEMM_N ? c->N : c->K;
    if (c->per_thread) {   // the slowest thread's own time (its CPU seconds with --clock cpu)
        double slowest = 0;
#pragma omp parallel reduction(max : slowest)
        {
            operands *o = &ops[omp_get_thread_num()];
            struct timespec a, b;
            clockid_t id = use_cpu_clock ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
            clock_gettime(id, &a);
            kernels[k](c->ta, c->tb, c->M, c->N, c->K, 1.0f, o->A, lda, o->B, ldb, 0.0f, o->C, c->N);
            clock_gettime(id, &b);
            slowest = (double)(b.tv_sec - a.tv_sec) + 1e-9 * (double)(b.tv_nsec - a.tv_nsec);
        }
        return slowest;
    }
    double t0 = now_s();
    {
        kernels[k](c->ta, c->tb, c->M, c->N, c->K, 1.0f, ops[0].A, lda, ops[0].B, ldb, 0.0f, ops[0].C, c->N);
    }
    return now_s() - t0;
}

int main(int argc, char **argv) {
    const char *dir = NULL, *v;
    int N = 2, h = 64, w = 64, L = 77, reps = 5;
    for (int i = 1; i < argc; i++) {
        if (arg_value(argc, argv, &i, "--config", &dir)) {}
        else if (arg_value(argc, argv, &i, "--batch", &v)) N = (int)arg_int_range("--batch", v, 1, 4096);
        else if (arg_value(argc, argv, &i, "--context", &v)) L = (int)arg_int_range("--context", v, 1, 4096);
        else if (arg_value(argc, argv, &i, "--reps", &v)) reps = (int)arg_int_range("--reps", v, 1, 1000000);
        else if (arg_value(argc, argv, &i, "--clock", &v)) {
            if (strcmp(v, "cpu") && strcmp(v, "wall")) sl_die(NULL, "bench_gemm: --clock cpu|wall, not %s", v);
            use_cpu_clock = !strcmp(v, "cpu");
        }
        else if (arg_value(argc, argv, &i, "--size", &v) && i + 1 < argc) {
            h = (int)arg_int_range("--size", v, 1, 8192);
            w = (int)arg_int_range("--size", argv[++i], 1, 8192);
        } else arg_unknown("bench_gemm", argv[i]);
    }
    if (!dir) sl_die(NULL, "usage: bench_gemm --config DIR [--batch N] [--size H W] [--context L] [--reps R] [--clock cpu|wall]");
    unet_config cfg;
    if (unet_config_load_dir(&cfg, dir) != 0) sl_fail();
    unet_model *m = unet_model_new(&cfg);
    count_unet(m, N, h, w, L);
    unet_free(m);
    int n_kernels = gemm_amx_supported() ? 4 : gemm_bf16_supported() ? 3 : 2, threads = omp_get_max_threads();
    clock_threads = threads;

    // The engine's calls for each shape.
    bench_case cases[512];
    int n_cases = 0;
    for (int i = 0; i < n_shapes; i++) {
        const gemm_shape *s = &shapes[i];
        bench_case c = {(int)s->M, (int)s->N, (int)s->K, GEMM_N, GEMM_N, 0, (double)s->count};
        if (s->kind == KIND_CONV) {   // im2col bands of output rows (square outputs here)
            int Wo = (int)lround(sqrt((double)s->N)), Ho = (int)(s->N / Wo);
            int64_t nb = (s->K * s->N + ((int64_t)4 << 20) - 1) / ((int64_t)4 << 20);
            if (nb > Ho) nb = Ho;
            int rows = (int)((Ho + nb - 1) / nb);
            c.N = rows * Wo;
            c.count = (double)s->count * (double)s->N / c.N;
        } else if (s->kind == KIND_LINEAR) {
            c.tb = GEMM_T;
        } else {   // attention per query tile, as attention.c tiles it
            int Lk = s->kind == KIND_SCORES ? (int)s->N : (int)s->K;
            int tq = Lk > 0 ? (256 * 1024) / Lk : 256;
            tq = tq > 256 ? 256 : tq < 16 ? 16 : tq;
            if (tq > s->M) tq = (int)s->M;
            c.count = (double)s->count * (double)s->M / tq / threads;   // threads run tiles side by side
            c.M = tq;
            c.per_thread = 1;
            if (s->kind == KIND_SCORES) c.tb = GEMM_T;
        }
        cases[n_cases++] = c;
    }

    double load0 = 0;
    FILE *la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf", &load0) != 1) load0 = 0;
        fclose(la);
    }
    printf("GEMMs of one UNet forward (batch %d, %dx%d, context %d), %d threads, best of %d interleaved rounds,\n"
           "OpenBLAS core %s (OPENBLAS_CORETYPE=%s), %s\n",
           N, h, w, L, threads, reps, openblas_get_corename(), getenv("OPENBLAS_CORETYPE") ? getenv("OPENBLAS_CORETYPE") : "unset",
           use_cpu_clock ? "CPU time / threads" : "wall time");
    printf("  %-7s %5s %5s %5s %2s %8s |", "kind", "M", "N", "K", "op", "calls");
    for (int k = 0; k < n_kernels; k++) printf(" %9s", kernel_names[k]);
    printf(" | avx512/openblas%s%s\n", n_kernels > 2 ? "  bf16/openblas" : "", n_kernels > 3 ? "  amx/openblas" : "");
    double total[N_KERNELS] = {0}, flops_total = 0;
    static const char *kind_names[] = {"conv", "linear", "scores", "values"};
    for (int i = 0; i < n_cases; i++) {
        bench_case *c = &cases[i];
        int copies = c->per_thread ? threads : 1;
        int64_t na = (int64_t)c->M * c->K, nbf = (int64_t)c->K * c->N, nc = (int64_t)c->M * c->N;
        operands ops[64];
        for (int t = 0; t < copies && t < 64; t++) {
            ops[t].A = sl_alloc_f32(na);
            ops[t].B = sl_alloc_f32(nbf);
            ops[t].C = sl_alloc_f32(nc);
            for (int64_t j = 0; j < na; j++) ops[t].A[j] = (float)((j * 7) % 13) * 0.01f - 0.06f;
            for (int64_t j = 0; j < nbf; j++) ops[t].B[j] = (float)((j * 5) % 11) * 0.01f - 0.05f;
        }
        double flops = 2.0 * c->M * (double)c->N * c->K * copies;
        int r = (int)fmin(reps * 4, fmax(reps, 4e9 / flops / n_kernels));
        double best[N_KERNELS];
        for (int k = 0; k < n_kernels; k++) best[k] = INFINITY;
        for (int round = 0; round < r; round++)
            for (int k = 0; k < n_kernels; k++) best[k] = fmin(best[k], time_once(k, c, ops));
        for (int t = 0; t < copies && t < 64; t++) {
            sl_free_aligned(ops[t].A);
            sl_free_aligned(ops[t].B);
            sl_free_aligned(ops[t].C);
        }
        printf("  %-7s %5d %5d %5d %c%c %8.0f |", kind_names[shapes[i].kind], c->M, c->N, c->K,
               c->ta == GEMM_N ? 'N' : 'T', c->tb == GEMM_N ? 'N' : 'T', c->count);
        for (int k = 0; k < n_kernels; k++) {
            printf(" %9.1f", flops / best[k] * 1e-9);
            total[k] += best[k] * c->count;
        }
        printf(" | %6.2f", best[K_OPENBLAS] / best[K_AVX512]);
        if (n_kernels > 2) printf("          %6.2f", best[K_OPENBLAS] / best[K_BF16]);
        if (n_kernels > 3) printf("        %6.2f", best[K_OPENBLAS] / best[K_AMX]);
        printf("\n");
        flops_total += flops * c->count;
    }
    printf("  all shapes, weighted by calls per forward (GFLOP/s; seconds of GEMM per forward):\n");
    for (int k = 0; k < n_kernels; k++)
        printf("    %-9s %7.1f GFLOP/s  %6.2f s  (%.2f x openblas)\n", kernel_names[k], flops_total / total[k] * 1e-9,
               total[k], total[K_OPENBLAS] / total[k]);
    double load1 = 0;
    la = fopen("/proc/loadavg", "r");
    if (la) {
        if (fscanf(la, "%lf", &load1) != 1) load1 = 0;
        fclose(la);
    }
    printf("  load average %.2f before, %.2f after (other processes on the cores skew every figure)\n", load0, load1);
    return 0;
}
