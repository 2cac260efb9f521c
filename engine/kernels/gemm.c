// gemm(): picks the kernel once (cpuid, SINGLORA_GEMM) and forwards. The kernels live in
// gemm_avx512.c (own AVX-512 f32 and bf16) and here (OpenBLAS).
#include "engine/kernels/gemm.h"

#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/core/bf16_weights.h"
#include "engine/core/error.h"
#include "engine/core/profile.h"

void gemm_openblas(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc) {
    cblas_sgemm(CblasRowMajor, ta == GEMM_T ? CblasTrans : CblasNoTrans, tb == GEMM_T ? CblasTrans : CblasNoTrans, M, N,
                K, alpha, A, lda, B, ldb, beta, C, ldc);
}

const char *gemm_openblas_core(void) { return openblas_get_corename(); }

void gemm_openblas_fix_core(char **argv) {
    const char *set = getenv("OPENBLAS_CORETYPE");
    if ((set && *set) || strcmp(openblas_get_corename(), "Prescott") != 0) return;
    if (!__builtin_cpu_supports("avx2") || !__builtin_cpu_supports("fma")) return;   // Prescott is right
    if (setenv("OPENBLAS_CORETYPE", "Haswell", 1) != 0) return;
    execv("/proc/self/exe", argv);   // returns only on failure: go on with the kernels we have
}

// -1: not chosen yet; otherwise a gemm_kernel. Written once per process (first gemm() or a
// gemm_set_kernel), read by every call: atomics keep concurrent first calls well defined.
static _Atomic int active_kernel = -1;

static int default_kernel(void) {
    const char *env = getenv("SINGLORA_GEMM");
    if (env && *env) {
        if (!strcmp(env, "openblas")) return GEMM_KERNEL_OPENBLAS;
        if (!strcmp(env, "avx512")) {
            if (gemm_avx512_supported()) return GEMM_KERNEL_AVX512;
            fprintf(stderr, "singlora: SINGLORA_GEMM=avx512 but this CPU has no AVX-512F; using OpenBLAS\n");
            return GEMM_KERNEL_OPENBLAS;
        }
        fprintf(stderr, "singlora: SINGLORA_GEMM=%s is not openblas or avx512; ignored\n", env);
    }
    // OpenBLAS stays the default: with the own kernel's summation order the trainer's LoRA
    // fixture (tests/test_train_step.c) ends at 1.06e-3 x max|tensor|, just past its 1e-3 limit
    // (AdamW turns round-off in near-zero gradients into lr-sized steps); opt in with avx512.
    return GEMM_KERNEL_OPENBLAS;
}

gemm_kernel gemm_active_kernel(void) {
    int k = active_kernel;
    if (k < 0) {
        int expected = -1, chosen = default_kernel();
        k = __atomic_compare_exchange_n((int *)&active_kernel, &expected, chosen, 0, __ATOMIC_SEQ_CST,
                                        __ATOMIC_SEQ_CST)
                ? chosen
                : expected;
    }
    return (gemm_kernel)k;
}

int gemm_set_kernel(gemm_kernel k) {
    if (k == GEMM_KERNEL_AVX512 && !gemm_avx512_supported()) return -1;
    if (k != GEMM_KERNEL_AVX512 && k != GEMM_KERNEL_OPENBLAS) return -1;
    active_kernel = (int)k;
    return 0;
}

const char *gemm_kernel_name(gemm_kernel k) { return k == GEMM_KERNEL_AVX512 ? "avx512" : "openblas"; }

static _Atomic int active_precision = GEMM_FP32;

gemm_precision gemm_active_precision(void) { return (gemm_precision)active_precision; }

int gemm_set_precision(gemm_precision p) {
    if (p == GEMM_BF16 && !gemm_bf16_supported()) return -1;
    if (p != GEMM_BF16 && p != GEMM_FP32) return -1;
    active_precision = (int)p;
    return 0;
}

const char *gemm_precision_name(gemm_precision p) { return p == GEMM_BF16 ? "bf16" : "fp32"; }

