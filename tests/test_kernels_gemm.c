// gemm kernels (own AVX-512 f32, OpenBLAS, own bf16) against a double loop: odd shapes (M, N, K
// not multiples of the 12 × 32 tile, K across several K blocks), all four transposes, leading
// dimensions larger than the rows, alpha/beta, 1 and 2 threads; thread-count determinism.
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/dtype.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/kernels/gemm.h"
#include "tests/kernel_check.h"

typedef void (*gemm_fn)(gemm_op, gemm_op, int, int, int, float, const float *, int, const float *, int, float,
                        float *, int);

typedef struct { int M, N, K; } shape3;
// 1×1×1, below one tile, one exact tile, tile edges in M and N, K across 2 and 3 f32 K blocks
// (256 deep) and across bf16 blocks (512), tall-thin and short-wide.
// AMX's 32 × 32 blocks and 32-deep chunks: {32, 32, 32} exact, {33, 65, 97} one past each;
// {70, 1057, 65}: N across two 1024-column B blocks (AMX then packs each K block of A once).
static const shape3 shapes[] = {{1, 1, 1},    {3, 5, 7},     {12, 32, 16},  {13, 33, 17}, {25, 47, 300},
                                {37, 70, 513}, {5, 100, 1030}, {130, 20, 33}, {11, 17, 64}, {24, 64, 255},
                                {32, 32, 32},  {33, 65, 97},   {70, 1057, 65}};
#define N_SHAPES ((int)(sizeof shapes / sizeof shapes[0]))

static float round_bf16(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// Element (i, k) of op(A) in storage with leading dimension ld.
static float op_at(const float *X, gemm_op t, int ld, int r, int c) {
    return t == GEMM_N ? X[(int64_t)r * ld + c] : X[(int64_t)c * ld + r];
}

// want = alpha·op(A)·op(B) + beta·C0 in double; mag = |alpha|·Σ|a||b| + |beta·C0| (the scale of
// the rounding error). bf16: operands rounded to bf16 first (what the kernel is specified to do).
static void reference(int bf16, gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, const float *C0, int ldc, double *want, double *mag) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) {
            double s = 0, m = 0;
            for (int k = 0; k < K; k++) {
                float a = op_at(A, ta, lda, i, k), b = op_at(B, tb, ldb, k, j);
                if (bf16) a = round_bf16(a), b = round_bf16(b);
                s += (double)a * b;
                m += fabs((double)a * b);
            }
            double c = beta == 0.0f ? 0.0 : (double)beta * C0[(int64_t)i * ldc + j];
            want[(int64_t)i * N + j] = alpha * s + c;
            mag[(int64_t)i * N + j] = fabs(alpha) * m + fabs(c);
        }
}

// Runs fn on one case with padded leading dimensions and returns the largest error divided by
// the bound (K + 3)·2⁻²⁴·mag (f32 accumulation of K products plus the alpha/beta epilogue:
// γ_{K+3}); fails when the bound is exceeded, a padding element was written, or beta = 0 read C.
static double run_case(const char *kname, gemm_fn fn, int bf16, gemm_op ta, gemm_op tb, shape3 s, float alpha,
                       float beta, int threads) {
    int M = s.M, N = s.N, K = s.K;
    int ar = ta == GEMM_N ? M : K, ac = ta == GEMM_N ? K : M;   // A storage rows × cols
    int br = tb == GEMM_N ? K : N, bc = tb == GEMM_N ? N : K;
    int lda = ac + 3, ldb = bc + 5, ldc = N + 7;
    float *A = rand_f32((int64_t)ar * lda, 11 + M, -1, 1), *B = rand_f32((int64_t)br * ldb, 23 + N, -1, 1);
    float *C0 = rand_f32((int64_t)M * ldc, 37 + K, -1, 1), *C = malloc(sizeof(float) * (size_t)M * ldc);
    memcpy(C, C0, sizeof(float) * (size_t)M * ldc);
    if (beta == 0.0f)   // must not be read: NaN would propagate
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) C[(int64_t)i * ldc + j] = NAN;
    double *want = malloc(sizeof(double) * (size_t)M * N), *mag = malloc(sizeof(double) * (size_t)M * N);
    reference(bf16, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C0, ldc, want, mag);
    omp_set_num_threads(threads);
    fn(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
    omp_set_num_threads(2);
    double worst = 0, u = 0x1p-24;
    int pad_ok = 1;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double e = fabs(C[(int64_t)i * ldc + j] - want[(int64_t)i * N + j]);
            double bound = (K + 3) * u * mag[(int64_t)i * N + j] + 1e-30;
            double r = isnan(e) ? INFINITY : e / bound;
            worst = r > worst ? r : worst;
        }
        for (int j = N; j < ldc; j++) pad_ok &= C[(int64_t)i * ldc + j] == C0[(int64_t)i * ldc + j];
    }
    CHECK_MSG(worst <= 1.0, "%s %c%c %dx%dx%d alpha %g beta %g threads %d: error %.3g × the bound", kname,
              ta == GEMM_N ? 'N' : 'T', tb == GEMM_N ? 'N' : 'T', M, N, K, alpha, beta, threads, worst);
    CHECK_MSG(pad_ok, "%s %dx%dx%d: wrote past N into the leading-dimension padding", kname, M, N, K);
    free(A), free(B), free(C0), free(C), free(want), free(mag);
    return worst;
}

