// Own AVX-512 GEMM kernels (f32; bf16 with vdpbf16ps, and bf16 on AMX tiles), row-major,
// contract in gemm.h.
//
// Scheme (the GotoBLAS/BLIS blocking, written for row-major C with vectors along N):
//   for each NC-column block of C:
//     for each K block (KC deep; the blocks depend on K only):
//       pack op(B)[K block, N block] into NR-wide panels, k-major (panel p: kc rows of NR floats)
//       for each MR-row strip of C:
//         pack op(A)[strip, K block] k-major (kc columns of MR floats), zero rows past M
//         for each panel: the micro-kernel keeps an MR × NR tile of C in 24 zmm registers,
//           per k broadcasts the MR values of A and FMAs them with the two NR/16 vectors of B,
//           then writes C = alpha·S + beta·C (first K block) or C = alpha·S + C (later blocks).
// The packed A strip (MR·KC floats) stays in L1 while the packed B block (KC·NC) streams from L2.
// Threads split C into contiguous ranges of whole MR strips or NR panels (M or N, whichever is
// longer); K is never split, and every element sees the same sequence of FMAs whatever tile it
// falls in, so the result does not depend on the thread count.
//
// AMX (run_block_amx): the same blocking with 32-row strips (two 16-row A tiles) and 32-column
// panels (two 16-column B tiles) as four 16 × 16 f32 accumulator tiles, tdpbf16ps per 32 k's; B
// panels are the vdpbf16ps kernel's (k pairs, NR columns), A strips row-major. K blocks are
// outermost there, so A can be packed once per K block; op(A) or op(B) may come packed already
// (gemm_pack_a / gemm_pack_b).
//
// Compiled for AVX-512 (and AMX) with target pragmas so a portable build (make ARCH=) still
// compiles it; it only runs where gemm_avx512_supported() / gemm_bf16_supported() /
// gemm_amx_supported() say so.
#include "engine/kernels/gemm.h"

#include <cpuid.h>
#include <immintrin.h>
#include <omp.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine/core/error.h"

// Every function below is compiled for AVX-512 (callers check the CPU first): GCC's pragma, or
// clang's equivalent (clang ignores `#pragma GCC target`).
#ifdef __clang__
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,amx-tile,amx-bf16"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma,amx-tile,amx-bf16")
#endif

#define MR 12     // rows of C per micro-tile (broadcasts of A)
#define NR 32     // columns of C per micro-tile (two zmm of B)
#define KC 256    // K block depth (f32 k's, or bf16 k pairs)
#define NC 1024   // columns of C per packed B block: KC·NC·4 bytes = 1 MiB, in L2
#define DIRECT_A_MAX_N 64   // N blocks up to this wide read op(A) unpacked (f32)

#define MR_AMX 32   // rows of C per AMX micro-tile: two 16-row A tiles (× two 16-column B tiles)

// AMX: the k pairs a K block of kc k's occupies, padded to whole 16-pair (32-k) chunks.
static inline int amx_kpp(int kc) { return ((kc + 1) / 2 + 15) / 16 * 16; }

typedef enum { PREC_F32, PREC_BF16, PREC_AMX } precision;

typedef struct {
    precision prec;
    gemm_op ta, tb;
    int M, N, K;
    float alpha, beta;
    const float *A;
    int lda;
    const float *B;
    int ldb;
    float *C;
    int ldc;
    const uint32_t *packed_b;   // AMX: op(B) already in panels (gemm_amx_pack_b), or NULL
    const uint32_t *packed_a;   // AMX: op(A) already in strips (gemm_amx_pack_a), or NULL
    const uint16_t *A16, *B16;  // bf16 kernels: the operand held in bf16 (same layout and lda/ldb;
                                // A or B is then unused), or NULL: read f32 A / B
} gemm_problem;

int gemm_avx512_supported(void) { return __builtin_cpu_supports("avx512f"); }
int gemm_bf16_supported(void) { return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bf16"); }

// AMX: cpuid's AMX-TILE and AMX-BF16 (leaf 7, EDX bits 24 and 22), the OS saving tile state
// (XCR0 bits 17 and 18), and Linux granting this process the tile data (arch_prctl
// ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA = 18; a process must ask before its first tile
// instruction). Asked once.
static int amx_probe(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !(d & (1u << 24)) || !(d & (1u << 22))) return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27))) return 0;   // OSXSAVE: xgetbv works
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 0x60000u) != 0x60000u) return 0;
#ifdef __linux__
    return syscall(SYS_arch_prctl, 0x1023 /* ARCH_REQ_XCOMP_PERM */, 18 /* XFEATURE_XTILEDATA */) == 0;
#else
    return 0;
#endif
}

int gemm_amx_supported(void) {
    static _Atomic int state = -1;
    int s = state;
    if (s < 0) {
        s = amx_probe() && gemm_bf16_supported();
        state = s;
    }
    return s;
}

static inline __mmask16 first_lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : n <= 0 ? 0 : (__mmask16)((1u << n) - 1); }

// ---- 16 × 16 transpose of 32-bit lanes -------------------------------------------------------
// Four stages; stage b swaps, inside every aligned 2b × 2b block, the top-right b × b block with
// the bottom-left one (b = 8, 4, 2, 1): after all four every element (i, j) sits at (j, i).
static inline void transpose16(__m512i r[16]) {
    for (int b = 8; b >= 1; b /= 2) {
        int lo[16], hi[16];
        for (int j = 0; j < 16; j++) {
            lo[j] = (j & b) ? 16 + (j - b) : j;   // row i:     own j (bit clear), partner's j−b (set)
            hi[j] = (j & b) ? 16 + j : j + b;     // row i + b: own j+b (bit clear), partner's j (set)
        }
        __m512i ilo = _mm512_loadu_si512(lo), ihi = _mm512_loadu_si512(hi);
        for (int i = 0; i < 16; i++) {
            if (i & b) continue;
            __m512i x = r[i], y = r[i + b];
            r[i] = _mm512_permutex2var_epi32(x, ilo, y);
            r[i + b] = _mm512_permutex2var_epi32(x, ihi, y);
        }
    }
}

