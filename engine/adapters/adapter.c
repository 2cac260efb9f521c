#include "engine/adapters/adapter.h"

#include "engine/kernels/gemm.h"
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/kernels/linear.h"
#include "engine/core/tensor.h"

static const char *METHOD_NAMES[ADAPTER_N_METHODS] = {"singlora", "lora", "dora"};

const char *adapter_method_name(adapter_method m) { return (unsigned)m < ADAPTER_N_METHODS ? METHOD_NAMES[m] : "?"; }

int adapter_method_from_name(const char *name) {
    for (int i = 0; i < ADAPTER_N_METHODS; i++)
        if (strcmp(name, METHOD_NAMES[i]) == 0) return i;
    return -1;
}

int adapter_rows(const adapter *a) { return a->d_in > a->d_out ? a->d_in : a->d_out; }

int64_t adapter_param_count(const adapter *a) {
    if (a->method == ADAPTER_SINGLORA) return (int64_t)adapter_rows(a) * a->rank;
    int64_t n = (int64_t)(a->d_in + a->d_out) * a->rank;
    return a->method == ADAPTER_DORA ? n + a->d_out : n;
}

int adapter_tensor_count(adapter_method m) { return m == ADAPTER_SINGLORA ? 1 : m == ADAPTER_LORA ? 2 : 3; }

adapter_tensor_ref adapter_tensor(adapter *a, int k) {
    if (a->method == ADAPTER_SINGLORA) return (adapter_tensor_ref){&a->A, &a->dA, 2, {adapter_rows(a), a->rank}};
    if (k == 0) return (adapter_tensor_ref){&a->down, &a->ddown, 2, {a->rank, a->d_in}};
    if (k == 1) return (adapter_tensor_ref){&a->up, &a->dup, 2, {a->d_out, a->rank}};
    return (adapter_tensor_ref){&a->magnitude, &a->dmagnitude, 1, {a->d_out, 0}};
}

float singlora_ramp(int64_t step, int64_t ramp_steps) {
    if (ramp_steps <= 0 || step >= ramp_steps) return 1.0f;
    return step <= 0 ? 0.0f : (float)((double)step / (double)ramp_steps);
}

void adapter_alloc(adapter *a, adapter_method method, int d_in, int d_out, int rank, float alpha) {
    memset(a, 0, sizeof *a);
    a->method = method;
    a->d_in = d_in;
    a->d_out = d_out;
    a->rank = rank;
    a->alpha = alpha;
    for (int k = 0; k < adapter_tensor_count(method); k++) {
        adapter_tensor_ref t = adapter_tensor(a, k);
        *t.data = sl_zeros_f32(shape_numel(t.ndim, t.shape));
    }
}

void adapter_alloc_grads(adapter *a) {
    for (int k = 0; k < adapter_tensor_count(a->method); k++) {
        adapter_tensor_ref t = adapter_tensor(a, k);
        if (!*t.grad) *t.grad = sl_zeros_f32(shape_numel(t.ndim, t.shape));
    }
}

void adapter_zero_grads(adapter *a) {
    for (int k = 0; k < adapter_tensor_count(a->method); k++) {
        adapter_tensor_ref t = adapter_tensor(a, k);
        if (*t.grad) memset(*t.grad, 0, sizeof(float) * (size_t)shape_numel(t.ndim, t.shape));
    }
}

void adapter_free(adapter *a) {
    for (int k = 0; k < adapter_tensor_count(a->method); k++) {
        adapter_tensor_ref t = adapter_tensor(a, k);
        sl_free_aligned(*t.data);
        sl_free_aligned(*t.grad);
    }
    memset(a, 0, sizeof *a);
}

// PyTorch's kaiming_uniform_(a=√5): gain √(2/(1+5)), bound = gain·√(3/fan_in) = 1/√fan_in.
static void init_tensor(float *x, int64_t n, int fan_in, sl_rng *rng, float normal_std) {
    if (normal_std > 0) {
        sl_rng_normal(rng, x, (size_t)n, 0.0f, normal_std);
        return;
    }
    float bound = 1.0f / sqrtf((float)fan_in);
    sl_rng_rand(rng, x, (size_t)n);
    for (int64_t i = 0; i < n; i++) x[i] = (2.0f * x[i] - 1.0f) * bound;
}

