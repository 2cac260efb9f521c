// Weights held in bf16 (engine/core/bf16_weights.h): the table finds a held weight from any
// pointer into it and nothing else, sl_free_aligned releases it, an f32 read of it faults, and
// every GEMM entry point with held operands computes bit for bit what it computes with the f32
// the bf16 came from under --precision bf16 (both kernels, both layouts, 1 and 2 threads).
#include <omp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/core/bf16_weights.h"
#include "engine/core/dtype.h"
#include "engine/core/tensor.h"
#include "engine/kernels/gemm.h"
#include "tests/kernel_check.h"

static float *copy_f32(const float *x, int64_t n) {
    float *y = malloc(sizeof(float) * (size_t)n);
    memcpy(y, x, sizeof(float) * (size_t)n);
    return y;
}

TEST(bf16_weights_hold_find_release) {
    const int rows = 37, cols = 53;
    const int64_t n = (int64_t)rows * cols;
    float *w = rand_f32(n, 7, -2, 2), *orig = copy_f32(w, n), *other = rand_f32(16, 8, -1, 1);
    int64_t count0 = bf16_weights_count(), bytes0 = bf16_weights_bytes();
    bf16_weights_hold(&w, n);
    CHECK(w != orig);
    CHECK_EQ_INT(bf16_weights_count(), count0 + 1);
    CHECK_EQ_INT(bf16_weights_bytes(), bytes0 + 2 * n);
    const uint16_t *h = bf16_weights_find(w);
    REQUIRE(h != NULL);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad += h[i] != f32_to_bf16(orig[i]);
    CHECK_EQ_INT(bad, 0);
    // a row offset and the last element find the same copy; one past the end, another buffer do not
    CHECK(bf16_weights_find(w + 5 * cols) == h + 5 * cols);
    CHECK(bf16_weights_find(w + n - 1) == h + n - 1);
    CHECK(bf16_weights_find(w + n) == NULL);
    CHECK(bf16_weights_find(other) == NULL && bf16_weights_find(NULL) == NULL);
    float *again = w;
    bf16_weights_hold(&again, n);   // already held: unchanged
    CHECK(again == w && bf16_weights_count() == count0 + 1);
    // an f32 read of the placeholder faults at once (in a child, so this test goes on)
    pid_t pid = fork();
    if (pid == 0) {
        volatile float x = w[3];
        (void)x;
        _exit(0);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    // SIGSEGV, or under ASan its SEGV report's exit: anything but reading on and exiting 0
    CHECK_MSG(WIFSIGNALED(status) ? WTERMSIG(status) == SIGSEGV : WEXITSTATUS(status) != 0,
              "reading a held weight's placeholder did not fault");
    CHECK_EQ_INT(bf16_weights_release(other), 0);
    // unhold: f32 again, the bf16 values widened; the placeholder is gone from the table
    float *back = w, *copy = copy_f32(orig, n);
    bf16_weights_hold(&copy, n);
    bf16_weights_unhold(&copy);
    CHECK(bf16_weights_find(copy) == NULL && bf16_weights_count() == count0 + 1);
    bad = 0;
    for (int64_t i = 0; i < n; i++) bad += copy[i] != bf16_to_f32(f32_to_bf16(orig[i]));
    CHECK_EQ_INT(bad, 0);
    sl_free_aligned(copy);
    bf16_weights_unhold(&other);   // not held: untouched
    CHECK(bf16_weights_find(back) == h);
    sl_free_aligned(w);   // releases the placeholder and the copy
    CHECK_EQ_INT(bf16_weights_count(), count0);
    CHECK_EQ_INT(bf16_weights_bytes(), bytes0);
    free(orig), free(other);
}

// One product with A and/or B held, against the same product on the f32 originals: the kernel
// called with the bf16 copies, and (when it is the kernel gemm_bf16 runs) gemm() and both packed
// entry points finding the held operands by themselves.
static void check_held(const char *kname, int amx, gemm_op ta, gemm_op tb, int M, int N, int K, int which) {
    int lda = (ta == GEMM_N ? K : M) + 3, ldb = (tb == GEMM_N ? N : K) + 1;
    int64_t na = (int64_t)(ta == GEMM_N ? M : K) * lda, nb = (int64_t)(tb == GEMM_N ? K : N) * ldb, nc = (int64_t)M * N;
    float *A = rand_f32(na, 11, -1, 1), *B = rand_f32(nb, 12, -1, 1), *C = rand_f32(nc, 13, -1, 1);
    float *Ah = copy_f32(A, na), *Bh = copy_f32(B, nb);
    if (which & 1) bf16_weights_hold(&Ah, na);
    if (which & 2) bf16_weights_hold(&Bh, nb);
    const char *what = which == 1 ? "A held" : which == 2 ? "B held" : "both held";
    float *want = malloc(sizeof(float) * (size_t)nc), *got = malloc(sizeof(float) * (size_t)nc);
    for (int threads = 1; threads <= 2; threads++) {
        omp_set_num_threads(threads);
        float beta = threads == 1 ? 0.0f : 1.0f;
        memcpy(want, C, sizeof(float) * (size_t)nc);
        if (amx) gemm_bf16_amx(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, beta, want, N);
        else gemm_bf16_avx512(ta, tb, M, N, K, 0.75f, A, lda, B, ldb, beta, want, N);
        for (int way = 0; way < 4; way++) {
            if (way > 0 && amx != gemm_bf16_uses_amx()) break;
            memcpy(got, C, sizeof(float) * (size_t)nc);
            if (way == 0) {
                gemm_bf16_held(ta, tb, M, N, K, 0.75f, which & 1 ? NULL : A, which & 1 ? bf16_weights_find(Ah) : NULL, lda,
                               which & 2 ? NULL : B, which & 2 ? bf16_weights_find(Bh) : NULL, ldb, beta, got, N, amx);
            } else if (way == 1) {
                gemm(ta, tb, M, N, K, 0.75f, Ah, lda, Bh, ldb, beta, got, N);
            } else if (way == 2) {
                gemm_packed_a pa;
                gemm_pack_a(&pa, ta, M, K, Ah, lda);
                gemm_with_packed_a(&pa, tb, N, 0.75f, Bh, ldb, beta, got, N);
                gemm_packed_a_free(&pa);
            } else {
                gemm_packed_b pb;
                gemm_pack_b(&pb, tb, K, N, Bh, ldb);
                gemm_with_packed_b(ta, M, 0.75f, Ah, lda, &pb, beta, got, N);
                gemm_packed_b_free(&pb);
            }
            static const char *ways[] = {"gemm_bf16_held", "gemm()", "packed A", "packed B"};
            CHECK_MSG(memcmp(want, got, sizeof(float) * (size_t)nc) == 0, "%s %s %s %dx%dx%d ta %d tb %d threads %d: differs",
                      kname, ways[way], what, M, N, K, ta, tb, threads);
        }
    }
    sl_free_aligned(Ah), sl_free_aligned(Bh);
    free(A), free(B), free(C), free(want), free(got);
}

TEST(gemm_held_operands_equal_bf16) {
    if (!gemm_bf16_supported()) {
        printf("    no AVX512_BF16 on this CPU: skipped\n");
        return;
    }
    static const int shapes[][3] = {{1, 1, 1}, {13, 33, 17}, {70, 45, 1100}, {37, 1100, 70}, {300, 40, 600}};
    REQUIRE(gemm_set_precision(GEMM_BF16) == 0);
    for (int amx = 0; amx <= gemm_amx_supported(); amx++)
        for (int s = 0; s < 5; s++)
            for (int t = 0; t < 4; t++)
                for (int which = 1; which <= 3; which++)
                    check_held(amx ? "amx" : "vdpbf16ps", amx, t & 1 ? GEMM_T : GEMM_N, t & 2 ? GEMM_T : GEMM_N,
                               shapes[s][0], shapes[s][1], shapes[s][2], which);
    // under fp32 a held operand still computes in bf16 (it has no f32 data)
    REQUIRE(gemm_set_precision(GEMM_FP32) == 0);
    check_held("fp32 precision", gemm_bf16_uses_amx(), GEMM_N, GEMM_T, 13, 33, 17, 2);
    CHECK_EQ_INT(bf16_weights_count(), 0);
    printf("    held A, B and both equal the bf16 kernels on the f32 originals bit for bit (%s)\n",
           gemm_amx_supported() ? "vdpbf16ps and AMX" : "vdpbf16ps; no AMX here");
}