// ---- f32 → bf16, round to nearest even (as f32_to_bf16 in core/dtype.c) ------------------------
// 16 floats → 16 bf16 in the low halves of 32-bit lanes (high halves zero).
static inline __m512i bf16_round16(__m512 x) {
    __m512i u = _mm512_castps_si512(x);
    __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff))), 16);
    __m512i mag = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
    __mmask16 nan = _mm512_cmpgt_epu32_mask(mag, _mm512_set1_epi32(0x7f800000));
    __m512i q = _mm512_or_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));   // quiet NaN
    return _mm512_mask_mov_epi32(r, nan, q);
}
// Where a bf16 kernel reads an operand element: f32 (rounded as it is packed) or a weight held in
// bf16 (engine/core/bf16_weights.h: the same bits the rounding gives, so results are identical).
typedef struct {
    const float *f;
    const uint16_t *h;   // non-NULL: read bf16 here instead of f
} src16;
static inline src16 src16_add(src16 s, int64_t d) { return s.h ? (src16){NULL, s.h + d} : (src16){s.f + d, NULL}; }
// The lanes of m (16 consecutive elements) as bf16 in the low halves of 32-bit lanes, others 0.
static inline __m512i bf16_lanes(src16 s, __mmask16 m) {
    if (s.h) return _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, s.h));
    return bf16_round16(_mm512_maskz_loadu_ps(m, s.f));   // rounding keeps the zeros zero
}
// Pairs (x[2p], x[2p+1]) of 32 consecutive elements (the first n valid, rest 0) → 16 lanes
// bf16(x[2p]) | bf16(x[2p+1]) << 16: the vdpbf16ps operand layout.
static inline __m512i bf16_pairs_of_row(src16 x, int n) {
    __m512i lo = bf16_lanes(x, first_lanes(n));
    __m512i hi = bf16_lanes(src16_add(x, 16), first_lanes(n - 16));
    __m256i l16 = _mm512_cvtepi32_epi16(lo), h16 = _mm512_cvtepi32_epi16(hi);
    return _mm512_inserti64x4(_mm512_castsi256_si512(l16), h16, 1);
}
// Pairs across two rows: lanes bf16(x0[j]) | bf16(x1[j]) << 16 for the first n of 16 columns
// (x1 NULL: zeros).
static inline __m512i bf16_pairs_of_rows(src16 x0, const src16 *x1, int n) {
    __mmask16 m = first_lanes(n);
    __m512i lo = bf16_lanes(x0, m);
    __m512i hi = x1 ? bf16_lanes(*x1, m) : _mm512_setzero_si512();
    return _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16));
}

// ---- packing ----------------------------------------------------------------------------------
// Element (i, k) of op(A) and (k, j) of op(B).
static inline const float *a_at(const gemm_problem *p, int i, int k) {
    return p->ta == GEMM_N ? p->A + (int64_t)i * p->lda + k : p->A + (int64_t)k * p->lda + i;
}
static inline const float *b_at(const gemm_problem *p, int k, int j) {
    return p->tb == GEMM_N ? p->B + (int64_t)k * p->ldb + j : p->B + (int64_t)j * p->ldb + k;
}
// The same elements for the bf16 kernels, which also read operands held in bf16.
static inline src16 a16_at(const gemm_problem *p, int i, int k) {
    int64_t o = p->ta == GEMM_N ? (int64_t)i * p->lda + k : (int64_t)k * p->lda + i;
    return p->A16 ? (src16){NULL, p->A16 + o} : (src16){p->A + o, NULL};
}
static inline src16 b16_at(const gemm_problem *p, int k, int j) {
    int64_t o = p->tb == GEMM_N ? (int64_t)k * p->ldb + j : (int64_t)j * p->ldb + k;
    return p->B16 ? (src16){NULL, p->B16 + o} : (src16){p->B + o, NULL};
}

// f32 B block: columns j0 .. j0+nc, k0 .. k0+kc → panels of NR columns, dst[p][k][0..NR), zero
// columns past nc.
static void pack_b_f32(float *dst, const gemm_problem *p, int k0, int kc, int j0, int nc) {
    for (int jp = 0; jp < nc; jp += NR, dst += (int64_t)kc * NR) {
        int w = nc - jp < NR ? nc - jp : NR;
        if (p->tb == GEMM_N) {
            __mmask16 m0 = first_lanes(w), m1 = first_lanes(w - 16);
            for (int k = 0; k < kc; k++) {
                const float *s = b_at(p, k0 + k, j0 + jp);
                _mm512_store_ps(dst + k * NR, _mm512_maskz_loadu_ps(m0, s));
                _mm512_store_ps(dst + k * NR + 16, _mm512_maskz_loadu_ps(m1, s + 16));
            }
        } else {   // B stored (N, K): rows of B are columns of op(B); transpose 16 × 16 tiles
            for (int g = 0; g < 2; g++)
                for (int kk = 0; kk < kc; kk += 16) {
                    __m512i r[16];
                    __mmask16 km = first_lanes(kc - kk);
                    for (int t = 0; t < 16; t++)
                        r[t] = g * 16 + t < w ? _mm512_castps_si512(_mm512_maskz_loadu_ps(km, b_at(p, k0 + kk, j0 + jp + g * 16 + t)))
                                              : _mm512_setzero_si512();
                    transpose16(r);
                    int nk = kc - kk < 16 ? kc - kk : 16;
                    for (int t = 0; t < nk; t++) _mm512_store_si512(dst + (kk + t) * NR + g * 16, r[t]);
                }
        }
    }
}

