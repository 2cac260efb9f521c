// GroupNorm (N, C, HW) with an optional fused SiLU, and LayerNorm over the last dim of (M, C).
// Statistics are accumulated in double with two passes (mean, then Σ(x − mean)²): PyTorch's f32
// reference is accurate to ~1e-7 relative and a one-pass f32 variance would not be.
#include "engine/kernels/norm.h"

#include <math.h>
#include <stdint.h>

#include "engine/core/profile.h"
#include "engine/kernels/fast_exp.h"

// mean and biased variance of x[0..n) in double, two passes.
static void moments(const float *x, int64_t n, double *mean, double *var) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; i++) s += x[i];
    double m = s / (double)n;
    double v = 0.0;
#pragma omp simd reduction(+ : v)
    for (int64_t i = 0; i < n; i++) {
        double d = x[i] - m;
        v += d * d;
    }
    *mean = m;
    *var = v / (double)n;
}

static void groupnorm_forward_run(float *out, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                       int N, int C, int HW, int G, float eps, int silu) {
    int cg = C / G;   // channels per group; a group is cg·HW contiguous floats in NCHW
#pragma omp parallel for schedule(static)
    for (int ng = 0; ng < N * G; ng++) {
        int g = ng % G;
        int64_t off = (int64_t)ng * cg * HW;
        double m, var;
        moments(x + off, (int64_t)cg * HW, &m, &var);
        double rs = 1.0 / sqrt(var + (double)eps);
        if (mean) mean[ng] = (float)m;
        if (rstd) rstd[ng] = (float)rs;
        for (int c = 0; c < cg; c++) {
            int ch = g * cg + c;
            // out = (x − m)·rs·γ + β = x·a + b with a, b per channel
            double a = rs * (gamma ? gamma[ch] : 1.0);
            double b = (beta ? beta[ch] : 0.0) - m * a;
            float af = (float)a, bf = (float)b;
            const float *xc = x + off + (int64_t)c * HW;
            float *oc = out + off + (int64_t)c * HW;
            if (silu) {
#pragma omp simd
                for (int i = 0; i < HW; i++) {
                    float y = xc[i] * af + bf;
                    oc[i] = y / (1.0f + fast_expf(-y));
                }
            } else {
#pragma omp simd
                for (int i = 0; i < HW; i++) oc[i] = xc[i] * af + bf;
            }
        }
    }
}

// With x̂ = (x − μ)·r and ĝ = dout·γ, per group of n elements:
//   dx = r · (ĝ − mean(ĝ) − x̂ · mean(ĝ · x̂)),  dγ_c = Σ dout·x̂,  dβ_c = Σ dout.
// Parallel over groups; each thread owns its group's channels of dγ/dβ and loops over the batch
// in order, so there are no races and the sums do not depend on the thread count.
static void groupnorm_backward_run(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                        const float *mean, const float *rstd, const float *gamma, int N, int C, int HW, int G) {
    int cg = C / G;
    int64_t n_el = (int64_t)cg * HW;
#pragma omp parallel for schedule(static)
    for (int g = 0; g < G; g++) {
        for (int n = 0; n < N; n++) {
            int ng = n * G + g;
            int64_t off = (int64_t)ng * n_el;
            double mu = mean[ng], r = rstd[ng];
            double s_g = 0.0, s_gx = 0.0;   // Σ ĝ, Σ ĝ·x̂ over the group
            for (int c = 0; c < cg; c++) {
                int ch = g * cg + c;
                const float *xc = x + off + (int64_t)c * HW, *dc = dout + off + (int64_t)c * HW;
                double sd = 0.0, sdx = 0.0;   // Σ dout, Σ dout·x̂ for this channel
#pragma omp simd reduction(+ : sd, sdx)
                for (int i = 0; i < HW; i++) {
                    double xh = (xc[i] - mu) * r;
                    sd += dc[i];
                    sdx += dc[i] * xh;
                }
                double gm = gamma ? gamma[ch] : 1.0;
                s_g += sd * gm;
                s_gx += sdx * gm;
                if (dgamma) dgamma[ch] += (float)sdx;
                if (dbeta) dbeta[ch] += (float)sd;
            }
            if (!dx) continue;
            double mg = s_g / (double)n_el, mgx = s_gx / (double)n_el;
            for (int c = 0; c < cg; c++) {
                int ch = g * cg + c;
                double gm = gamma ? gamma[ch] : 1.0;
                const float *xc = x + off + (int64_t)c * HW, *dc = dout + off + (int64_t)c * HW;
                float *dxc = dx + off + (int64_t)c * HW;
#pragma omp simd
                for (int i = 0; i < HW; i++) {
                    double xh = (xc[i] - mu) * r;
                    dxc[i] += (float)(r * (dc[i] * gm - mg - xh * mgx));
                }
            }
        }
    }
}

