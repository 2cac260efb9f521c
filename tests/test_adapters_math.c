// Adapter math (SingLoRA, LoRA, DoRA) on one Linear layer: forward against a double-precision
// reference that forms ΔW explicitly, backward against central finite differences of that
// reference, in all three shape cases (square, d_in > d_out, d_out > d_in), the merged weight's
// backward (adapter_merged_backward, how convolutions train) against the same differences, merge ≡ unmerged,
// init statistics, the ramp, and the SingLoRA reference fixture.
#include <stdlib.h>
#include <string.h>

#include "engine/adapters/adapter.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "tests/test.h"

typedef struct {
    int d_in, d_out, r, M;
    double s, u;
    adapter_method method;
    const double *w0, *b, *x, *A, *down, *up, *m;
} ref_layer;

// y (M, d_out) in double, forming the full weight as the definition says.
static void ref_forward(double *y, const ref_layer *L) {
    int di = L->d_in, dout = L->d_out, r = L->r;
    double *W = calloc((size_t)dout * di, sizeof(double));
    for (int o = 0; o < dout; o++)
        for (int i = 0; i < di; i++) {
            double d = 0;
            for (int j = 0; j < r; j++)
                d += L->method == ADAPTER_SINGLORA ? L->A[o * r + j] * L->A[i * r + j] : L->up[o * r + j] * L->down[j * di + i];
            W[o * di + i] = L->w0[o * di + i] + L->s * (L->method == ADAPTER_SINGLORA ? L->u : 1.0) * d;
        }
    if (L->method == ADAPTER_DORA)
        for (int o = 0; o < dout; o++) {
            double n = 0;
            for (int i = 0; i < di; i++) n += W[o * di + i] * W[o * di + i];
            n = sqrt(n);
            for (int i = 0; i < di; i++) W[o * di + i] *= L->m[o] / n;
        }
    for (int t = 0; t < L->M; t++)
        for (int o = 0; o < dout; o++) {
            double acc = L->b[o];
            for (int i = 0; i < di; i++) acc += W[o * di + i] * L->x[t * di + i];
            y[t * dout + o] = acc;
        }
    free(W);
}

static double ref_loss(const ref_layer *L, const double *R) {
    double *y = malloc(sizeof(double) * (size_t)L->M * L->d_out), l = 0;
    ref_forward(y, L);
    for (int i = 0; i < L->M * L->d_out; i++) l += y[i] * R[i];
    free(y);
    return l;
}

static double *to_double(const float *x, int n) {
    double *d = malloc(sizeof(double) * (size_t)(n > 0 ? n : 1));
    for (int i = 0; i < n; i++) d[i] = x[i];
    return d;
}

// Central differences of the double reference w.r.t. every entry of p (n values), compared with
// the analytic gradient g. h = 1e-5 in double: truncation O(h²)·|f'''| ~ 1e-10 and round-off
// ~1e-16/1e-5 = 1e-11, so the difference measures the f32 analytic gradient's own error
// (~1e-6 relative); 1e-4 of the largest gradient leaves a wide margin yet catches any wrong term.
static void fd_check(const char *label, const ref_layer *L, double *p, int n, const float *g, const double *R) {
    double max_err = 0, max_g = 0;
    for (int i = 0; i < n; i++) {
        double keep = p[i], h = 1e-5;
        p[i] = keep + h;
        double lp = ref_loss(L, R);
        p[i] = keep - h;
        double lm = ref_loss(L, R);
        p[i] = keep;
        double fd = (lp - lm) / (2 * h);
        if (fabs(fd - g[i]) > max_err) max_err = fabs(fd - g[i]);
        if (fabs(fd) > max_g) max_g = fabs(fd);
    }
    fprintf(stderr, "    %-34s max |grad| %.3g  max abs err %.3g  rel %.3g\n", label, max_g, max_err, max_err / max_g);
    CHECK_MSG(max_g > 0 && max_err <= 1e-4 * max_g, "%s: gradient error %.3g vs max %.3g", label, max_err, max_g);
}