// f32 A strip: rows i0 .. i0+mr, k0 .. k0+kc → dst[k][0..MR), zero rows past mr.
static void pack_a_f32(float *dst, const gemm_problem *p, int i0, int mr, int k0, int kc) {
    const __mmask16 mr_lanes = first_lanes(MR);
    if (p->ta == GEMM_T) {   // A stored (K, M): MR consecutive floats per k
        __mmask16 m = first_lanes(mr);
        for (int k = 0; k < kc; k++) _mm512_mask_storeu_ps(dst + k * MR, mr_lanes, _mm512_maskz_loadu_ps(m, a_at(p, i0, k0 + k)));
        return;
    }
    for (int kk = 0; kk < kc; kk += 16) {
        __m512i r[16];
        __mmask16 km = first_lanes(kc - kk);
        for (int t = 0; t < 16; t++)
            r[t] = t < mr ? _mm512_castps_si512(_mm512_maskz_loadu_ps(km, a_at(p, i0 + t, k0 + kk))) : _mm512_setzero_si512();
        transpose16(r);
        int nk = kc - kk < 16 ? kc - kk : 16;
        for (int t = 0; t < nk; t++) _mm512_mask_storeu_epi32(dst + (kk + t) * MR, mr_lanes, r[t]);
    }
}

// bf16 B block: kc k's (kp = ⌈kc/2⌉ pairs) → panels dst[p][rows][0..NR) of 32-bit pairs, rows ≥ kp
// (pairs past kp zero: the AMX kernel runs whole 16-pair chunks).
static void pack_b_bf16(uint32_t *dst, const gemm_problem *p, int k0, int kc, int j0, int nc, int rows) {
    int kp = (kc + 1) / 2;
    for (int jp = 0; jp < nc; jp += NR, dst += (int64_t)rows * NR) {
        for (int q = kp; q < rows; q++) _mm512_store_si512(dst + q * NR, _mm512_setzero_si512()),
                                        _mm512_store_si512(dst + q * NR + 16, _mm512_setzero_si512());
        int w = nc - jp < NR ? nc - jp : NR;
        if (p->tb == GEMM_N) {
            for (int q = 0; q < kp; q++) {
                src16 r0 = b16_at(p, k0 + 2 * q, j0 + jp), r1 = r0, r0b = src16_add(r0, 16), r1b = r0b;
                int two = 2 * q + 1 < kc;
                if (two) r1 = b16_at(p, k0 + 2 * q + 1, j0 + jp), r1b = src16_add(r1, 16);
                _mm512_store_si512(dst + q * NR, bf16_pairs_of_rows(r0, two ? &r1 : NULL, w));
                _mm512_store_si512(dst + q * NR + 16, bf16_pairs_of_rows(r0b, two ? &r1b : NULL, w - 16));
            }
        } else {   // B stored (N, K): each row holds consecutive k's, i.e. whole pairs
            for (int g = 0; g < 2; g++)
                for (int qq = 0; qq < kp; qq += 16) {
                    __m512i r[16];
                    for (int t = 0; t < 16; t++)
                        r[t] = g * 16 + t < w ? bf16_pairs_of_row(b16_at(p, k0 + 2 * qq, j0 + jp + g * 16 + t), kc - 2 * qq)
                                              : _mm512_setzero_si512();
                    transpose16(r);
                    int nq = kp - qq < 16 ? kp - qq : 16;
                    for (int t = 0; t < nq; t++) _mm512_store_si512(dst + (qq + t) * NR + g * 16, r[t]);
                }
        }
    }
}

// bf16 A strip → dst[kp][0..MR) of 32-bit pairs, zero rows past mr.
static void pack_a_bf16(uint32_t *dst, const gemm_problem *p, int i0, int mr, int k0, int kc) {
    const __mmask16 mr_lanes = first_lanes(MR);
    int kp = (kc + 1) / 2;
    if (p->ta == GEMM_T) {   // A stored (K, M): row k holds MR consecutive i's
        for (int q = 0; q < kp; q++) {
            src16 r0 = a16_at(p, i0, k0 + 2 * q), r1 = r0;
            int two = 2 * q + 1 < kc;
            if (two) r1 = a16_at(p, i0, k0 + 2 * q + 1);
            _mm512_mask_storeu_epi32(dst + q * MR, mr_lanes, bf16_pairs_of_rows(r0, two ? &r1 : NULL, mr));
        }
        return;
    }
    for (int qq = 0; qq < kp; qq += 16) {
        __m512i r[16];
        for (int t = 0; t < 16; t++)
            r[t] = t < mr ? bf16_pairs_of_row(a16_at(p, i0 + t, k0 + 2 * qq), kc - 2 * qq) : _mm512_setzero_si512();
        transpose16(r);
        int nq = kp - qq < 16 ? kp - qq : 16;
        for (int t = 0; t < nq; t++) _mm512_mask_storeu_epi32(dst + (qq + t) * MR, mr_lanes, r[t]);
    }
}

// AMX A strip: rows i0 .. i0+mr of op(A), k0 .. k0+kc → dst[r][0..kpp) of 32-bit pairs
// (bf16(k even) | bf16(k odd) << 16), row-major with row stride kpp (a multiple of 16: one tile
// row is 16 pairs), rows past mr and pairs past ⌈kc/2⌉ zero.
static void pack_a_amx(uint32_t *dst, const gemm_problem *p, int i0, int mr, int k0, int kc, int kpp) {
    if (p->ta == GEMM_N) {   // each row of op(A) holds consecutive k's: whole pairs
        for (int r = 0; r < MR_AMX; r++) {
            uint32_t *d = dst + (int64_t)r * kpp;
            for (int q = 0; q < kpp; q += 16)
                _mm512_store_si512(d + q, r < mr ? bf16_pairs_of_row(a16_at(p, i0 + r, k0 + 2 * q), kc - 2 * q)
                                                 : _mm512_setzero_si512());
        }
        return;
    }
    // A stored (K, M): row k holds consecutive i's; pairs of rows give 16 i's per vector, which a
    // 16 × 16 transpose turns into 16 pairs of one i
    for (int rr = 0; rr < MR_AMX; rr += 16)
        for (int qq = 0; qq < kpp; qq += 16) {
            __m512i t[16];
            for (int u = 0; u < 16; u++) {
                int k = 2 * (qq + u);
                src16 r1 = k + 1 < kc ? a16_at(p, i0 + rr, k0 + k + 1) : (src16){NULL, NULL};
                t[u] = k < kc && rr < mr ? bf16_pairs_of_rows(a16_at(p, i0 + rr, k0 + k), k + 1 < kc ? &r1 : NULL, mr - rr)
                                         : _mm512_setzero_si512();
            }
            transpose16(t);
            for (int v = 0; v < 16; v++) _mm512_store_si512(dst + (int64_t)(rr + v) * kpp + qq, t[v]);
        }
}