int gemm_precision_parse(const char *s, gemm_precision *p) {
    static const struct { const char *name; gemm_precision p; } names[] = {
        {"fp32", GEMM_FP32}, {"f32", GEMM_FP32}, {"float32", GEMM_FP32},
        {"bf16", GEMM_BF16}, {"bfloat16", GEMM_BF16},
    };
    for (unsigned i = 0; s && i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(s, names[i].name)) return *p = names[i].p, 0;
    return -1;
}

int gemm_select_precision(const char *what, const char *name) {
    gemm_precision p;
    if (gemm_precision_parse(name, &p) != 0)
        return sl_error(NULL, "%s: '%s' is not a precision (fp32 or bf16)", what, name);
    if (gemm_set_precision(p) != 0)
        return sl_error(NULL, "%s bf16: this CPU has no AVX512_BF16 (the bf16 GEMM kernel needs it); use fp32", what);
    return 0;
}

// A weight held in bf16 (engine/core/bf16_weights.h) has no f32 data: a product with one runs
// the bf16 kernel whatever the precision (weights are held only under --precision bf16).
static void gemm_run(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                     int ldb, float beta, float *C, int ldc) {
    const uint16_t *A16 = bf16_weights_find(A), *B16 = bf16_weights_find(B);
    if (A16 || B16)
        gemm_bf16_held(ta, tb, M, N, K, alpha, A, A16, lda, B, B16, ldb, beta, C, ldc, gemm_bf16_uses_amx());
    else if (active_precision == GEMM_BF16)
        gemm_bf16(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else if (gemm_active_kernel() == GEMM_KERNEL_AVX512)
        gemm_avx512(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    else
        gemm_openblas(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

// A GEMM inside another op (a convolution, a Linear) counts as that op in --profile.
void gemm(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
          float beta, float *C, int ldc) {
    PROFILED(PROF_GEMM, 0, 2.0 * M * (double)N * K, gemm_run(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc));
}

void gemm_pack_b(gemm_packed_b *pb, gemm_op tb, int K, int N, const float *B, int ldb) {
    *pb = (gemm_packed_b){tb, K, N, B, ldb, NULL};
    const uint16_t *B16 = bf16_weights_find(B);
    if ((active_precision == GEMM_BF16 || B16) && K > 0 && N > 0 && gemm_bf16_uses_amx())
        pb->panels = gemm_amx_pack_b(tb, K, N, B, B16, ldb);
}

void gemm_with_packed_b(gemm_op ta, int M, float alpha, const float *A, int lda, const gemm_packed_b *pb, float beta,
                        float *C, int ldc) {
    if (!pb->panels) {
        gemm(ta, pb->tb, M, pb->N, pb->K, alpha, A, lda, pb->B, pb->ldb, beta, C, ldc);
        return;
    }
    PROFILED(PROF_GEMM, 0, 2.0 * M * (double)pb->N * pb->K,
             gemm_amx_packed_b(ta, M, pb->N, pb->K, alpha, A, bf16_weights_find(A), lda, pb->panels, beta, C, ldc));
}

void gemm_packed_b_free(gemm_packed_b *pb) {
    free(pb->panels);
    pb->panels = NULL;
}

void gemm_pack_a(gemm_packed_a *pa, gemm_op ta, int M, int K, const float *A, int lda) {
    *pa = (gemm_packed_a){ta, M, K, A, lda, NULL};
    const uint16_t *A16 = bf16_weights_find(A);
    if ((active_precision == GEMM_BF16 || A16) && M > 0 && K > 0 && gemm_bf16_uses_amx())
        pa->panels = gemm_amx_pack_a(ta, M, K, A, A16, lda);
}

void gemm_with_packed_a(const gemm_packed_a *pa, gemm_op tb, int N, float alpha, const float *B, int ldb, float beta,
                        float *C, int ldc) {
    if (!pa->panels) {
        gemm(pa->ta, tb, pa->M, N, pa->K, alpha, pa->A, pa->lda, B, ldb, beta, C, ldc);
        return;
    }
    PROFILED(PROF_GEMM, 0, 2.0 * pa->M * (double)N * pa->K,
             gemm_amx_packed_a(pa->panels, tb, pa->M, N, pa->K, alpha, B, bf16_weights_find(B), ldb, beta, C, ldc));
}

void gemm_packed_a_free(gemm_packed_a *pa) {
    free(pa->panels);
    pa->panels = NULL;
}