static void sweep(const char *kname, gemm_fn fn, int bf16) {
    static const float alphas[] = {1.0f, -0.5f}, betas[] = {0.0f, 1.0f, 0.75f};
    double worst = 0;
    int cases = 0;
    for (int s = 0; s < N_SHAPES; s++)
        for (int t = 0; t < 4; t++)
            for (int ab = 0; ab < 6; ab++)
                for (int threads = 1; threads <= 2; threads++) {
                    double w = run_case(kname, fn, bf16, t & 1 ? GEMM_T : GEMM_N, t & 2 ? GEMM_T : GEMM_N, shapes[s],
                                        alphas[ab % 2], betas[ab / 2], threads);
                    worst = w > worst ? w : worst;
                    cases++;
                }
    printf("    %s: %d cases, worst error %.3f of the bound (K+3)·2^-24·Σ|terms|\n", kname, cases, worst);
}

TEST(gemm_avx512_matches_naive) {
    if (!gemm_avx512_supported()) {
        printf("    no AVX-512F on this CPU: skipped\n");
        return;
    }
    sweep("avx512", gemm_avx512, 0);
}

TEST(gemm_openblas_matches_naive) { sweep("openblas", gemm_openblas, 0); }

// gemm() runs the kernel SINGLORA_GEMM names (each test is its own process, so the choice made
// at the first call here is this test's alone).
TEST(gemm_env_forces_openblas) {
    setenv("SINGLORA_GEMM", "openblas", 1);
    CHECK_EQ_INT(gemm_active_kernel(), GEMM_KERNEL_OPENBLAS);
    float a = 2, b = 3, c = 1;
    gemm(GEMM_N, GEMM_N, 1, 1, 1, 1.0f, &a, 1, &b, 1, 1.0f, &c, 1);
    CHECK(c == 7.0f);
    if (gemm_avx512_supported()) {
        CHECK_EQ_INT(gemm_set_kernel(GEMM_KERNEL_AVX512), 0);
        CHECK_EQ_INT(gemm_active_kernel(), GEMM_KERNEL_AVX512);
    } else {
        CHECK_EQ_INT(gemm_set_kernel(GEMM_KERNEL_AVX512), -1);
    }
}

TEST(gemm_default_kernel_is_openblas_and_env_opts_in) {
    unsetenv("SINGLORA_GEMM");
    CHECK_EQ_INT(gemm_active_kernel(), GEMM_KERNEL_OPENBLAS);
}

TEST(gemm_env_selects_avx512) {
    setenv("SINGLORA_GEMM", "avx512", 1);
    CHECK_EQ_INT(gemm_active_kernel(), gemm_avx512_supported() ? GEMM_KERNEL_AVX512 : GEMM_KERNEL_OPENBLAS);
}

// K = 0 and alpha = 0: C = beta·C, A and B not read (NULL here), beta = 0 clears NaN.
static void check_degenerate(const char *kname, gemm_fn fn) {
    float C[6] = {1, 2, 3, NAN, 5, 6};
    fn(GEMM_N, GEMM_N, 2, 3, 0, 1.0f, NULL, 1, NULL, 3, 0.5f, C, 3);
    CHECK_MSG(C[0] == 0.5f && C[2] == 1.5f && C[5] == 3.0f, "%s: K = 0 must scale C by beta", kname);
    fn(GEMM_T, GEMM_T, 2, 3, 0, 1.0f, NULL, 2, NULL, 1, 0.0f, C, 3);
    for (int i = 0; i < 6; i++) CHECK_MSG(C[i] == 0.0f, "%s: K = 0, beta = 0 must zero C (C[%d] = %g)", kname, i, C[i]);
}