// ---- micro-kernels --------------------------------------------------------------------------
// C tile (mr × nr, mr ≤ rows, nr ≤ 16·nv) = alpha · acc + beta · C, or alpha · acc when beta = 0
// (C not read). Unrolled over the compile-time `rows` so the accumulators stay in registers.
static inline __attribute__((always_inline)) void store_tile(const __m512 acc0[MR], const __m512 acc1[MR], int rows,
                                                             int nv, float *c, int ldc, int mr, int nr, float alpha,
                                                             float beta) {
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    __mmask16 m0 = first_lanes(nr), m1 = first_lanes(nr - 16);
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++) {
        if (r >= mr) break;
        float *cr = c + (int64_t)r * ldc;
        if (beta == 0.0f) {
            _mm512_mask_storeu_ps(cr, m0, _mm512_mul_ps(va, acc0[r]));
            if (nv == 2) _mm512_mask_storeu_ps(cr + 16, m1, _mm512_mul_ps(va, acc1[r]));
        } else {
            _mm512_mask_storeu_ps(cr, m0, _mm512_fmadd_ps(va, acc0[r], _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m0, cr))));
            if (nv == 2)
                _mm512_mask_storeu_ps(cr + 16, m1,
                                      _mm512_fmadd_ps(va, acc1[r], _mm512_mul_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16))));
        }
    }
}

// f32: acc(r, j) = Σ_k A(r, k) · b[k][j], one FMA per k in increasing k, for r < rows (4, 8 or
// MR) and nv = 1 or 2 vectors of B. A(r, k) = a[r·rs + k·ks]: a packed strip (rs = 1, ks = MR) or
// op(A) in place (full strips only, so every row read exists).
static inline __attribute__((always_inline)) void tile_f32(int rows, int nv, int kc, const float *restrict a,
                                                           int64_t rs, int64_t ks, const float *restrict b, float *c,
                                                           int ldc, int mr, int nr, float alpha, float beta) {
    __m512 acc0[MR], acc1[MR];
    for (int r = 0; r < MR; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++) {   // the C tile is read/written after the K loop: fetch it now
        if (r >= mr) break;
        _mm_prefetch((const char *)(c + (int64_t)r * ldc), _MM_HINT_T0);
        if (nv == 2) _mm_prefetch((const char *)(c + (int64_t)r * ldc + 16), _MM_HINT_T0);
    }
    for (int k = 0; k < kc; k++, a += ks, b += NR) {
        __m512 b0 = _mm512_load_ps(b), b1 = nv == 2 ? _mm512_load_ps(b + 16) : b0;
#pragma GCC unroll 16
        for (int r = 0; r < rows; r++) {
            __m512 av = _mm512_set1_ps(a[r * rs]);
            acc0[r] = _mm512_fmadd_ps(av, b0, acc0[r]);
            if (nv == 2) acc1[r] = _mm512_fmadd_ps(av, b1, acc1[r]);
        }
    }
    store_tile(acc0, acc1, rows, nv, c, ldc, mr, nr, alpha, beta);
}
typedef void (*tile_f32_fn)(int kc, const float *a, int64_t rs, int64_t ks, const float *b, float *c, int ldc, int mr,
                            int nr, float alpha, float beta);
#define TILE_F32(rows, nv)                                                                                         \
    static void tile_f32_##rows##x##nv(int kc, const float *a, int64_t rs, int64_t ks, const float *b, float *c, \
                                       int ldc, int mr, int nr, float alpha, float beta) {                        \
        tile_f32(rows, nv, kc, a, rs, ks, b, c, ldc, mr, nr, alpha, beta);                                         \
    }
TILE_F32(MR, 2)
TILE_F32(MR, 1)
TILE_F32(8, 2)
TILE_F32(8, 1)
TILE_F32(4, 2)
TILE_F32(4, 1)
// Packed strips: the stride constants let the compiler address A with immediate offsets.
static void tile_f32_packed_full(int kc, const float *a, const float *b, float *c, int ldc, float alpha, float beta) {
    tile_f32(MR, 2, kc, a, 1, MR, b, c, ldc, MR, NR, alpha, beta);
}
// [rows class][nv − 1]: rows class 0 → 4, 1 → 8, 2 → MR
static const tile_f32_fn tiles_f32[3][2] = {
    {tile_f32_4x1, tile_f32_4x2}, {tile_f32_8x1, tile_f32_8x2}, {tile_f32_MRx1, tile_f32_MRx2}};

// bf16: acc(r, j) += a[q][r].lo · b[q][j].lo + a[q][r].hi · b[q][j].hi per pair q (vdpbf16ps).
static inline __attribute__((always_inline)) void tile_bf16(int rows, int nv, int kp, const uint32_t *restrict a,
                                                            const uint32_t *restrict b, float *c, int ldc, int mr,
                                                            int nr, float alpha, float beta) {
    __m512 acc0[MR], acc1[MR];
    for (int r = 0; r < MR; r++) acc0[r] = acc1[r] = _mm512_setzero_ps();
#pragma GCC unroll 16
    for (int r = 0; r < rows; r++) {
        if (r >= mr) break;
        _mm_prefetch((const char *)(c + (int64_t)r * ldc), _MM_HINT_T0);
        if (nv == 2) _mm_prefetch((const char *)(c + (int64_t)r * ldc + 16), _MM_HINT_T0);
    }
    for (int q = 0; q < kp; q++, a += MR, b += NR) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b), b1 = nv == 2 ? (__m512bh)_mm512_load_si512(b + 16) : b0;