// Each of the adapter's gradient tensors against central differences of the reference (whose
// ref_layer points at double copies of the same tensors).
static void adapter_grads_fd_check(const char *what, const adapter *a, const ref_layer *L, const double *R) {
    const char *m = adapter_method_name(a->method);
    char label[96];
    struct { const char *name; double *p; int n; const float *g; } t[4] = {
        {"dA", (double *)L->A, adapter_rows(a) * a->rank, a->dA},
        {"ddown", (double *)L->down, a->rank * a->d_in, a->ddown},
        {"dup", (double *)L->up, a->d_out * a->rank, a->dup},
        {"dmagnitude", (double *)L->m, a->d_out, a->dmagnitude},
    };
    for (int k = 0; k < 4; k++) {
        if (!t[k].g) continue;
        snprintf(label, sizeof label, "%s %dx%d %s%s", m, a->d_out, a->d_in, what, t[k].name);
        fd_check(label, L, t[k].p, t[k].n, t[k].g, R);
    }
}

static void check_method(adapter_method method, int d_in, int d_out) {
    const int r = 3, M = 4;
    const float alpha = 6.0f, u = 0.7f;
    char label[96];
    adapter a;
    adapter_alloc(&a, method, d_in, d_out, r, alpha);
    adapter_alloc_grads(&a);
    int nA = adapter_rows(&a) * r;
    float *w0 = malloc(sizeof(float) * (size_t)d_out * d_in), *b = malloc(sizeof(float) * (size_t)d_out);
    float *x = malloc(sizeof(float) * (size_t)M * d_in), *R = malloc(sizeof(float) * (size_t)M * d_out);
    float *y = malloc(sizeof(float) * (size_t)M * d_out), *dx = calloc((size_t)M * d_in, sizeof(float));
    float *db = calloc((size_t)d_out, sizeof(float));
    fill_uniform(w0, (size_t)d_out * d_in, 1, -0.5f, 0.5f);
    fill_uniform(b, (size_t)d_out, 2, -0.5f, 0.5f);
    fill_uniform(x, (size_t)M * d_in, 3, -1, 1);
    fill_uniform(R, (size_t)M * d_out, 4, -1, 1);
    if (a.A) fill_uniform(a.A, (size_t)nA, 5, -0.5f, 0.5f);
    if (a.down) {
        fill_uniform(a.down, (size_t)r * d_in, 6, -0.5f, 0.5f);
        fill_uniform(a.up, (size_t)d_out * r, 7, -0.5f, 0.5f);   // nonzero so every path is live
    }
    if (a.magnitude) fill_uniform(a.magnitude, (size_t)d_out, 8, 0.5f, 1.5f);

    ref_layer L = {d_in, d_out, r, M, alpha / r, u, method, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    double *dw0 = to_double(w0, d_out * d_in), *dbias = to_double(b, d_out), *dxin = to_double(x, M * d_in);
    double *dA = a.A ? to_double(a.A, nA) : NULL, *ddown = a.down ? to_double(a.down, r * d_in) : NULL;
    double *dup = a.up ? to_double(a.up, d_out * r) : NULL, *dm = a.magnitude ? to_double(a.magnitude, d_out) : NULL;
    double *dR = to_double(R, M * d_out);
    L.w0 = dw0; L.b = dbias; L.x = dxin; L.A = dA; L.down = ddown; L.up = dup; L.m = dm;

    // forward against the reference
    adapter_linear_forward(y, x, w0, b, &a, u, M, d_in, d_out);
    double *yref = malloc(sizeof(double) * (size_t)M * d_out);
    ref_forward(yref, &L);
    float *yref_f = malloc(sizeof(float) * (size_t)M * d_out);
    for (int i = 0; i < M * d_out; i++) yref_f[i] = (float)yref[i];
    snprintf(label, sizeof label, "%s %dx%d forward", adapter_method_name(method), d_out, d_in);
    check_close(label, y, yref_f, (size_t)M * d_out, 1e-5);

    // backward against finite differences
    adapter_linear_backward(dx, db, R, x, w0, &a, u, M, d_in, d_out);
    snprintf(label, sizeof label, "%s %dx%d dx", adapter_method_name(method), d_out, d_in);
    fd_check(label, &L, dxin, M * d_in, dx, dR);
    snprintf(label, sizeof label, "%s %dx%d db", adapter_method_name(method), d_out, d_in);
    fd_check(label, &L, dbias, d_out, db, dR);
    adapter_grads_fd_check("", &a, &L, dR);

    // the merged weight's backward (how convolutions train): L = Σ R ⊙ (x·Wᵀ + b) has
    // dL/dW = Rᵀ·x, and adapter_merged_backward must turn it into the same adapter gradients
    float *dW = calloc((size_t)d_out * d_in, sizeof(float));
    for (int o = 0; o < d_out; o++)
        for (int i = 0; i < d_in; i++)
            for (int t = 0; t < M; t++) dW[o * d_in + i] += R[t * d_out + o] * x[t * d_in + i];
    adapter_zero_grads(&a);
    adapter_merged_backward(&a, dW, w0, u, 1.0f);
    adapter_grads_fd_check("merged ", &a, &L, dR);
    free(dW);

    // merged weights give the same output as the unmerged adapter
    float *wm = malloc(sizeof(float) * (size_t)d_out * d_in), *ym = malloc(sizeof(float) * (size_t)M * d_out);
    memcpy(wm, w0, sizeof(float) * (size_t)d_out * d_in);
    adapter_merge_into(wm, &a, u, 1.0f);
    adapter_linear_forward(ym, x, wm, b, NULL, 0, M, d_in, d_out);
    snprintf(label, sizeof label, "%s %dx%d merged vs unmerged", adapter_method_name(method), d_out, d_in);
    check_close(label, ym, y, (size_t)M * d_out, 1e-5);

    free(w0); free(b); free(x); free(R); free(y); free(dx); free(db); free(wm); free(ym);
    free(dw0); free(dbias); free(dxin); free(dA); free(ddown); free(dup); free(dm); free(dR); free(yref); free(yref_f);
    adapter_free(&a);
}

TEST(singlora_math_three_shapes) {
    check_method(ADAPTER_SINGLORA, 8, 8);
    check_method(ADAPTER_SINGLORA, 12, 5);   // d_in > d_out: top-left block of A·Aᵀ
    check_method(ADAPTER_SINGLORA, 5, 12);   // d_out > d_in: A·A[:d_in]ᵀ
}

TEST(lora_math_three_shapes) {
    check_method(ADAPTER_LORA, 8, 8);
    check_method(ADAPTER_LORA, 12, 5);
    check_method(ADAPTER_LORA, 5, 12);
}

TEST(dora_math_three_shapes) {
    check_method(ADAPTER_DORA, 8, 8);
    check_method(ADAPTER_DORA, 12, 5);
    check_method(ADAPTER_DORA, 5, 12);
}

TEST(singlora_ramp_values) {
    CHECK(singlora_ramp(0, 100) == 0.0f);
    CHECK(singlora_ramp(25, 100) == 0.25f);
    CHECK(singlora_ramp(100, 100) == 1.0f);
    CHECK(singlora_ramp(500, 100) == 1.0f);
    CHECK(singlora_ramp(0, 0) == 1.0f);   // T = 0 disables the ramp
    // u = 0: the adapted layer equals the base layer exactly
    adapter a;
    adapter_alloc(&a, ADAPTER_SINGLORA, 6, 4, 2, 4.0f);
    fill_uniform(a.A, 12, 1, -1, 1);
    float w[24], x[12], y0[8], y1[8];
    fill_uniform(w, 24, 2, -1, 1);
    fill_uniform(x, 12, 3, -1, 1);
    adapter_linear_forward(y0, x, w, NULL, NULL, 0, 2, 6, 4);
    adapter_linear_forward(y1, x, w, NULL, &a, 0.0f, 2, 6, 4);
    CHECK(memcmp(y0, y1, sizeof y0) == 0);
    adapter_linear_forward(y1, x, w, NULL, &a, 0.5f, 2, 6, 4);
    CHECK(memcmp(y0, y1, sizeof y0) != 0);
    adapter_free(&a);
}

TEST(adapter_init_statistics) {
    // kaiming-uniform(a=√5) on A (rows, r): U(±1/√r), variance 1/(3r)
    sl_rng rng;
    sl_rng_seed(&rng, 7);
    adapter a;
    adapter_alloc(&a, ADAPTER_SINGLORA, 768, 320, 16, 16.0f);
    adapter_init(&a, &rng, 0, NULL);
    int n = 768 * 16;
    double mean = 0, var = 0, mx = 0;
    for (int i = 0; i < n; i++) { mean += a.A[i]; if (fabs(a.A[i]) > mx) mx = fabs(a.A[i]); }
    mean /= n;
    for (int i = 0; i < n; i++) var += (a.A[i] - mean) * (a.A[i] - mean);
    var /= n;
    // standard error of the mean: sqrt(var/n) ≈ 0.0013; of the variance ≈ var·0.013
    CHECK_NEAR(mean, 0.0, 0.006);
    CHECK_NEAR(var, 1.0 / (3 * 16), 0.06 / (3 * 16));
    CHECK(mx <= 0.25 && mx > 0.24);
    adapter_free(&a);
    // normal:STD
    adapter_alloc(&a, ADAPTER_SINGLORA, 320, 320, 8, 8.0f);
    adapter_init(&a, &rng, 0.02f, NULL);
    n = 320 * 8;
    mean = var = 0;
    for (int i = 0; i < n; i++) mean += a.A[i];
    mean /= n;
    for (int i = 0; i < n; i++) var += (a.A[i] - mean) * (a.A[i] - mean);
    var /= n;
    CHECK_NEAR(sqrt(var), 0.02, 0.002);
    adapter_free(&a);
    // lora: up starts at zero, down ~ U(±1/√d_in); dora magnitude = row norms of W0
    float w0[3 * 4] = {3, 4, 0, 0, 1, 0, 0, 0, 0, 0, 0, 2};
    adapter_alloc(&a, ADAPTER_DORA, 4, 3, 2, 2.0f);
    adapter_init(&a, &rng, 0, w0);
    for (int i = 0; i < 6; i++) CHECK(a.up[i] == 0.0f);
    for (int i = 0; i < 8; i++) CHECK(fabsf(a.down[i]) <= 0.5f);
    CHECK(a.magnitude[0] == 5.0f && a.magnitude[1] == 1.0f && a.magnitude[2] == 2.0f);
    CHECK_EQ_INT(adapter_param_count(&a), (4 + 3) * 2 + 3);
    adapter_free(&a);
}

TEST(singlora_reference_fixture) {
    // one non-square to_k (d_out 24, d_in 32) from the reference implementation
    st_file *f = st_open(shared_path("fixtures/io/lora_singlora_to_k.safetensors"));
    REQUIRE(f);
    float *A = st_load_f32(f, "A", 2, (int64_t[]){32, 4}), *W = st_load_f32(f, "W", 2, (int64_t[]){24, 32});
    float *Wm = st_load_f32(f, "W_merged", 2, (int64_t[]){24, 32}), *x = st_load_f32(f, "x", 3, (int64_t[]){2, 77, 32});
    float *yref = st_load_f32(f, "y", 3, (int64_t[]){2, 77, 24});
    float *alpha = st_load_f32(f, "alpha", 0, NULL), *u = st_load_f32(f, "u", 0, NULL);
    REQUIRE(A && W && Wm && x && yref && alpha && u);
    const st_entry *re = st_find(f, "rank");
    REQUIRE(re && re->dt == DT_I64);
    int64_t rank;
    memcpy(&rank, re->data, 8);
    CHECK_EQ_INT(rank, 4);
    adapter a;
    adapter_alloc(&a, ADAPTER_SINGLORA, 32, 24, (int)rank, *alpha);
    memcpy(a.A, A, sizeof(float) * 32 * 4);
    float *y = malloc(sizeof(float) * 2 * 77 * 24);
    adapter_linear_forward(y, x, W, NULL, &a, *u, 2 * 77, 32, 24);
    check_close("singlora to_k fixture y", y, yref, 2 * 77 * 24, 1e-5);
    adapter_merge_into(W, &a, *u, 1.0f);
    check_close("singlora to_k fixture W_merged", W, Wm, 24 * 32, 1e-6);
    free(y);
    adapter_free(&a);
    float *loaded[] = {A, W, Wm, x, yref, alpha, u};
    for (int i = 0; i < 7; i++) sl_free_aligned(loaded[i]);
    st_close(f);
}