TEST(gemm_degenerate_shapes) {
    if (gemm_avx512_supported()) check_degenerate("avx512", gemm_avx512);
    check_degenerate("openblas", gemm_openblas);
    if (gemm_avx512_supported()) {   // alpha = 0 must not read A or B
        float C[4] = {1, 2, 3, 4};
        gemm_avx512(GEMM_N, GEMM_N, 2, 2, 5, 0.0f, NULL, 5, NULL, 2, 2.0f, C, 2);
        CHECK(C[0] == 2.0f && C[3] == 8.0f);
    }
}

// Bit-identical for 1, 2 and 3 threads, in both split directions (M ≥ N splits rows, N > M
// columns), and for a sub-block computed on its own (rows and columns shifted against the tiles):
// each element's FMA sequence depends on K only.
static void check_deterministic(const char *kname, gemm_fn fn) {
    static const shape3 big[] = {{301, 97, 700}, {45, 517, 300}, {45, 120, 700}, {70, 2100, 40}};   // the last: 2 threads read A unpacked (N blocks ≤ 64), 1 thread packs it
    for (int s = 0; s < 4; s++)
        for (int t = 0; t < 4; t++) {
            gemm_op ta = t & 1 ? GEMM_T : GEMM_N, tb = t & 2 ? GEMM_T : GEMM_N;
            int M = big[s].M, N = big[s].N, K = big[s].K;
            int lda = ta == GEMM_N ? K : M, ldb = tb == GEMM_N ? N : K;
            float *A = rand_f32((int64_t)M * K, 5, -1, 1), *B = rand_f32((int64_t)K * N, 6, -1, 1);
            float *C0 = rand_f32((int64_t)M * N, 7, -1, 1);
            float *C[4];
            for (int r = 0; r < 4; r++) {
                C[r] = malloc(sizeof(float) * (size_t)M * N);
                memcpy(C[r], C0, sizeof(float) * (size_t)M * N);
            }
            for (int r = 0; r < 3; r++) {
                omp_set_num_threads(r + 1);
                fn(ta, tb, M, N, K, 0.7f, A, lda, B, ldb, 0.3f, C[r], N);
            }
            omp_set_num_threads(2);
            // rows 5.., columns 3.. alone
            const int i0 = 5, j0 = 3;
            const float *As = ta == GEMM_N ? A + (int64_t)i0 * lda : A + i0;
            const float *Bs = tb == GEMM_N ? B + j0 : B + (int64_t)j0 * ldb;
            fn(ta, tb, M - i0, N - j0, K, 0.7f, As, lda, Bs, ldb, 0.3f, C[3] + (int64_t)i0 * N + j0, N);
            int same = 1, same_sub = 1;
            for (int64_t i = 0; i < (int64_t)M * N; i++) same &= C[0][i] == C[1][i] && C[0][i] == C[2][i];
            for (int i = i0; i < M; i++)
                for (int j = j0; j < N; j++) same_sub &= C[3][(int64_t)i * N + j] == C[0][(int64_t)i * N + j];
            CHECK_MSG(same, "%s %dx%dx%d t=%d: 1, 2 and 3 threads differ", kname, M, N, K, t);
            CHECK_MSG(same_sub, "%s %dx%dx%d t=%d: a shifted sub-block differs", kname, M, N, K, t);
            free(A), free(B), free(C0);
            for (int r = 0; r < 4; r++) free(C[r]);
        }
}

TEST(gemm_avx512_bit_identical_across_threads) {
    if (!gemm_avx512_supported()) {
        printf("    no AVX-512F on this CPU: skipped\n");
        return;
    }
    check_deterministic("avx512", gemm_avx512);
}

// bf16: against the double product of the bf16-rounded operands the only error is the f32
// accumulation (the same γ_{K+3} bound as f32: vdpbf16ps's products are exact, every addition
// rounds once); that also pins the rounding to nearest even (truncation would miss by ~2⁻⁸).
TEST(gemm_bf16_matches_rounded_naive) {
    if (!gemm_bf16_supported()) {
        printf("    no AVX512_BF16 on this CPU: skipped\n");
        return;
    }
    sweep("bf16 (vdpbf16ps)", gemm_bf16_avx512, 1);
    check_deterministic("bf16 (vdpbf16ps)", gemm_bf16_avx512);
    if (!gemm_amx_supported()) {
        printf("    no AMX-BF16 here: its kernel skipped\n");
        return;
    }
    sweep("bf16 (amx)", gemm_bf16_amx, 1);
    check_deterministic("bf16 (amx)", gemm_bf16_amx);
}