#pragma GCC unroll 16
        for (int r = 0; r < rows; r++) {
            __m512bh av = (__m512bh)_mm512_set1_epi32((int)a[r]);
            acc0[r] = _mm512_dpbf16_ps(acc0[r], av, b0);
            if (nv == 2) acc1[r] = _mm512_dpbf16_ps(acc1[r], av, b1);
        }
    }
    store_tile(acc0, acc1, rows, nv, c, ldc, mr, nr, alpha, beta);
}
typedef void (*tile_bf16_fn)(int kp, const uint32_t *a, const uint32_t *b, float *c, int ldc, int mr, int nr,
                             float alpha, float beta);
#define TILE_BF16(rows, nv)                                                                                   \
    static void tile_bf16_##rows##x##nv(int kp, const uint32_t *a, const uint32_t *b, float *c, int ldc, int mr, \
                                        int nr, float alpha, float beta) {                                    \
        tile_bf16(rows, nv, kp, a, b, c, ldc, mr, nr, alpha, beta);                                           \
    }
TILE_BF16(MR, 2)
TILE_BF16(MR, 1)
TILE_BF16(8, 2)
TILE_BF16(8, 1)
TILE_BF16(4, 2)
TILE_BF16(4, 1)
static const tile_bf16_fn tiles_bf16[3][2] = {
    {tile_bf16_4x1, tile_bf16_4x2}, {tile_bf16_8x1, tile_bf16_8x2}, {tile_bf16_MRx1, tile_bf16_MRx2}};

// AMX: the 32 × 32 C tile as four 16 × 16 f32 accumulator tiles (tmm0..3), per 16 pairs (32 k's)
// two A tiles (tmm4, 5: rows 0..15, 16..31) and two B tiles (tmm6, 7: columns 0..15, 16..31),
// four tdpbf16ps. a: pack_a_amx's strip (row stride kpp pairs); b: a B panel (NR pairs a row).
static void tile_amx(int kpp, const uint32_t *a, const uint32_t *b, float *c, int ldc, int mr, int nr, float alpha,
                     float beta) {
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    const int a_stride = kpp * 4, b_stride = NR * 4;   // bytes
    for (int q = 0; q < kpp; q += 16) {
        _tile_loadd(4, a + q, a_stride);
        _tile_loadd(5, a + (int64_t)16 * kpp + q, a_stride);
        _tile_loadd(6, b + (int64_t)q * NR, b_stride);
        _tile_loadd(7, b + (int64_t)q * NR + 16, b_stride);
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    float acc[MR_AMX * NR] __attribute__((aligned(64)));
    _tile_stored(0, acc, b_stride);
    _tile_stored(1, acc + 16, b_stride);
    _tile_stored(2, acc + 16 * NR, b_stride);
    _tile_stored(3, acc + 16 * NR + 16, b_stride);
    __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
    __mmask16 m0 = first_lanes(nr), m1 = first_lanes(nr - 16);
    for (int r = 0; r < mr; r++) {
        float *cr = c + (int64_t)r * ldc;
        __m512 x0 = _mm512_mul_ps(va, _mm512_load_ps(acc + r * NR)), x1 = _mm512_mul_ps(va, _mm512_load_ps(acc + r * NR + 16));
        if (beta != 0.0f) {
            x0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), x0);
            x1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), x1);
        }
        _mm512_mask_storeu_ps(cr, m0, x0);
        _mm512_mask_storeu_ps(cr + 16, m1, x1);
    }
}

// Every tile 16 rows × 64 bytes (16 f32, 32 bf16 or 16 bf16 pairs); loaded once per thread and block.
static void amx_configure(void) {
    struct {
        uint8_t palette, start_row, reserved[14];
        uint16_t colsb[16];
        uint8_t rows[16];
    } __attribute__((aligned(64))) cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int t = 0; t < 8; t++) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    _tile_loadconfig(&cfg);
}

static inline int rows_class(int mr) { return mr <= 4 ? 0 : mr <= 8 ? 1 : 2; }

// ---- blocking driver --------------------------------------------------------------------------
// K blocks: ⌈K / KC⌉ blocks (KC in k pairs for bf16) of equal depth rounded up to a multiple of 8
// (AMX: of 32, its chunk of k's). A function of K and the kernel alone.
static int k_block_depth(const gemm_problem *p) {
    int kmax = p->prec == PREC_F32 ? KC : 2 * KC, round = p->prec == PREC_AMX ? 32 : 8;
    int nb = (p->K + kmax - 1) / kmax;
    int d = (p->K + nb - 1) / nb;
    return (d + round - 1) / round * round;
}

// Per-thread packing buffers, kept for the life of the thread (grown never: fixed maxima) and
// freed when it exits (a pthread key's destructor: OpenMP ends threads when a team shrinks).
static _Thread_local void *packed_a, *packed_b;
static pthread_key_t buffers_key;
static pthread_once_t buffers_once = PTHREAD_ONCE_INIT;

static void free_buffers(void *a) {
    free(a);          // packed_a; packed_b is a's partner, allocated in the same call
    free(packed_b);   // (key destructors run on the exiting thread, so its TLS is still there)
    packed_a = packed_b = NULL;
}

static void make_key(void) {
    if (pthread_key_create(&buffers_key, free_buffers) != 0) sl_die(NULL, "gemm: pthread_key_create failed");
}

