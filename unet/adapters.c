// Adapters on the UNet's modules: attaching an adapter_set by module path, the Linear
// forward/backward that routes through an attached adapter (never forming ΔW), and the merged
// kernel of an adapted convolution (where ΔW is formed: a conv's GEMM then runs it).
#include <stdlib.h>
#include <string.h>

#include "engine/core/bf16_weights.h"
#include "engine/core/error.h"
#include "engine/kernels/linear.h"
#include "engine/core/tensor.h"
#include "unet/internal.h"
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
        s->a.kernel = l->kernel;
        a->bound[i] = 1;
        *l->adapter = &s->a;
        bf16_weights_unhold(l->weight);   // an adapted layer's forward reads W0 (DoRA's norms, merged kernels)
        return 0;
    }
    return 0;
}

int unet_attach_adapters(unet_model *m, adapter_set *s, float scale, const char *path) {
    attach_ctx a = {.set = s, .bound = s ? sl_calloc((size_t)s->n_slots + 1, 1) : NULL, .path = path};
    int rc = unet_walk_linears(m, attach_visitor, &a);
    for (int i = 0; rc == 0 && s && i < s->n_slots; i++)
        if (!a.bound[i])
            rc = sl_error(path, "adapter module '%s' is not a layer of this UNet adapters can target",
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

float *unet_conv_weight(const float *w0, const adapter *a, const unet_adapt *ua, int d_in, int d_out) {
    if (!a) return NULL;
    int64_t n = (int64_t)d_out * d_in;
    float *w = sl_alloc_f32(n);
    memcpy(w, w0, sizeof(float) * (size_t)n);
    adapter_merge_into(w, a, ua ? ua->u : 1.0f, ua ? ua->scale : 1.0f);
    return w;
}

void unet_conv_weight_backward(float *dw0, const float *dw, const float *w0, adapter *a, const unet_adapt *ua, int d_in,
                               int d_out) {
    if (dw0) unet_add_inplace(dw0, dw, (int64_t)d_out * d_in);
    if (a) adapter_merged_backward(a, dw, w0, ua ? ua->u : 1.0f, ua ? ua->scale : 1.0f);
}

float **unet_resnet_conv(resnet_block *rb, int k, int *d_in, int *d_out) {
    *d_out = rb->C_out;
    *d_in = k == RES_CONV1 ? rb->C_in * 9 : k == RES_CONV2 ? rb->C_out * 9 : rb->C_in;
    return k == RES_CONV1 ? &rb->conv1_w : k == RES_CONV2 ? &rb->conv2_w : &rb->skip_w;
}

const resnet_block *unet_resnet_merged(resnet_block *merged, const resnet_block *rb, const unet_resnet_adapters *ad,
                                       const unet_adapt *ua) {
    *merged = *rb;
    int any = 0;
    for (int k = 0; ad && k < RES_N_CONVS; k++) {
        if (!ad->conv[k]) continue;
        int di, dout;
        float **w = unet_resnet_conv(merged, k, &di, &dout);
        *w = unet_conv_weight(*w, ad->conv[k], ua, di, dout);
        any = 1;
    }
    return any ? merged : rb;
}

void unet_resnet_merged_free(resnet_block *merged, const resnet_block *rb) {
    for (int k = 0; k < RES_N_CONVS; k++) {
        int di, dout;
        float **w = unet_resnet_conv(merged, k, &di, &dout), **w0 = unet_resnet_conv((resnet_block *)rb, k, &di, &dout);
        if (*w != *w0) sl_free_aligned(*w);
        *w = *w0;
    }
}
