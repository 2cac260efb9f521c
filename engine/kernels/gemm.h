// The one matrix-multiply entry point of the engine: every GEMM in the library goes through
// gemm(), so a faster kernel drops in at one place.
//   C (M, N) = alpha · op(A) · op(B) + beta · C      row-major, op(X) = X or Xᵀ
//   op(A) is (M, K): A is (M, K) with lda >= K, or stored (K, M) with lda >= M when transposed;
//   op(B) is (K, N): B is (K, N) with ldb >= N, or stored (N, K) with ldb >= K when transposed.
// beta = 0 overwrites C without reading it (NaN/Inf in C do not propagate). K = 0 or alpha = 0
// gives C = beta · C without reading A or B.
//
// Kernels (gemm() runs the active one):
//   avx512    own packed AVX-512F kernel (gemm_avx512.c). Each C(i, j) is
//             (((beta·C + alpha·S₁) + alpha·S₂) + …) where S_b = Σ_{k in K block b} A(i,k)·B(k,j)
//             is one f32 FMA chain in increasing k; the K blocks depend on K only, so results are
//             bit-identical for any thread count and any position of (i, j) in the tiling.
//             OpenMP-parallel over M or N blocks outside a parallel region, single-threaded inside.
//   openblas  cblas_sgemm (the OpenMP build: single-threaded inside our parallel regions,
//             OMP_NUM_THREADS threads outside them). Its summation order is its own.
// The default is openblas; SINGLORA_GEMM=avx512 (where cpuid reports AVX-512F) or =openblas in
// the environment picks one at first use; the kernel tests run both on any CPU that has them.
//
// Precision (--precision on every command that computes): fp32 (the default) runs the kernel
// above; bf16 sends every gemm() to gemm_bf16 below — operands rounded to bf16, products
// accumulated in f32, C in f32 — so what is not a GEMM (norms, softmax, activations, adapter
// and optimizer state, gradients) stays f32 as before.
#pragma once
#include <stdint.h>

typedef enum { GEMM_N, GEMM_T } gemm_op;
typedef enum { GEMM_KERNEL_OPENBLAS, GEMM_KERNEL_AVX512 } gemm_kernel;
typedef enum { GEMM_FP32, GEMM_BF16 } gemm_precision;

void gemm(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
          float beta, float *C, int ldc);

// The kernel gemm() runs; gemm_set_kernel returns -1 (and changes nothing) when this CPU lacks it.
// Not thread-safe against concurrent gemm() calls: set it before computing (tests, benches).
gemm_kernel gemm_active_kernel(void);
int gemm_set_kernel(gemm_kernel k);
const char *gemm_kernel_name(gemm_kernel k);

// The precision gemm() computes in (process-wide, like the kernel; fp32 until set). Setting
// GEMM_BF16 returns -1 (and changes nothing) on a CPU without AVX512_BF16. Not thread-safe
// against concurrent gemm() calls: set it before computing.
gemm_precision gemm_active_precision(void);
int gemm_set_precision(gemm_precision p);
const char *gemm_precision_name(gemm_precision p);   // "fp32", "bf16"
// "fp32" / "bf16" (also "f32", "float32", "bfloat16") -> 0 and *p; -1 for anything else.
int gemm_precision_parse(const char *s, gemm_precision *p);
// Parses and sets in one: 0, or -1 after one error line naming `what` (an option or file) for an
// unknown name or bf16 on a CPU without AVX512_BF16.
int gemm_select_precision(const char *what, const char *name);

// OpenBLAS picks its kernels from cpuid once, when it loads; 0.3.21 does not know every newer CPU
// and then falls back to its SSE3 (Prescott) kernels, 4x slower than its Haswell ones on an
// AVX-512 Xeon. It reads OPENBLAS_CORETYPE only at load, so a program can only fix this by running
// itself again: where OpenBLAS chose Prescott on a CPU with AVX2 and FMA and the user set no
// OPENBLAS_CORETYPE, this sets OPENBLAS_CORETYPE=Haswell and re-executes /proc/self/exe with the
// same arguments (once: the variable is then set). Call it first thing in main(); it returns
// when nothing needs fixing or the re-exec failed (then the slow kernels stay).
void gemm_openblas_fix_core(char **argv);
const char *gemm_openblas_core(void);   // the core OpenBLAS runs ("Haswell", "Prescott", ...)

// The two f32 kernels directly, same contract as gemm().
void gemm_openblas(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda,
                   const float *B, int ldb, float beta, float *C, int ldc);