static void row_norms(float *out, const float *w, int rows, int cols) {
    for (int o = 0; o < rows; o++) {
        double s = 0;
        for (int i = 0; i < cols; i++) s += (double)w[(size_t)o * cols + i] * w[(size_t)o * cols + i];
        out[o] = (float)sqrt(s);
    }
}

void adapter_init(adapter *a, sl_rng *rng, float normal_std, const float *w0) {
    if (a->method == ADAPTER_SINGLORA) {
        init_tensor(a->A, (int64_t)adapter_rows(a) * a->rank, a->rank, rng, normal_std);
        return;
    }
    init_tensor(a->down, (int64_t)a->rank * a->d_in, a->d_in, rng, normal_std);
    memset(a->up, 0, sizeof(float) * (size_t)a->d_out * (size_t)a->rank);   // B = 0: starts at the base model
    if (a->method == ADAPTER_DORA) row_norms(a->magnitude, w0, a->d_out, a->d_in);
}

// ---------------------------------------------------------------- DoRA helpers

// n (d_out) = ‖W0 + s·up·down‖ per row without forming the sum:
// ‖V_o‖² = ‖W0_o‖² + 2s·up_o·P[:,o] + s²·up_o·Q·up_oᵀ with P = down·W0ᵀ (r, d_out), Q = down·downᵀ (r, r).
static void dora_norms(float *n, float *P, float *Q, const adapter *a, const float *w0, float s) {
    int r = a->rank, di = a->d_in, dout = a->d_out;
    gemm(GEMM_N, GEMM_T, r, dout, di, 1.0f, a->down, di, w0, di, 0.0f, P, dout);
    gemm(GEMM_N, GEMM_T, r, r, di, 1.0f, a->down, di, a->down, di, 0.0f, Q, r);
    for (int o = 0; o < dout; o++) {
        double w2 = 0, cross = 0, quad = 0;
        const float *wo = w0 + (size_t)o * di, *uo = a->up + (size_t)o * r;
        for (int i = 0; i < di; i++) w2 += (double)wo[i] * wo[i];
        for (int j = 0; j < r; j++) {
            cross += (double)uo[j] * P[(size_t)j * dout + o];
            double qj = 0;
            for (int k = 0; k < r; k++) qj += (double)Q[(size_t)j * r + k] * uo[k];
            quad += uo[j] * qj;
        }
        double v = w2 + 2.0 * s * cross + (double)s * s * quad;
        n[o] = (float)sqrt(v > 0 ? v : 0);
    }
}

// z (M, d_out) = x·W0ᵀ + s·h·upᵀ with h (M, r) = x·downᵀ (both written).
static void lora_path(float *z, float *h, const float *x, const float *w0, const adapter *a, float s, int M) {
    int r = a->rank, di = a->d_in, dout = a->d_out;
    linear_forward(z, x, w0, NULL, M, di, dout);
    gemm(GEMM_N, GEMM_T, M, r, di, 1.0f, x, di, a->down, di, 0.0f, h, r);
    gemm(GEMM_N, GEMM_T, M, dout, r, s, h, r, a->up, r, 1.0f, z, dout);
}

// ---------------------------------------------------------------- forward / backward