static void ensure_buffers(void) {
    if (!packed_a) {
        packed_a = aligned_alloc(64, sizeof(float) * (MR > MR_AMX ? MR : MR_AMX) * KC);
        packed_b = aligned_alloc(64, sizeof(float) * (size_t)KC * NC);
        if (!packed_a || !packed_b) sl_die(NULL, "gemm: out of memory for packing buffers");
        pthread_once(&buffers_once, make_key);
        pthread_setspecific(buffers_key, packed_a);
    }
}

// C[m0..m1, n0..n1] on this thread.
static void run_block_amx(const gemm_problem *p, int m0, int m1, int n0, int n1);

static void run_block(const gemm_problem *p, int m0, int m1, int n0, int n1) {
    ensure_buffers();
    if (p->prec == PREC_AMX) {
        run_block_amx(p, m0, m1, n0, n1);
        return;
    }
    const int depth = k_block_depth(p);
    for (int j0 = n0; j0 < n1; j0 += NC) {
        int nc = n1 - j0 < NC ? n1 - j0 : NC;
        for (int k0 = 0; k0 < p->K; k0 += depth) {
            int kc = p->K - k0 < depth ? p->K - k0 : depth;
            float beta = k0 == 0 ? p->beta : 1.0f;
            if (p->prec == PREC_F32) pack_b_f32(packed_b, p, k0, kc, j0, nc);
            else pack_b_bf16(packed_b, p, k0, kc, j0, nc, (kc + 1) / 2);
            int kdim = p->prec == PREC_F32 ? kc : (kc + 1) / 2;   // packed rows per panel
            // Few panels per strip: packing A would cost about as much as the strip's FMAs, so full
            // strips read op(A) in place (its rows, or its columns when transposed, are contiguous).
            int direct_a = p->prec == PREC_F32 && nc <= DIRECT_A_MAX_N;
            for (int i0 = m0; i0 < m1; i0 += MR) {
                int mr = m1 - i0 < MR ? m1 - i0 : MR;
                const float *a = packed_a;
                int64_t rs = 1, ks = MR;
                if (direct_a && mr == MR) {
                    a = a_at(p, i0, k0);
                    rs = p->ta == GEMM_N ? p->lda : 1;
                    ks = p->ta == GEMM_N ? 1 : p->lda;
                } else if (p->prec == PREC_F32) {
                    pack_a_f32(packed_a, p, i0, mr, k0, kc);
                } else {
                    pack_a_bf16(packed_a, p, i0, mr, k0, kc);
                }
                float *crow = p->C + (int64_t)i0 * p->ldc + j0;
                int rc = rows_class(mr);
                for (int jp = 0; jp < nc; jp += NR) {
                    int nr = nc - jp < NR ? nc - jp : NR, nv = nr > 16 ? 2 : 1;
                    if (p->prec == PREC_F32) {
                        const float *pb = (const float *)packed_b + (int64_t)(jp / NR) * kdim * NR;
                        if (mr == MR && nr == NR && ks == MR)
                            tile_f32_packed_full(kc, a, pb, crow + jp, p->ldc, p->alpha, beta);
                        else
                            tiles_f32[rc][nv - 1](kc, a, rs, ks, pb, crow + jp, p->ldc, mr, nr, p->alpha, beta);
                    } else {
                        const uint32_t *pb = (const uint32_t *)packed_b + (int64_t)(jp / NR) * kdim * NR;
                        tiles_bf16[rc][nv - 1](kdim, packed_a, pb, crow + jp, p->ldc, mr, nr, p->alpha, beta);
                    }
                }
            }
        }
    }
}

// The AMX path of run_block: K blocks outermost. With several NC blocks each K block of the
// thread's rows of op(A) is packed once (rows in chunks of at most AMX_A_BYTES) and reused by
// all of them, which matters for convolutions (A = weights, N = a band of 4096 pixels: four NC
// blocks); with one, each strip is packed just before use. Each C element sees its K blocks in
// increasing order either way (bit-identical results).
#define AMX_A_BYTES (8 << 20)
static _Thread_local uint32_t *amx_a;   // the packed A block, grown as needed
static _Thread_local size_t amx_a_cap;
static pthread_key_t amx_a_key;
static pthread_once_t amx_a_once = PTHREAD_ONCE_INIT;
static void free_amx_a(void *a) {
    free(a);
    amx_a = NULL, amx_a_cap = 0;
}
static void make_amx_a_key(void) {
    if (pthread_key_create(&amx_a_key, free_amx_a) != 0) sl_die(NULL, "gemm: pthread_key_create failed");
}