int gemm_avx512_supported(void);   // cpuid: AVX-512F
void gemm_avx512(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                 int ldb, float beta, float *C, int ldc);

// bf16 GEMM (AVX512_BF16, vdpbf16ps): same contract as gemm() except that every element of op(A)
// and op(B) is first rounded to bf16 (round to nearest even; NaN stays NaN) and the products are
// accumulated in f32: S_b = Σ over K pairs of (a₂ₚ·b₂ₚ + a₂ₚ₊₁·b₂ₚ₊₁) per vdpbf16ps (products exact,
// each addition rounded to f32 nearest even, subnormal inputs and results flushed to zero).
// Bit-identical for any thread count. Only on CPUs where gemm_bf16_supported() (dies otherwise).
// Two kernels compute it: AMX (tdpbf16ps on 16 × 16 tiles, 32 × 32 C blocks; where cpuid has
// AMX-TILE/AMX-BF16 and Linux grants the process tile state) and AVX512_BF16 (vdpbf16ps);
// gemm_bf16 runs AMX where it can (SINGLORA_BF16=avx512 forces vdpbf16ps). Their accumulation
// orders differ (each is bit-identical for any thread count).
int gemm_bf16_supported(void);   // cpuid: AVX-512F and AVX512_BF16
int gemm_amx_supported(void);    // AMX-BF16 usable (and AVX512_BF16)
int gemm_bf16_uses_amx(void);    // gemm_bf16 runs the AMX kernel
void gemm_bf16(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);
void gemm_bf16_avx512(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc);
void gemm_bf16_amx(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                   int ldb, float beta, float *C, int ldc);
// The bf16 kernels with an operand that is a weight held in bf16 (engine/core/bf16_weights.h):
// A16 / B16 non-NULL is read instead of A / B (same layout and leading dimension). Results are
// bit-identical to passing the f32 the bf16 came from. amx: the AMX kernel, else vdpbf16ps.
// gemm() calls it by itself for held operands; this is the kernels' side.
void gemm_bf16_held(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, const uint16_t *A16,
                    int lda, const float *B, const uint16_t *B16, int ldb, float beta, float *C, int ldc, int amx);

// A B operand used by many products, converted once (attention packs each head's K and V once
// for all its query tiles): gemm_with_packed_b(ta, M, alpha, A, lda, pb, beta, C, ldc) computes
// what gemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc) computes, bit for bit, with
// the precision and kernel active when gemm_pack_b ran (which must still be active). Only the
// AMX kernel keeps a converted copy (bf16 panels, ~2 bytes per element); otherwise the handle
// just remembers B, which must outlive it either way.
typedef struct {
    gemm_op tb;
    int K, N;
    const float *B;
    int ldb;
    unsigned *panels;   // AMX bf16 panels, or NULL
} gemm_packed_b;
void gemm_pack_b(gemm_packed_b *pb, gemm_op tb, int K, int N, const float *B, int ldb);
void gemm_with_packed_b(gemm_op ta, int M, float alpha, const float *A, int lda, const gemm_packed_b *pb, float beta,
                        float *C, int ldc);
void gemm_packed_b_free(gemm_packed_b *pb);
// The same for an A operand (a convolution's weights, used by every image and band of one call).
typedef struct {
    gemm_op ta;
    int M, K;
    const float *A;
    int lda;
    unsigned *panels;   // AMX bf16 strips, or NULL
} gemm_packed_a;
void gemm_pack_a(gemm_packed_a *pa, gemm_op ta, int M, int K, const float *A, int lda);
void gemm_with_packed_a(const gemm_packed_a *pa, gemm_op tb, int N, float alpha, const float *B, int ldb, float beta,
                        float *C, int ldc);
void gemm_packed_a_free(gemm_packed_a *pa);
// The AMX kernel's side of them (engine/kernels/gemm_avx512.c); the *16 operands as in gemm_bf16_held.
unsigned *gemm_amx_pack_b(gemm_op tb, int K, int N, const float *B, const uint16_t *B16, int ldb);
void gemm_amx_packed_b(gemm_op ta, int M, int N, int K, float alpha, const float *A, const uint16_t *A16, int lda,
                       const unsigned *panels, float beta, float *C, int ldc);
unsigned *gemm_amx_pack_a(gemm_op ta, int M, int K, const float *A, const uint16_t *A16, int lda);
void gemm_amx_packed_a(const unsigned *panels, gemm_op tb, int M, int N, int K, float alpha, const float *B,
                       const uint16_t *B16, int ldb, float beta, float *C, int ldc);