static void layernorm_forward_run(float *out, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                       int M, int C, float eps) {
#pragma omp parallel for schedule(static)
    for (int m = 0; m < M; m++) {
        const float *xr = x + (int64_t)m * C;
        float *o = out + (int64_t)m * C;
        double mu, var;
        moments(xr, C, &mu, &var);
        double rs = 1.0 / sqrt(var + (double)eps);
        if (mean) mean[m] = (float)mu;
        if (rstd) rstd[m] = (float)rs;
        for (int c = 0; c < C; c++) {
            double y = (xr[c] - mu) * rs;
            o[c] = (float)(y * (gamma ? gamma[c] : 1.0) + (beta ? beta[c] : 0.0));
        }
    }
}

static void layernorm_backward_run(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                        const float *mean, const float *rstd, const float *gamma, int M, int C) {
    if (dx) {
#pragma omp parallel for schedule(static)
        for (int m = 0; m < M; m++) {
            const float *xr = x + (int64_t)m * C, *dr = dout + (int64_t)m * C;
            float *dxr = dx + (int64_t)m * C;
            double mu = mean[m], r = rstd[m];
            double s_g = 0.0, s_gx = 0.0;
            for (int c = 0; c < C; c++) {
                double gh = dr[c] * (gamma ? gamma[c] : 1.0);
                s_g += gh;
                s_gx += gh * (xr[c] - mu) * r;
            }
            double mg = s_g / C, mgx = s_gx / C;
            for (int c = 0; c < C; c++) {
                double gh = dr[c] * (gamma ? gamma[c] : 1.0);
                dxr[c] += (float)(r * (gh - mg - (xr[c] - mu) * r * mgx));
            }
        }
    }
    // dγ, dβ: sums over rows; each thread owns a block of columns (race-free, deterministic).
    if (dgamma || dbeta) {
        const int CB = 64;
        int nblk = (C + CB - 1) / CB;
#pragma omp parallel for schedule(static)
        for (int blk = 0; blk < nblk; blk++) {
            int c0 = blk * CB, c1 = c0 + CB < C ? c0 + CB : C;
            double sg[64] = {0}, sb[64] = {0};
            for (int m = 0; m < M; m++) {
                const float *xr = x + (int64_t)m * C, *dr = dout + (int64_t)m * C;
                double mu = mean[m], r = rstd[m];
                for (int c = c0; c < c1; c++) {
                    sg[c - c0] += dr[c] * (xr[c] - mu) * r;
                    sb[c - c0] += dr[c];
                }
            }
            for (int c = c0; c < c1; c++) {
                if (dgamma) dgamma[c] += (float)sg[c - c0];
                if (dbeta) dbeta[c] += (float)sb[c - c0];
            }
        }
    }
}

// ---------------------------------------------------------------- entry points (counted by --profile)

void groupnorm_forward(float *out, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                       int N, int C, int HW, int G, float eps, int silu) {
    PROFILED(PROF_NORM, 0, 0, groupnorm_forward_run(out, mean, rstd, x, gamma, beta, N, C, HW, G, eps, silu));
}

void groupnorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                        const float *mean, const float *rstd, const float *gamma, int N, int C, int HW, int G) {
    PROFILED(PROF_NORM, 1, 0, groupnorm_backward_run(dx, dgamma, dbeta, dout, x, mean, rstd, gamma, N, C, HW, G));
}

void layernorm_forward(float *out, float *mean, float *rstd, const float *x, const float *gamma, const float *beta,
                       int M, int C, float eps) {
    PROFILED(PROF_NORM, 0, 0, layernorm_forward_run(out, mean, rstd, x, gamma, beta, M, C, eps));
}

void layernorm_backward(float *dx, float *dgamma, float *dbeta, const float *dout, const float *x,
                        const float *mean, const float *rstd, const float *gamma, int M, int C) {
    PROFILED(PROF_NORM, 1, 0, layernorm_backward_run(dx, dgamma, dbeta, dout, x, mean, rstd, gamma, M, C));
}
