#include "tests/reference.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>

void ref_linear(double *y, const double *x, const double *w, const double *b, int M, int d_in, int d_out) {
    for (int m = 0; m < M; m++)
        for (int o = 0; o < d_out; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < d_in; i++) s += x[(int64_t)m * d_in + i] * w[(int64_t)o * d_in + i];
            y[(int64_t)m * d_out + o] = s;
        }
}

double ref_silu(double x) { return x / (1.0 + exp(-x)); }
double ref_gelu(double x) { return 0.5 * x * (1.0 + erf(x / sqrt(2.0))); }

void ref_groupnorm(double *y, const double *x, const double *gamma, const double *beta, int N, int C, int HW, int G,
                   double eps, int silu) {
    int cg = C / G;
    int64_t m = (int64_t)cg * HW;
    for (int n = 0; n < N; n++)
        for (int g = 0; g < G; g++) {
            const double *xg = x + ((int64_t)n * C + g * cg) * HW;
            double mu = 0, var = 0;
            for (int64_t i = 0; i < m; i++) mu += xg[i];
            mu /= m;
            for (int64_t i = 0; i < m; i++) var += (xg[i] - mu) * (xg[i] - mu);
            var /= m;
            for (int c = 0; c < cg; c++)
                for (int i = 0; i < HW; i++) {
                    int ch = g * cg + c;
                    double z = (xg[(int64_t)c * HW + i] - mu) / sqrt(var + eps) * gamma[ch] + beta[ch];
                    y[((int64_t)n * C + ch) * HW + i] = silu ? ref_silu(z) : z;
                }
        }
}

void ref_layernorm(double *y, const double *x, const double *gamma, const double *beta, int M, int C, double eps) {
    for (int m = 0; m < M; m++) {
        const double *r = x + (int64_t)m * C;
        double mu = 0, var = 0;
        for (int c = 0; c < C; c++) mu += r[c];
        mu /= C;
        for (int c = 0; c < C; c++) var += (r[c] - mu) * (r[c] - mu);
        var /= C;
        for (int c = 0; c < C; c++) y[(int64_t)m * C + c] = (r[c] - mu) / sqrt(var + eps) * gamma[c] + beta[c];
    }
}

void ref_conv2d(double *out, const double *x, const double *w, const double *b, conv2d_shape s) {
    int Ho = conv2d_out_h(s), Wo = conv2d_out_w(s);
    for (int n = 0; n < s.N; n++)
        for (int co = 0; co < s.C_out; co++)
            for (int oy = 0; oy < Ho; oy++)
                for (int ox = 0; ox < Wo; ox++) {
                    double acc = b ? b[co] : 0.0;
                    for (int ci = 0; ci < s.C_in; ci++)
                        for (int ki = 0; ki < s.k; ki++)
                            for (int kj = 0; kj < s.k; kj++) {
                                int iy = oy * s.stride - s.pad + ki, ix = ox * s.stride - s.pad + kj;
                                if (iy < 0 || iy >= s.H || ix < 0 || ix >= s.W) continue;
                                acc += x[(((int64_t)n * s.C_in + ci) * s.H + iy) * s.W + ix] *
                                       w[(((int64_t)co * s.C_in + ci) * s.k + ki) * s.k + kj];
                            }
                    out[(((int64_t)n * s.C_out + co) * Ho + oy) * Wo + ox] = acc;
                }
}

void ref_attention(double *out, const double *q, const double *k, const double *v, int B, int Lq, int Lk, int H, int Dh,
                   double scale, int causal) {
    int C = H * Dh;
    double *p = malloc(sizeof(double) * (size_t)(Lk > 0 ? Lk : 1));
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < Lq; i++) {
                const double *qi = q + ((int64_t)b * Lq + i) * C + h * Dh;
                double mx = -INFINITY, sum = 0;
                for (int j = 0; j < Lk; j++) {
                    const double *kj = k + ((int64_t)b * Lk + j) * C + h * Dh;
                    double s = 0;
                    for (int d = 0; d < Dh; d++) s += qi[d] * kj[d];
                    p[j] = (causal && j > i) ? -INFINITY : s * scale;
                    mx = p[j] > mx ? p[j] : mx;
                }
                for (int j = 0; j < Lk; j++) sum += (p[j] = exp(p[j] - mx));
                double *oi = out + ((int64_t)b * Lq + i) * C + h * Dh;
                for (int d = 0; d < Dh; d++) {
                    double acc = 0;
                    for (int j = 0; j < Lk; j++) acc += p[j] / sum * v[((int64_t)b * Lk + j) * C + h * Dh + d];
                    oi[d] = acc;
                }
            }
    free(p);
}