void adapter_linear_forward(float *y, const float *x, const float *w0, const float *b, const adapter *a, float u,
                            int M, int d_in, int d_out) {
    if (!a) { linear_forward(y, x, w0, b, M, d_in, d_out); return; }
    int r = a->rank;
    float s = a->alpha / (float)r;
    float *h = sl_alloc_f32((int64_t)M * r);   // (M, r)
    if (a->method == ADAPTER_SINGLORA) {
        linear_forward(y, x, w0, b, M, d_in, d_out);
        if (u != 0.0f) {
            const float *A_in = a->A, *A_out = a->A;   // A[:d_in] (d_in, r), A[:d_out] (d_out, r)
            gemm(GEMM_N, GEMM_N, M, r, d_in, 1.0f, x, d_in, A_in, r, 0.0f, h, r);
            gemm(GEMM_N, GEMM_T, M, d_out, r, s * u, h, r, A_out, r, 1.0f, y, d_out);
        }
    } else if (a->method == ADAPTER_LORA) {
        linear_forward(y, x, w0, b, M, d_in, d_out);
        gemm(GEMM_N, GEMM_T, M, r, d_in, 1.0f, x, d_in, a->down, d_in, 0.0f, h, r);
        gemm(GEMM_N, GEMM_T, M, d_out, r, s, h, r, a->up, r, 1.0f, y, d_out);
    } else {
        float *n = sl_alloc_f32(d_out), *P = sl_alloc_f32((int64_t)r * d_out), *Q = sl_alloc_f32((int64_t)r * r);
        dora_norms(n, P, Q, a, w0, s);
        lora_path(y, h, x, w0, a, s, M);
        for (int t = 0; t < M; t++)
            for (int o = 0; o < d_out; o++)
                y[(size_t)t * d_out + o] = y[(size_t)t * d_out + o] * (a->magnitude[o] / n[o]) + (b ? b[o] : 0.0f);
        sl_free_aligned(n);
        sl_free_aligned(P);
        sl_free_aligned(Q);
    }
    sl_free_aligned(h);
}

static void bias_grad(float *db, const float *dy, int M, int d_out) {
    if (!db) return;
    for (int t = 0; t < M; t++)
        for (int o = 0; o < d_out; o++) db[o] += dy[(size_t)t * d_out + o];
}

