#include "eval/metrics.h"

#include <math.h>

double cosine_similarity(const float *a, const float *b, int d) {
    double ab = 0, aa = 0, bb = 0;
    for (int k = 0; k < d; k++) {
        ab += (double)a[k] * b[k];
        aa += (double)a[k] * a[k];
        bb += (double)b[k] * b[k];
    }
    return ab / (sqrt(aa) * sqrt(bb));
}

void cosine_matrix(double *out, const float *a, int A, const float *b, int B, int d) {
    for (int i = 0; i < A; i++)
        for (int j = 0; j < B; j++) out[(long)i * B + j] = cosine_similarity(a + (long)i * d, b + (long)j * d, d);
}

double matrix_mean(const double *m, int A, int B, double *row_means) {
    double total = 0;
    for (int i = 0; i < A; i++) {
        double r = 0;
        for (int j = 0; j < B; j++) r += m[(long)i * B + j];
        if (row_means) row_means[i] = r / B;
        total += r;
    }
    return total / ((double)A * B);
}

double clip_t_score(const float *text, const float *image, int n, int d, double *per) {
    double s = 0;
    for (int i = 0; i < n; i++) {
        double c = cosine_similarity(text + (long)i * d, image + (long)i * d, d);
        if (per) per[i] = c;
        s += c;
    }
    return s / n;
}

double std_dev(const double *x, int n) {
    if (n < 1) return 0;
    double mu = 0, v = 0;
    for (int i = 0; i < n; i++) mu += x[i];
    mu /= n;
    for (int i = 0; i < n; i++) v += (x[i] - mu) * (x[i] - mu);
    return sqrt(v / n);
}
