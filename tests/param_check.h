// Tensors under a finite-difference test (engine f32 copy, reference f64 copy, engine gradient
// starting at GRAD_BASE so that backward must accumulate), shared by the block and UNet tests.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/params.h"
#include "engine/core/tensor.h"
#include "tests/kernel_check.h"

// One tensor under test: the engine's f32 copy, the reference's f64 copy, the engine's gradient.
typedef struct {
    const char *name;
    float *f, *g;
    double *d;
    int64_t n;
    int frozen;   // no gradient expected (not checked)
} tparam;

#define GRAD_BASE 0.25f   // gradients start here: backward must accumulate (+=)

static inline void tp_new(tparam *p, const char *name, int64_t n, uint64_t seed, float lo, float hi) {
    p->name = name;
    p->n = n;
    p->f = sl_alloc_f32(n);
    fill_uniform(p->f, (size_t)n, seed, lo, hi);
    p->d = to_f64(p->f, n);
    p->g = sl_alloc_f32(n);
    for (int64_t i = 0; i < n; i++) p->g[i] = GRAD_BASE;
}

// A tparam over existing f32 storage (adapter tensors) with its gradient buffer.
static inline void tp_wrap(tparam *p, const char *name, float *f, float *g, int64_t n) {
    p->name = name;
    p->n = n;
    p->f = f;
    p->g = g;
    p->d = to_f64(f, n);
    for (int64_t i = 0; i < n; i++) p->g[i] = GRAD_BASE;
}

static inline void tp_free(tparam *p, int owned) {
    if (owned) {
        sl_free_aligned(p->f);
        sl_free_aligned(p->g);
    }
    free(p->d);
}

// Central differences (h = 1e-6 on the double reference) of loss() for every entry of every
// tparam, against the engine's gradients (minus GRAD_BASE). Error relative to max |reference|.
static inline void fd_check_all(const char *what, double (*loss)(void *), void *ctx, tparam *ps, int np, double tol) {
    for (int k = 0; k < np; k++) {
        tparam *p = &ps[k];
        if (!p->n || p->frozen) continue;
        double *fd = malloc(sizeof(double) * (size_t)p->n);
        fd_grad(loss, ctx, p->d, p->n, fd, 1e-6);
        char label[256];
        snprintf(label, sizeof label, "%s %s", what, p->name);
        check_grad(label, p->g, GRAD_BASE, fd, p->n, tol);
        free(fd);
    }
}

// Every tensor of a model's parameter walk (name, data, count): walk the model and its gradient
// mirror with param_list_visitor into two lists and pair them by index.
typedef struct {
    char *name;
    float *p;
    int64_t n;
} param_item;
typedef struct {
    param_item *e;
    int n;
} param_list;

static inline int param_list_visitor(void *ctx, const param_desc *p) {
    param_list *l = ctx;
    l->e = realloc(l->e, sizeof *l->e * (size_t)(l->n + 1));
    l->e[l->n++] = (param_item){strdup(p->name), *p->slot, shape_numel(p->ndim, p->shape)};
    return 0;
}

static inline void param_list_free(param_list *l) {
    for (int i = 0; i < l->n; i++) free(l->e[i].name);
    free(l->e);
}

// A whole model's gradient of one tensor p (n floats) against its own f32 forward: the central
// difference of loss() along v = g/max|g| + noise, against Σ g·v (eps relative to the tensor's
// rms). Returns the relative error.
static inline double directional_fd(double (*loss)(void *), void *ctx, float *p, const float *g, int64_t n,
                                    uint64_t seed) {
    float *v = rand_f32(n, seed, -0.3f, 0.3f), *p0 = sl_alloc_f32(n);
    memcpy(p0, p, sizeof(float) * (size_t)n);
    double gmax = 0, an = 0, rms = 0;
    for (int64_t i = 0; i < n; i++) gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax, rms += (double)p[i] * p[i];
    rms = sqrt(rms / n);
    for (int64_t i = 0; i < n; i++) {
        if (gmax > 0) v[i] += (float)(g[i] / gmax);
        an += (double)g[i] * v[i];
    }
    double eps = 1e-2 * (rms > 0.05 ? rms : 0.05);
    for (int64_t i = 0; i < n; i++) p[i] = p0[i] + (float)eps * v[i];
    double lp = loss(ctx);
    for (int64_t i = 0; i < n; i++) p[i] = p0[i] - (float)eps * v[i];
    double lm = loss(ctx);
    memcpy(p, p0, sizeof(float) * (size_t)n);
    double fd = (lp - lm) / (2 * eps), floor = 1e-5 * (fabs(lp) + fabs(lm)) / 2 / eps;
    free(v), sl_free_aligned(p0);
    return fabs(fd - an) / (fabs(an) > floor ? fabs(an) : floor);
}
