// Multi-head attention tiled over queries. For one (batch, head, query tile [i0, i1)):
//   S (Tq, Lk') = scale · Q_tile · Kᵀ        (sgemm; heads are read in place with ld = H·Dh)
//   P = softmax_rows(S)                     (row max subtracted; causal keys j > i masked)
//   O_tile (Tq, Dh) = P · V                 (sgemm)
// With a causal mask only keys j < min(Lk, i1) can be seen by the tile, so Lk' = that bound.
// Work items (b, h, tile) run in an OpenMP loop; the GEMMs inside are then single-threaded.
#include "engine/kernels/attention.h"

#include "engine/core/profile.h"
#include "engine/kernels/gemm.h"
#include <math.h>
#include <omp.h>
#include <stdint.h>

#include "engine/kernels/fast_exp.h"
#include "engine/core/tensor.h"

// Queries per tile: S (Tq, Lk) stays ~1 MB, between 16 and 256 rows.
static int query_tile(int Lq, int Lk) {
    int t = Lk > 0 ? (256 * 1024) / Lk : 256;
    if (t > 256) t = 256;
    if (t < 16) t = 16;
    if (t > Lq) t = Lq;
    return t;
}

// Keys visible to the tile starting at query i0 with tq rows.
static int tile_keys(int i0, int tq, int Lk, int causal) {
    if (!causal) return Lk;
    int lim = i0 + tq;
    return lim < Lk ? lim : Lk;
}

// The softmax loops run over whole rows of 77–4096 keys: full 512-bit vectors where the CPU has
// them (GCC's default on AVX-512 CPUs is 256-bit; the exp polynomial is bound by vector width).
// GCC only: clang has no such pragma and rejects it as unknown.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC target("prefer-vector-width=512")
#endif

// S (tq, lk) → exp(S − rowmax) in place, unnormalised; rowsum (tq) gets each row's sum. Keys j > i
// of a causal row are set to 0. Callers normalise (forward: the output rows, after P·V).
static void softmax_rows_unnormalised(float *S, float *rowsum, int tq, int lk, int i0, int causal) {
    for (int r = 0; r < tq; r++) {
        float *s = S + (int64_t)r * lk;
        int n = causal ? (i0 + r + 1 < lk ? i0 + r + 1 : lk) : lk;   // visible keys of query i0 + r
        float mx = -INFINITY;
#pragma omp simd reduction(max : mx)
        for (int j = 0; j < n; j++) mx = s[j] > mx ? s[j] : mx;
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int j = 0; j < n; j++) {
            float e = fast_expf(s[j] - mx);
            s[j] = e;
            sum += e;
        }
        for (int j = n; j < lk; j++) s[j] = 0.0f;
        rowsum[r] = sum;
    }
}