// bf16 against the exact f32 operands: each rounded operand is off by ≤ 2⁻⁹ relative (8
// significant bits, nearest), so each product by ≤ 2⁻⁸ + 2⁻¹⁸; with the accumulation the error
// is ≤ (2⁻⁸ + 2⁻¹⁸ + (K + 3)·2⁻²⁴)·Σ|a·b| (to first order in the roundings).
TEST(gemm_bf16_error_vs_f32_operands) {
    if (!gemm_bf16_supported()) {
        printf("    no AVX512_BF16 on this CPU: skipped\n");
        return;
    }
    const shape3 s[] = {{37, 70, 513}, {64, 96, 1280}};
    for (int c = 0; c < 2; c++) {
        int M = s[c].M, N = s[c].N, K = s[c].K;
        float *A = rand_f32((int64_t)M * K, 91, -1, 1), *B = rand_f32((int64_t)K * N, 92, -1, 1);
        float *C = malloc(sizeof(float) * (size_t)M * N);
        double *want = malloc(sizeof(double) * (size_t)M * N), *mag = malloc(sizeof(double) * (size_t)M * N);
        reference(0, GEMM_N, GEMM_N, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N, want, mag);
        gemm_bf16(GEMM_N, GEMM_N, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        double worst = 0, worst_rel_max = 0, ref_max = 0;
        for (int64_t i = 0; i < (int64_t)M * N; i++) {
            double e = fabs(C[i] - want[i]), bound = (0x1p-8 + 0x1p-18 + (K + 3) * 0x1p-24) * mag[i];
            worst = fmax(worst, e / bound);
            worst_rel_max = fmax(worst_rel_max, e);
            ref_max = fmax(ref_max, fabs(want[i]));
        }
        printf("    bf16 %dx%dx%d vs f32 operands: worst %.3f of the bound, max abs %.3g (max |ref| %.3g)\n", M, N, K,
               worst, worst_rel_max, ref_max);
        CHECK_MSG(worst <= 1.0, "bf16 %dx%dx%d: error %.3g × the bound", M, N, K, worst);
        free(A), free(B), free(C), free(want), free(mag);
    }
}

// --precision: gemm() computes what gemm_bf16 computes (bit for bit) while the precision is bf16,
// and what the f32 kernel computes again after fp32; the names parse; a CPU without
// AVX512_BF16 refuses bf16 and keeps fp32.
TEST(gemm_precision_switches_every_gemm) {
    gemm_precision p;
    CHECK(gemm_precision_parse("bf16", &p) == 0 && p == GEMM_BF16);
    CHECK(gemm_precision_parse("bfloat16", &p) == 0 && p == GEMM_BF16);
    CHECK(gemm_precision_parse("fp32", &p) == 0 && p == GEMM_FP32);
    CHECK(gemm_precision_parse("f32", &p) == 0 && p == GEMM_FP32);
    CHECK(gemm_precision_parse("fp16", &p) == -1);
    CHECK(gemm_precision_parse("", &p) == -1);
    CHECK_EQ_INT(gemm_active_precision(), GEMM_FP32);
    if (!gemm_bf16_supported()) {
        CHECK_EQ_INT(gemm_set_precision(GEMM_BF16), -1);
        CHECK_EQ_INT(gemm_active_precision(), GEMM_FP32);
        CHECK(gemm_select_precision("--precision", "bf16") == -1 && strstr(sl_error_msg(), "AVX512_BF16"));
        printf("    no AVX512_BF16 on this CPU: bf16 refused\n");
        return;
    }
    enum { M = 37, N = 53, K = 71 };
    float *A = sl_alloc_f32(M * K), *B = sl_alloc_f32(N * K), *C0 = sl_alloc_f32(M * N), *C1 = sl_alloc_f32(M * N);
    float *C2 = sl_alloc_f32(M * N);
    fill_uniform(A, M * K, 1, -1, 1);
    fill_uniform(B, N * K, 2, -1, 1);
    gemm(GEMM_N, GEMM_T, M, N, K, 1.0f, A, K, B, K, 0.0f, C0, N);   // fp32
    CHECK(gemm_select_precision("--precision", "bf16") == 0);
    CHECK_EQ_INT(gemm_active_precision(), GEMM_BF16);
    gemm(GEMM_N, GEMM_T, M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
    gemm_bf16(GEMM_N, GEMM_T, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
    CHECK(memcmp(C1, C2, sizeof(float) * M * N) == 0);
    err_stats e = compare_f32(C1, C0, M * N);
    CHECK_MSG(e.max_abs > 1e-5 && e.max_abs < 5e-2 * e.max_ref, "bf16 vs f32: max abs %g (max|ref| %g)", e.max_abs, e.max_ref);
    CHECK(gemm_select_precision("--precision", "fp32") == 0);
    gemm(GEMM_N, GEMM_T, M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
    CHECK(memcmp(C0, C2, sizeof(float) * M * N) == 0);
    CHECK(gemm_select_precision("--precision", "half") == -1 && strstr(sl_error_msg(), "'half' is not a precision"));
    sl_free_aligned(A), sl_free_aligned(B), sl_free_aligned(C0), sl_free_aligned(C1), sl_free_aligned(C2);
}

// gemm_pack_b + gemm_with_packed_b (and the same for A) compute what gemm() computes, bit for bit,
// in fp32 (the handle only remembers the operand) and in bf16 (the AMX kernel's panels / strips,
// where it runs): both layouts of each, K across several K blocks, N across two B blocks, M across
// strips and thread ranges, beta = 0 and 1, 1 and 2 threads.
TEST(gemm_packed_operands_equal_gemm) {
    static const shape3 cases[] = {{37, 1100, 70}, {70, 45, 1100}, {5, 33, 7}, {300, 40, 600}};
    for (int prec = 0; prec < 2; prec++) {
        if (prec == 1 && !gemm_bf16_supported()) {
            printf("    no AVX512_BF16 on this CPU: bf16 skipped\n");
            break;
        }
        REQUIRE(gemm_set_precision(prec ? GEMM_BF16 : GEMM_FP32) == 0);
        for (int c = 0; c < 4; c++)
            for (int t = 0; t < 4; t++) {
                gemm_op ta = t & 1 ? GEMM_T : GEMM_N, tb = t & 2 ? GEMM_T : GEMM_N;
                int M = cases[c].M, N = cases[c].N, K = cases[c].K;
                int lda = (ta == GEMM_N ? K : M) + 2, ldb = (tb == GEMM_N ? N : K) + 3;
                float *A = rand_f32((int64_t)(ta == GEMM_N ? M : K) * lda, 41, -1, 1);
                float *B = rand_f32((int64_t)(tb == GEMM_N ? K : N) * ldb, 42, -1, 1);
                float *C0 = rand_f32((int64_t)M * N, 43, -1, 1), *C1 = malloc(sizeof(float) * (size_t)M * N);
                memcpy(C1, C0, sizeof(float) * (size_t)M * N);
                float *C2 = malloc(sizeof(float) * (size_t)M * N);
                memcpy(C2, C0, sizeof(float) * (size_t)M * N);
                gemm_packed_b pb;
                gemm_packed_a pa;
                gemm_pack_b(&pb, tb, K, N, B, ldb);
                gemm_pack_a(&pa, ta, M, K, A, lda);
                for (int threads = 1; threads <= 2; threads++) {
                    omp_set_num_threads(threads);
                    float beta = threads == 1 ? 0.0f : 1.0f;
                    gemm(ta, tb, M, N, K, 0.5f, A, lda, B, ldb, beta, C0, N);
                    gemm_with_packed_b(ta, M, 0.5f, A, lda, &pb, beta, C1, N);
                    gemm_with_packed_a(&pa, tb, N, 0.5f, B, ldb, beta, C2, N);
                    CHECK_MSG(memcmp(C0, C1, sizeof(float) * (size_t)M * N) == 0, "%s %dx%dx%d t=%d threads %d: packed B differs",
                              prec ? "bf16" : "fp32", M, N, K, t, threads);
                    CHECK_MSG(memcmp(C0, C2, sizeof(float) * (size_t)M * N) == 0, "%s %dx%dx%d t=%d threads %d: packed A differs",
                              prec ? "bf16" : "fp32", M, N, K, t, threads);
                }
                if (prec == 1) CHECK_MSG((pb.panels != NULL) == gemm_bf16_uses_amx() && (pa.panels != NULL) == gemm_bf16_uses_amx(),
                                         "panels only for AMX");
                else CHECK(pb.panels == NULL && pa.panels == NULL);
                gemm_packed_b_free(&pb);
                gemm_packed_a_free(&pa);
                free(C2);
                free(A), free(B), free(C0), free(C1);
            }
    }
    gemm_set_precision(GEMM_FP32);
}
