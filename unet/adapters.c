// Adapters on the UNet's Linear modules: attaching an adapter_set by module path, and the
// Linear forward/backward that routes through an attached adapter (never forming ΔW).
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/kernels/linear.h"
#include "engine/core/tensor.h"
#include "unet/unet.h"

typedef struct {
    adapter_set *set;
    char *bound;        // (n_slots) 1 once a slot found its module
    const char *path;
} attach_ctx;

static int attach_visitor(void *ctx, const unet_linear *l) {
    attach_ctx *a = ctx;
    *l->adapter = NULL;
    if (!a->set) return 0;
    for (int i = 0; i < a->set->n_slots; i++) {
        adapter_slot *s = &a->set->slots[i];
        if (strcmp(s->module, l->path) != 0) continue;
        if (adapter_bind_shape(&s->a, s->module, l->d_in, l->d_out, a->path) != 0) return -1;
        a->bound[i] = 1;
        *l->adapter = &s->a;
        return 0;
    }
    return 0;
}

int unet_attach_adapters(unet_model *m, adapter_set *s, float scale, const char *path) {
    attach_ctx a = {.set = s, .bound = s ? sl_calloc((size_t)s->n_slots + 1, 1) : NULL, .path = path};
    int rc = unet_walk_linears(m, attach_visitor, &a);
    for (int i = 0; rc == 0 && s && i < s->n_slots; i++)
        if (!a.bound[i])
            rc = sl_error(path, "adapter module '%s' is not a Linear layer of this UNet's transformers",
                          s->slots[i].module);
    free(a.bound);
    if (rc != 0) {   // leave the model as it was: no adapters
        unet_walk_linears(m, attach_visitor, &(attach_ctx){0});
        m->adapters = NULL;
        m->adapter_scale = 1.0f;
        return -1;
    }
    m->adapters = s;
    m->adapter_scale = s ? scale : 1.0f;
    if (s && s->base_model[0]) {
        char h[17];
        unet_model_hash(m, h);
        if (strcmp(h, s->base_model) != 0)
            sl_warn("%s: adapter was made for base model %s, this UNet is %s (applied anyway)", path ? path : "adapter",
                    s->base_model, h);
    }
    return 0;
}

unet_adapt unet_adapter_state(const unet_model *m) {
    unet_adapt ua = {1.0f, 1.0f};
    if (m->adapters) {
        ua.u = adapter_set_ramp(m->adapters);
        ua.scale = m->adapter_scale;
    }
    return ua;
}

// SingLoRA and LoRA add s·(low-rank path) with s = α/r, so a strength multiplies α: a shallow
// copy with a scaled α shares the tensors and gradient buffers of the original.
static adapter scaled(const adapter *a, float scale) {
    adapter t = *a;
    t.alpha = a->alpha * scale;
    return t;
}

void unet_linear_forward(float *y, const float *x, const float *w, const float *b, const adapter *a,
                         const unet_adapt *ua, int M, int d_in, int d_out) {
    if (!a) {
        linear_forward(y, x, w, b, M, d_in, d_out);
        return;
    }
    float u = ua ? ua->u : 1.0f, sc = ua ? ua->scale : 1.0f;
    if (a->method != ADAPTER_DORA) {
        adapter t = scaled(a, sc);
        adapter_linear_forward(y, x, w, b, &t, u, M, d_in, d_out);
    } else if (sc == 1.0f) {
        adapter_linear_forward(y, x, w, b, a, u, M, d_in, d_out);
    } else {
        // DoRA at strength sc: y = sc·dora(x) + (1 − sc)·(W0·x + b), as merging interpolates
        int64_t n = (int64_t)M * d_out;
        float *base = sl_alloc_f32(n);
        linear_forward(base, x, w, b, M, d_in, d_out);
        adapter_linear_forward(y, x, w, b, a, u, M, d_in, d_out);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) y[i] = sc * y[i] + (1.0f - sc) * base[i];
        sl_free_aligned(base);
    }
}

void unet_linear_backward(float *dx, float *dw, float *db, const float *dy, const float *x, const float *w,
                          adapter *a, const unet_adapt *ua, int M, int d_in, int d_out) {
    if (!a) {
        linear_backward(dx, dw, db, dy, x, w, M, d_in, d_out);
        return;
    }
    float u = ua ? ua->u : 1.0f, sc = ua ? ua->scale : 1.0f;
    if (a->method != ADAPTER_DORA) {
        // W = W0 + ΔW: W0's own gradient (full fine-tuning with an adapter) is dyᵀ·x as without it
        if (dw) linear_backward(NULL, dw, NULL, dy, x, w, M, d_in, d_out);
        adapter t = scaled(a, sc);
        adapter_linear_backward(dx, db, dy, x, w, &t, u, M, d_in, d_out);
    } else if (sc == 1.0f) {
        adapter_linear_backward(dx, db, dy, x, w, a, u, M, d_in, d_out);
    } else {
        int64_t n = (int64_t)M * d_out;
        float *g = sl_alloc_f32(n);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) g[i] = sc * dy[i];
        adapter_linear_backward(dx, db, g, x, w, a, u, M, d_in, d_out);
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) g[i] = (1.0f - sc) * dy[i];
        linear_backward(dx, NULL, db, g, x, w, M, d_in, d_out);
        sl_free_aligned(g);
    }
}