static void run_block_amx(const gemm_problem *p, int m0, int m1, int n0, int n1) {
    const int depth = k_block_depth(p), kpp_max = amx_kpp(depth);
    const int prepack = n1 - n0 > NC && !p->packed_a;
    int mc = AMX_A_BYTES / (kpp_max * 4) / MR_AMX * MR_AMX;
    if (mc < MR_AMX) mc = MR_AMX;
    int strips = ((m1 - m0 < mc ? m1 - m0 : mc) + MR_AMX - 1) / MR_AMX;
    size_t need = (size_t)strips * MR_AMX * kpp_max;
    if (prepack && need > amx_a_cap) {
        free(amx_a);
        amx_a = aligned_alloc(64, need * sizeof(uint32_t));
        if (!amx_a) sl_die(NULL, "gemm: out of memory for packing buffers");
        amx_a_cap = need;
        pthread_once(&amx_a_once, make_amx_a_key);
        pthread_setspecific(amx_a_key, amx_a);
    }
    amx_configure();
    const int64_t panels = (p->N + NR - 1) / NR;   // of all of op(B), for offsets into p->packed_b
    const int64_t strips_all = (p->M + MR_AMX - 1) / MR_AMX;   // of all of op(A), into p->packed_a
    for (int ic = m0; ic < m1; ic += mc) {
        int ie = m1 - ic < mc ? m1 : ic + mc;
        int64_t koff = 0, aoff = 0;   // where this K block's panels / strips start in p->packed_b / _a
        for (int k0 = 0; k0 < p->K; k0 += depth) {
            int kc = p->K - k0 < depth ? p->K - k0 : depth;
            int kpp = amx_kpp(kc);
            float beta = k0 == 0 ? p->beta : 1.0f;
            if (prepack)
                for (int i0 = ic; i0 < ie; i0 += MR_AMX)
                    pack_a_amx(amx_a + (int64_t)(i0 - ic) * kpp, p, i0, ie - i0 < MR_AMX ? ie - i0 : MR_AMX, k0, kc, kpp);
            for (int j0 = n0; j0 < n1; j0 += NC) {
                int nc = n1 - j0 < NC ? n1 - j0 : NC;
                const uint32_t *bblock = packed_b;
                if (p->packed_b) bblock = p->packed_b + koff + (int64_t)(j0 / NR) * kpp * NR;
                else pack_b_bf16(packed_b, p, k0, kc, j0, nc, kpp);
                for (int i0 = ic; i0 < ie; i0 += MR_AMX) {
                    int mr = ie - i0 < MR_AMX ? ie - i0 : MR_AMX;
                    const uint32_t *a = amx_a + (int64_t)(i0 - ic) * kpp;
                    if (p->packed_a) {
                        a = p->packed_a + aoff + (int64_t)(i0 / MR_AMX) * MR_AMX * kpp;
                    } else if (!prepack) {   // one NC block: pack each strip just before its tiles (it stays in L1)
                        pack_a_amx(packed_a, p, i0, mr, k0, kc, kpp);
                        a = packed_a;
                    }
                    float *crow = p->C + (int64_t)i0 * p->ldc + j0;
                    for (int jp = 0; jp < nc; jp += NR) {
                        int nr = nc - jp < NR ? nc - jp : NR;
                        tile_amx(kpp, a, bblock + (int64_t)(jp / NR) * kpp * NR, crow + jp, p->ldc, mr, nr, p->alpha,
                                 beta);
                    }
                }
            }
            koff += (int64_t)kpp * panels * NR;
            aoff += (int64_t)kpp * strips_all * MR_AMX;
        }
    }
    _tile_release();   // a thread holding tile data makes every context switch save 8 KB more
}

static void split_run(const gemm_problem *p, int threads, int split_m, int unit, int len);
static uint32_t *amx_pack_b_all(const gemm_problem *p, int threads);

// Below this much work one thread does it all (thread start-up would cost more than it saves).
#define PARALLEL_MIN_FLOPS 4e6

static void drive(const gemm_problem *p) {
    if (p->M <= 0 || p->N <= 0) return;
    if (p->K <= 0 || p->alpha == 0.0f) {   // C = beta · C; A and B are not read
        for (int i = 0; i < p->M; i++) {
            float *c = p->C + (int64_t)i * p->ldc;
            for (int j = 0; j < p->N; j++) c[j] = p->beta == 0.0f ? 0.0f : p->beta * c[j];
        }
        return;
    }
    int threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    double flops = 2.0 * p->M * (double)p->N * p->K;
    if (threads <= 1 || flops < PARALLEL_MIN_FLOPS) {
        run_block(p, 0, p->M, 0, p->N);
        return;
    }
    // Split the longer side into contiguous ranges of whole strips (MR rows) or panels (NR columns).
    int split_m = p->M >= p->N;
    int unit = split_m ? (p->prec == PREC_AMX ? MR_AMX : MR) : NR, len = split_m ? p->M : p->N;
    int units = (len + unit - 1) / unit;
    if (threads > units) threads = units;
    // AMX split over rows: every thread would pack all of op(B) for itself; pack it once, shared
    if (p->prec == PREC_AMX && split_m && !p->packed_b && threads > 1) {
        gemm_problem q = *p;
        uint32_t *panels = amx_pack_b_all(p, threads);
        q.packed_b = panels;
        split_run(&q, threads, split_m, unit, len);
        free(panels);
        return;
    }
    split_run(p, threads, split_m, unit, len);
}

// The longer side split into contiguous ranges of whole units (strips or panels), one per thread.
static void split_run(const gemm_problem *p, int threads, int split_m, int unit, int len) {
    int units = (len + unit - 1) / unit;
#pragma omp parallel num_threads(threads)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int u0 = (int)((int64_t)units * t / nt), u1 = (int)((int64_t)units * (t + 1) / nt);
        int lo = u0 * unit, hi = u1 * unit < len ? u1 * unit : len;
        if (lo < hi) {
            if (split_m) run_block(p, lo, hi, 0, p->N);
            else run_block(p, 0, p->M, lo, hi);
        }
    }
}

void gemm_avx512(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                 int ldb, float beta, float *C, int ldc) {
    gemm_problem p = {PREC_F32, ta, tb, M, N, K, alpha, beta, A, lda, B, ldb, C, ldc, NULL, NULL, NULL, NULL};
    drive(&p);
}

void gemm_bf16_avx512(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda,
                      const float *B, int ldb, float beta, float *C, int ldc) {
    gemm_bf16_held(ta, tb, M, N, K, alpha, A, NULL, lda, B, NULL, ldb, beta, C, ldc, 0);
}

void gemm_bf16_amx(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
                   int ldb, float beta, float *C, int ldc) {
    gemm_bf16_held(ta, tb, M, N, K, alpha, A, NULL, lda, B, NULL, ldb, beta, C, ldc, 1);
}

void gemm_bf16_held(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, const uint16_t *A16,
                    int lda, const float *B, const uint16_t *B16, int ldb, float beta, float *C, int ldc, int amx) {
    if (amx && !gemm_amx_supported()) sl_die(NULL, "gemm_bf16_amx: this CPU or kernel offers no AMX-BF16 (use --precision fp32)");
    if (!amx && !gemm_bf16_supported()) sl_die(NULL, "gemm_bf16: this CPU has no AVX512_BF16 (use --precision fp32)");
    gemm_problem p = {amx ? PREC_AMX : PREC_BF16, ta, tb, M, N, K, alpha, beta, A, lda, B, ldb, C, ldc, NULL, NULL, A16, B16};
    drive(&p);
}

