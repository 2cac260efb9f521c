// The one matrix-multiply entry point of the engine: every GEMM in the library goes through
// gemm(), so a faster kernel (own AVX-512 / bf16 micro-kernels) drops in at one place.
//   C (M, N) = alpha · op(A) · op(B) + beta · C      row-major, op(X) = X or Xᵀ
//   op(A) is (M, K): A is (M, K) with lda >= K, or stored (K, M) with lda >= M when transposed;
//   op(B) is (K, N): B is (K, N) with ldb >= N, or stored (N, K) with ldb >= K when transposed.
// beta = 0 overwrites C without reading it. Today it calls OpenBLAS's sgemm (the OpenMP build:
// single-threaded inside our parallel regions, OMP_NUM_THREADS threads outside them).
#pragma once

typedef enum { GEMM_N, GEMM_T } gemm_op;

void gemm(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
          float beta, float *C, int ldc);
