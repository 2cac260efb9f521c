// Tensors under a finite-difference test (engine f32 copy, reference f64 copy, engine gradient
// starting at GRAD_BASE so that backward must accumulate), shared by the block and UNet tests.
#pragma once
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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