// A whole packed AMX operand: every K block (depth deep, the last one shorter; amx_kpp pairs each)
// after the other, each holding `rows` 32-bit pairs per pair index (N rounded up to whole panels
// for B, M to whole strips for A). Offset of K block kb: kb · amx_kpp(depth) · rows (all blocks
// before the last are full depth).
static uint32_t *amx_alloc_packed(int K, int depth, int64_t rows) {
    int64_t total = 0;
    for (int k0 = 0; k0 < K; k0 += depth) total += (int64_t)amx_kpp(K - k0 < depth ? K - k0 : depth) * rows;
    uint32_t *dst = aligned_alloc(64, (size_t)(total > 0 ? total : 16) * sizeof(uint32_t));
    if (!dst) sl_die(NULL, "gemm: out of memory for a packed operand");
    return dst;
}

// op(B) (K, N) as the AMX kernel's bf16 panels (amx_alloc_packed's layout, ⌈N/NR⌉ panels per K
// block): what run_block_amx would pack, done once. The (K block, NC block) pieces are
// independent: `threads` threads pack them side by side.
static uint32_t *amx_pack_b_all(const gemm_problem *p, int threads) {
    const int depth = k_block_depth(p), K = p->K, N = p->N;
    const int64_t width = (N + NR - 1) / NR * NR;
    const int nkb = (K + depth - 1) / depth, njb = (N + NC - 1) / NC;
    uint32_t *dst = amx_alloc_packed(K, depth, width);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int item = 0; item < nkb * njb; item++) {
        int kb = item / njb, jb = item % njb, k0 = kb * depth, j0 = jb * NC;
        int kc = K - k0 < depth ? K - k0 : depth, nc = N - j0 < NC ? N - j0 : NC, kpp = amx_kpp(kc);
        pack_b_bf16(dst + (int64_t)kb * amx_kpp(depth) * width + (int64_t)(j0 / NR) * kpp * NR, p, k0, kc, j0, nc, kpp);
    }
    return dst;
}

unsigned *gemm_amx_pack_b(gemm_op tb, int K, int N, const float *B, const uint16_t *B16, int ldb) {
    gemm_problem p = {PREC_AMX, GEMM_N, tb, 0, N, K, 1.0f, 0.0f, NULL, 0, B, ldb, NULL, 0, NULL, NULL, NULL, B16};
    return amx_pack_b_all(&p, omp_in_parallel() ? 1 : omp_get_max_threads());
}

// op(A) (M, K) as the AMX kernel's strips (amx_alloc_packed's layout, ⌈M/32⌉ strips of 32 rows
// per K block, pack_a_amx's layout each); (K block, strip) pieces packed side by side.
unsigned *gemm_amx_pack_a(gemm_op ta, int M, int K, const float *A, const uint16_t *A16, int lda) {
    gemm_problem p = {PREC_AMX, ta, GEMM_N, M, 0, K, 1.0f, 0.0f, A, lda, NULL, 0, NULL, 0, NULL, NULL, A16, NULL};
    const int depth = k_block_depth(&p), threads = omp_in_parallel() ? 1 : omp_get_max_threads();
    const int strips = (M + MR_AMX - 1) / MR_AMX, nkb = (K + depth - 1) / depth;
    uint32_t *dst = amx_alloc_packed(K, depth, (int64_t)strips * MR_AMX);
#pragma omp parallel for schedule(static) num_threads(threads) if (threads > 1)
    for (int item = 0; item < nkb * strips; item++) {
        int kb = item / strips, st = item % strips, k0 = kb * depth, i0 = st * MR_AMX;
        int kc = K - k0 < depth ? K - k0 : depth, kpp = amx_kpp(kc);
        pack_a_amx(dst + (int64_t)kb * amx_kpp(depth) * strips * MR_AMX + (int64_t)st * MR_AMX * kpp, &p, i0,
                   M - i0 < MR_AMX ? M - i0 : MR_AMX, k0, kc, kpp);
    }
    return dst;
}

void gemm_amx_packed_a(const unsigned *panels, gemm_op tb, int M, int N, int K, float alpha, const float *B,
                       const uint16_t *B16, int ldb, float beta, float *C, int ldc) {
    gemm_problem p = {PREC_AMX, GEMM_N, tb, M, N, K, alpha, beta, NULL, 0, B, ldb, C, ldc, NULL, panels, NULL, B16};
    drive(&p);
}

void gemm_amx_packed_b(gemm_op ta, int M, int N, int K, float alpha, const float *A, const uint16_t *A16, int lda,
                       const unsigned *panels, float beta, float *C, int ldc) {
    gemm_problem p = {PREC_AMX, ta, GEMM_N, M, N, K, alpha, beta, A, lda, NULL, 0, C, ldc, panels, NULL, A16, NULL};
    drive(&p);
}

// AMX where the CPU and the OS offer it, else vdpbf16ps; SINGLORA_BF16=avx512 forces the latter.
int gemm_bf16_uses_amx(void) {
    static _Atomic int use_amx = -1;
    int amx = use_amx;
    if (amx < 0) {
        const char *env = getenv("SINGLORA_BF16");
        amx = gemm_amx_supported() && !(env && !strcmp(env, "avx512"));
        use_amx = amx;
    }
    return amx;
}

void gemm_bf16(gemm_op ta, gemm_op tb, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc) {
    gemm_bf16_held(ta, tb, M, N, K, alpha, A, NULL, lda, B, NULL, ldb, beta, C, ldc, gemm_bf16_uses_amx());
}

#ifdef __clang__
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