// S (tq, lk) → P = softmax rows in place.
static void softmax_rows(float *S, float *rowsum, int tq, int lk, int i0, int causal) {
    softmax_rows_unnormalised(S, rowsum, tq, lk, i0, causal);
    for (int r = 0; r < tq; r++) {
        float *s = S + (int64_t)r * lk, inv = 1.0f / rowsum[r];
#pragma omp simd
        for (int j = 0; j < lk; j++) s[j] *= inv;
    }
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

static void attention_forward_run(float *out, const float *q, const float *k, const float *v, int B, int Lq, int Lk, int H,
                       int Dh, float scale, int causal) {
    if (B <= 0 || Lq <= 0 || H <= 0 || Dh <= 0) return;
    const int C = H * Dh;
    if (Lk <= 0) {   // no keys: softmax over nothing; define the output as 0
        for (int64_t i = 0; i < (int64_t)B * Lq * C; i++) out[i] = 0.0f;
        return;
    }
    const int TQ = query_tile(Lq, Lk);
    const int ntiles = (Lq + TQ - 1) / TQ;
    const int64_t items = (int64_t)B * H * ntiles;
#pragma omp parallel
    {
        float *S = sl_alloc_f32((int64_t)TQ * Lk);   // (TQ, Lk) scores / probabilities of one tile
        float *rowsum = sl_alloc_f32(TQ);
        // Without a causal mask every tile of a head multiplies by the same Kᵀ and V: converted once
        // per head and thread (gemm_pack_b; only the bf16 AMX kernel keeps a copy). Static chunks
        // give each thread consecutive tiles of few heads.
        gemm_packed_b pk = {0}, pv = {0};
        int64_t packed_head = -1;
#pragma omp for schedule(static)
        for (int64_t it = 0; it < items; it++) {
            int t = (int)(it % ntiles), h = (int)((it / ntiles) % H), b = (int)(it / ((int64_t)ntiles * H));
            int i0 = t * TQ, tq = Lq - i0 < TQ ? Lq - i0 : TQ;
            int lk = tile_keys(i0, tq, Lk, causal);
            const float *qt = q + ((int64_t)b * Lq + i0) * C + h * Dh;   // (tq, Dh), ld C
            const float *kb = k + (int64_t)b * Lk * C + h * Dh;          // (Lk, Dh), ld C
            const float *vb = v + (int64_t)b * Lk * C + h * Dh;
            float *ot = out + ((int64_t)b * Lq + i0) * C + h * Dh;
            if (!causal && packed_head != it / ntiles) {
                gemm_packed_b_free(&pk), gemm_packed_b_free(&pv);
                gemm_pack_b(&pk, GEMM_T, Dh, Lk, kb, C);   // op(B) = Kᵀ (Dh, Lk)
                gemm_pack_b(&pv, GEMM_N, Lk, Dh, vb, C);   // V (Lk, Dh)
                packed_head = it / ntiles;
            }
            if (causal) gemm(GEMM_N, GEMM_T, tq, lk, Dh, scale, qt, C, kb, C, 0.0f, S, lk);
            else gemm_with_packed_b(GEMM_N, tq, scale, qt, C, &pk, 0.0f, S, lk);
            softmax_rows_unnormalised(S, rowsum, tq, lk, i0, causal);
            if (causal) gemm(GEMM_N, GEMM_N, tq, Dh, lk, 1.0f, S, lk, vb, C, 0.0f, ot, C);
            else gemm_with_packed_b(GEMM_N, tq, 1.0f, S, lk, &pv, 0.0f, ot, C);
            for (int r = 0; r < tq; r++) {   // normalise (tq, Dh) outputs instead of (tq, lk) weights
                float inv = 1.0f / rowsum[r];
                for (int d = 0; d < Dh; d++) ot[(int64_t)r * C + d] *= inv;
            }
        }
        gemm_packed_b_free(&pk), gemm_packed_b_free(&pv);
        sl_free_aligned(S);
        sl_free_aligned(rowsum);
    }
}

// Backward of one (b, h): tiles in order, accumulating dK, dV of this head (owned by the caller).
//   dV += Pᵀ·dO,  dP = dO·Vᵀ,  dS = P ∘ (dP − rowsum(dP ∘ P)),  dQ += scale·dS·K,  dK += scale·dSᵀ·Q
static void backward_head(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                          const float *v, int b, int h, int Lq, int Lk, int H, int Dh, float scale, int causal,
                          int TQ, float *S, float *dP) {
    const int C = H * Dh;
    const float *kb = k + (int64_t)b * Lk * C + h * Dh, *vb = v + (int64_t)b * Lk * C + h * Dh;
    float *dkb = dk ? dk + (int64_t)b * Lk * C + h * Dh : NULL;
    float *dvb = dv ? dv + (int64_t)b * Lk * C + h * Dh : NULL;
    // Without a causal mask the head's Kᵀ, Vᵀ and K serve every tile: converted once (gemm_pack_b)
    gemm_packed_b pkt = {0}, pvt = {0}, pk = {0};
    if (!causal) {
        gemm_pack_b(&pkt, GEMM_T, Dh, Lk, kb, C);
        if (dq || dkb) gemm_pack_b(&pvt, GEMM_T, Dh, Lk, vb, C);
        if (dq) gemm_pack_b(&pk, GEMM_N, Lk, Dh, kb, C);
    }
    for (int i0 = 0; i0 < Lq; i0 += TQ) {
        int tq = Lq - i0 < TQ ? Lq - i0 : TQ;
        int lk = tile_keys(i0, tq, Lk, causal);
        int64_t row = ((int64_t)b * Lq + i0) * C + h * Dh;
        const float *qt = q + row, *dot = dout + row;   // (tq, Dh), ld C
        if (causal) gemm(GEMM_N, GEMM_T, tq, lk, Dh, scale, qt, C, kb, C, 0.0f, S, lk);
        else gemm_with_packed_b(GEMM_N, tq, scale, qt, C, &pkt, 0.0f, S, lk);
        softmax_rows(S, dP, tq, lk, i0, causal);   // dP's first tq floats serve as row sums here
        if (dvb)   // dV (lk, Dh) += Pᵀ (lk, tq) · dO (tq, Dh)
            gemm(GEMM_T, GEMM_N, lk, Dh, tq, 1.0f, S, lk, dot, C, 1.0f, dvb, C);
        if (!dq && !dkb) continue;
        // dP (tq, lk) = dO (tq, Dh) · Vᵀ
        if (causal) gemm(GEMM_N, GEMM_T, tq, lk, Dh, 1.0f, dot, C, vb, C, 0.0f, dP, lk);
        else gemm_with_packed_b(GEMM_N, tq, 1.0f, dot, C, &pvt, 0.0f, dP, lk);
        for (int r = 0; r < tq; r++) {
            const float *p = S + (int64_t)r * lk;
            float *d = dP + (int64_t)r * lk;
            double dsum = 0.0;
#pragma omp simd reduction(+ : dsum)
            for (int j = 0; j < lk; j++) dsum += (double)d[j] * p[j];
            float ds = (float)dsum;
#pragma omp simd
            for (int j = 0; j < lk; j++) d[j] = p[j] * (d[j] - ds);   // dS (masked keys: p = 0)
        }
        if (dq && causal)   // dQ (tq, Dh) += scale · dS (tq, lk) · K (lk, Dh)
            gemm(GEMM_N, GEMM_N, tq, Dh, lk, scale, dP, lk, kb, C, 1.0f, dq + row, C);
        else if (dq)
            gemm_with_packed_b(GEMM_N, tq, scale, dP, lk, &pk, 1.0f, dq + row, C);
        if (dkb)   // dK (lk, Dh) += scale · dSᵀ (lk, tq) · Q (tq, Dh)
            gemm(GEMM_T, GEMM_N, lk, Dh, tq, scale, dP, lk, qt, C, 1.0f, dkb, C);
    }
    gemm_packed_b_free(&pkt), gemm_packed_b_free(&pvt), gemm_packed_b_free(&pk);
}

static void attention_backward_run(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, int B, int Lq, int Lk, int H, int Dh, float scale, int causal) {
    if (B <= 0 || Lq <= 0 || Lk <= 0 || H <= 0 || Dh <= 0) return;
    if (!dq && !dk && !dv) return;
    const int TQ = query_tile(Lq, Lk);
    const int BH = B * H;
    // Each (b, h) owns its slices of dq, dk, dv, so heads run in parallel without races. With
    // fewer heads than threads, heads run one after another and the GEMMs use all threads.
    if (BH >= omp_get_max_threads()) {
#pragma omp parallel
        {
            float *S = sl_alloc_f32((int64_t)TQ * Lk), *dP = sl_alloc_f32((int64_t)TQ * Lk);
#pragma omp for schedule(dynamic)
            for (int bh = 0; bh < BH; bh++)
                backward_head(dq, dk, dv, dout, q, k, v, bh / H, bh % H, Lq, Lk, H, Dh, scale, causal, TQ, S, dP);
            sl_free_aligned(S);
            sl_free_aligned(dP);
        }
    } else {
        float *S = sl_alloc_f32((int64_t)TQ * Lk), *dP = sl_alloc_f32((int64_t)TQ * Lk);
        for (int bh = 0; bh < BH; bh++)
            backward_head(dq, dk, dv, dout, q, k, v, bh / H, bh % H, Lq, Lk, H, Dh, scale, causal, TQ, S, dP);
        sl_free_aligned(S);
        sl_free_aligned(dP);
    }
}

// ---------------------------------------------------------------- entry points (counted by --profile)

void attention_forward(float *out, const float *q, const float *k, const float *v, int B, int Lq, int Lk, int H,
                       int Dh, float scale, int causal) {
    PROFILED(PROF_ATTENTION, 0, 4.0 * B * H * (double)Lq * Lk * Dh / (causal ? 2 : 1), attention_forward_run(out, q, k, v, B, Lq, Lk, H, Dh, scale, causal));
}

void attention_backward(float *dq, float *dk, float *dv, const float *dout, const float *q, const float *k,
                        const float *v, int B, int Lq, int Lk, int H, int Dh, float scale, int causal) {
    PROFILED(PROF_ATTENTION, 1, 10.0 * B * H * (double)Lq * Lk * Dh / (causal ? 2 : 1), attention_backward_run(dq, dk, dv, dout, q, k, v, B, Lq, Lk, H, Dh, scale, causal));
}