void adapter_linear_backward(float *dx, float *db, const float *dy, const float *x, const float *w0, adapter *a,
                             float u, int M, int d_in, int d_out) {
    if (!a || a->method != ADAPTER_DORA) {
        // the base layer: dx += dy·W0, db += Σ dy (no dW0: it is frozen)
        linear_backward(dx, NULL, db, dy, x, w0, M, d_in, d_out);
        if (!a) return;
    }
    int r = a->rank;
    float s = a->alpha / (float)r;
    float *h = sl_alloc_f32((int64_t)M * r), *k = sl_alloc_f32((int64_t)M * r);   // (M, r) each
    if (a->method == ADAPTER_SINGLORA) {
        // h = x·A[:d_in], k = g·A[:d_out]; dx += su·k·A[:d_in]ᵀ; dA[:d_out] += su·gᵀh; dA[:d_in] += su·xᵀk
        float su = s * u;
        if (su != 0.0f) {
            gemm(GEMM_N, GEMM_N, M, r, d_out, 1.0f, dy, d_out, a->A, r, 0.0f, k, r);
            if (dx)
                gemm(GEMM_N, GEMM_T, M, d_in, r, su, k, r, a->A, r, 1.0f, dx, d_in);
            if (a->dA) {
                gemm(GEMM_N, GEMM_N, M, r, d_in, 1.0f, x, d_in, a->A, r, 0.0f, h, r);
                gemm(GEMM_T, GEMM_N, d_out, r, M, su, dy, d_out, h, r, 1.0f, a->dA, r);
                gemm(GEMM_T, GEMM_N, d_in, r, M, su, x, d_in, k, r, 1.0f, a->dA, r);
            }
        }
    } else if (a->method == ADAPTER_LORA) {
        // h = x·downᵀ, k = g·up; dx += s·k·down; dup += s·gᵀh; ddown += s·kᵀx
        gemm(GEMM_N, GEMM_N, M, r, d_out, 1.0f, dy, d_out, a->up, r, 0.0f, k, r);
        if (dx) gemm(GEMM_N, GEMM_N, M, d_in, r, s, k, r, a->down, d_in, 1.0f, dx, d_in);
        if (a->dup) {
            gemm(GEMM_N, GEMM_T, M, r, d_in, 1.0f, x, d_in, a->down, d_in, 0.0f, h, r);
            gemm(GEMM_T, GEMM_N, d_out, r, M, s, dy, d_out, h, r, 1.0f, a->dup, r);
        }
        if (a->ddown)
            gemm(GEMM_T, GEMM_N, r, d_in, M, s, k, r, x, d_in, 1.0f, a->ddown, d_in);
    } else {
        // DoRA: y = c ⊙ z + b with z = V·x, V = W0 + s·up·down, c = m / ‖V‖_row.
        float *n = sl_alloc_f32(d_out), *P = sl_alloc_f32((int64_t)r * d_out), *Q = sl_alloc_f32((int64_t)r * r);
        float *z = sl_alloc_f32((int64_t)M * d_out), *gc = sl_alloc_f32((int64_t)M * d_out);
        float *kappa = sl_alloc_f32(d_out);
        dora_norms(n, P, Q, a, w0, s);
        lora_path(z, h, x, w0, a, s, M);
        bias_grad(db, dy, M, d_out);
        for (int o = 0; o < d_out; o++) {
            double e = 0;   // dL/dc_o = Σ_t g·z
            for (int t = 0; t < M; t++) e += (double)dy[(size_t)t * d_out + o] * z[(size_t)t * d_out + o];
            float c = a->magnitude[o] / n[o];
            if (a->dmagnitude) a->dmagnitude[o] += (float)(e / n[o]);
            // through n_o = ‖V_o‖: dL/dV_o += κ_o·V_o with κ_o = -e·m_o / n_o³
            kappa[o] = (float)(-e * a->magnitude[o] / ((double)n[o] * n[o] * n[o]));
            for (int t = 0; t < M; t++) gc[(size_t)t * d_out + o] = dy[(size_t)t * d_out + o] * c;
        }
        // direct path with g' = g ⊙ c: dx += g'·W0 + s·(g'·up)·down; dup += s·g'ᵀh; ddown += s·(g'·up)ᵀx
        gemm(GEMM_N, GEMM_N, M, r, d_out, 1.0f, gc, d_out, a->up, r, 0.0f, k, r);
        if (dx) {
            linear_backward(dx, NULL, NULL, gc, x, w0, M, d_in, d_out);
            gemm(GEMM_N, GEMM_N, M, d_in, r, s, k, r, a->down, d_in, 1.0f, dx, d_in);
        }
        if (a->dup) {
            gemm(GEMM_T, GEMM_N, d_out, r, M, s, gc, d_out, h, r, 1.0f, a->dup, r);
            // norm path: dup_o += s·κ_o·(V_o·downᵀ) = s·κ_o·(P[:,o] + s·Q·up_o)
            for (int o = 0; o < d_out; o++)
                for (int j = 0; j < r; j++) {
                    double q = 0;
                    for (int l = 0; l < r; l++) q += (double)Q[(size_t)j * r + l] * a->up[(size_t)o * r + l];
                    a->dup[(size_t)o * r + j] += (float)(s * kappa[o] * (P[(size_t)j * d_out + o] + s * q));
                }
        }
        if (a->ddown) {
            gemm(GEMM_T, GEMM_N, r, d_in, M, s, k, r, x, d_in, 1.0f, a->ddown, d_in);
            // norm path: ddown += s·(upᵀ·diag κ)·V = s·(upᵀ diag κ)·W0 + s²·(upᵀ diag κ up)·down
            float *uk = sl_alloc_f32((int64_t)r * d_out), *uku = sl_alloc_f32((int64_t)r * r);   // (r, d_out), (r, r)
            for (int j = 0; j < r; j++)
                for (int o = 0; o < d_out; o++) uk[(size_t)j * d_out + o] = a->up[(size_t)o * r + j] * kappa[o];
            gemm(GEMM_N, GEMM_N, r, d_in, d_out, s, uk, d_out, w0, d_in, 1.0f, a->ddown, d_in);
            gemm(GEMM_N, GEMM_N, r, r, d_out, 1.0f, uk, d_out, a->up, r, 0.0f, uku, r);
            gemm(GEMM_N, GEMM_N, r, d_in, r, s * s, uku, r, a->down, d_in, 1.0f, a->ddown, d_in);
            sl_free_aligned(uk);
            sl_free_aligned(uku);
        }
        float *bufs[] = {n, P, Q, z, gc, kappa};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) sl_free_aligned(bufs[i]);
    }
    sl_free_aligned(h);
    sl_free_aligned(k);
}

void adapter_merge_into(float *w0, const adapter *a, float u, float scale) {
    int r = a->rank, di = a->d_in, dout = a->d_out;
    float s = a->alpha / (float)r;
    if (a->method == ADAPTER_SINGLORA) {
        // W0 += scale·s·u·A[:d_out]·A[:d_in]ᵀ
        gemm(GEMM_N, GEMM_T, dout, di, r, scale * s * u, a->A, r, a->A, r, 1.0f, w0, di);
        return;
    }
    if (a->method == ADAPTER_LORA) {
        gemm(GEMM_N, GEMM_N, dout, di, r, scale * s, a->up, r, a->down, di, 1.0f, w0, di);
        return;
    }
    // DoRA: W' = m ⊙ V / ‖V‖_row with V = W0 + s·up·down; a scale interpolates W0 += scale·(W' − W0),
    // the convention kohya-format DoRA files are applied with (so export + import agree)
    float *v = sl_alloc_f32((int64_t)dout * di), *n = sl_alloc_f32(dout);
    memcpy(v, w0, sizeof(float) * (size_t)dout * di);
    gemm(GEMM_N, GEMM_N, dout, di, r, s, a->up, r, a->down, di, 1.0f, v, di);
    row_norms(n, v, dout, di);
    for (int o = 0; o < dout; o++)
        for (int i = 0; i < di; i++) {
            size_t k = (size_t)o * di + i;
            w0[k] += scale * (v[k] * (a->magnitude[o] / n[o]) - w0[k]);
        }
    sl_free_aligned(v);
    sl_free_aligned(n);
}

void adapter_merged_backward(adapter *a, const float *dw, const float *w0, float u, float scale) {
    int r = a->rank, di = a->d_in, dout = a->d_out;
    float s = a->alpha / (float)r;
    if (a->method == ADAPTER_SINGLORA) {
        // ΔW = c·A[:d_out]·A[:d_in]ᵀ, c = scale·s·u: dA[:d_out] += c·dW·A[:d_in], dA[:d_in] += c·dWᵀ·A[:d_out]
        float c = scale * s * u;
        if (!a->dA || c == 0.0f) return;
        gemm(GEMM_N, GEMM_N, dout, r, di, c, dw, di, a->A, r, 1.0f, a->dA, r);
        gemm(GEMM_T, GEMM_N, di, r, dout, c, dw, di, a->A, r, 1.0f, a->dA, r);
        return;
    }
    const float *gv = dw;   // dL/dV with V = W0 + s·up·down
    float *dv = NULL;
    if (a->method == ADAPTER_LORA) {
        s *= scale;   // ΔW = scale·s·up·down
    } else {
        // DoRA: W = W0 + scale·(W' − W0), W'_o = m_o·V_o / n_o, n_o = ‖V_o‖. With G = scale·dW:
        // dm_o = G_o·V_o / n_o;  dV_o = (m_o / n_o)·G_o − (m_o·(G_o·V_o) / n_o³)·V_o
        float *v = sl_alloc_f32((int64_t)dout * di);
        dv = sl_alloc_f32((int64_t)dout * di);
        memcpy(v, w0, sizeof(float) * (size_t)dout * di);
        gemm(GEMM_N, GEMM_N, dout, di, r, s, a->up, r, a->down, di, 1.0f, v, di);
        for (int o = 0; o < dout; o++) {
            const float *vo = v + (size_t)o * di, *go = dw + (size_t)o * di;
            double nn = 0, gvd = 0;
            for (int i = 0; i < di; i++) nn += (double)vo[i] * vo[i], gvd += (double)go[i] * vo[i];
            double n = sqrt(nn), mo = a->magnitude[o];
            gvd *= scale;
            if (a->dmagnitude) a->dmagnitude[o] += (float)(gvd / n);
            double f = scale * mo / n, q = mo * gvd / (n * n * n);
            for (int i = 0; i < di; i++) dv[(size_t)o * di + i] = (float)(f * go[i] - q * vo[i]);
        }
        sl_free_aligned(v);
        gv = dv;
    }
    // V = W0 + s·up·down: dup += s·dV·downᵀ, ddown += s·upᵀ·dV
    if (a->dup) gemm(GEMM_N, GEMM_T, dout, r, di, s, gv, di, a->down, di, 1.0f, a->dup, r);
    if (a->ddown) gemm(GEMM_T, GEMM_N, r, di, dout, s, a->up, r, gv, di, 1.0f, a->ddown, di);
    sl_free_aligned(dv);
}
