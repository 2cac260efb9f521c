// The UNet backward: the training forward's ops in reverse (unet/unet.c lays them out), with
// the output head first and conv_in and the time embedding last. The gradient of a down-path
// output that is also a skip is the sum of what its next layer and its up-path resnet send
// back. Under gradient checkpointing a transformer's activations are recomputed from what its
// forward kept right before its backward, with the calls the forward made, so gradients are
// bit-identical.
#include <stdlib.h>
#include <string.h>

#include "engine/kernels/activations.h"
#include "engine/kernels/conv2d.h"
#include "engine/core/error.h"
#include "engine/kernels/linear.h"
#include "engine/kernels/norm.h"
#include "engine/kernels/resample.h"
#include "engine/core/tensor.h"
#include "unet/internal.h"
#include "unet/unet.h"

#define G(f) (g ? g->f : NULL)

// W0 of a layer with a DoRA adapter has no gradient here (its norm couples W0 and the adapter).
typedef struct {
    char *trains;   // per Linear module, in walk order: 1 when the mirror has its weight buffer
    int n, cap, k;
    const char *bad;
} dora_check;

static int collect_trained(void *ctx, const unet_linear *l) {
    dora_check *d = ctx;
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 256;
        d->trains = sl_realloc(d->trains, (size_t)d->cap);
    }
    d->trains[d->n++] = *l->weight != NULL;
    return 0;
}

static int find_dora(void *ctx, const unet_linear *l) {
    dora_check *d = ctx;
    if (d->trains[d->k++] && *l->adapter && (*l->adapter)->method == ADAPTER_DORA)
        return sl_error(NULL, "the weight of '%s' cannot train under its DoRA adapter", l->path);
    return 0;
}

static int check_dora(const unet_model *m, unet_model *g) {
    if (!m->adapters || m->adapters->method != ADAPTER_DORA) return 0;
    dora_check d = {0};
    unet_walk_linears(g, collect_trained, &d);
    int rc = unet_walk_linears((unet_model *)m, find_dora, &d);
    free(d.trains);
    return rc;
}

static int adapter_trains(const adapter *a) { return a && (a->dA || a->ddown || a->dup || a->dmagnitude); }

// Which ops own something that trains, from the two walks (parameters of the gradient mirror
// with a buffer; Linear layers whose adapter has gradient buffers): a name belongs to the op
// whose module path prefixes it.
typedef struct {
    const unet_tape *T;
    char (*module)[64];   // (n_ops) each op's module path
    char *trains;         // (n_ops)
} trains_map;

static void mark_owner(trains_map *t, const char *name) {
    for (int k = 0; k < t->T->n_ops; k++) {
        size_t n = strlen(t->module[k]);
        if (!strncmp(name, t->module[k], n) && name[n] == '.') t->trains[k] = 1;
    }
}

static int mark_param(void *ctx, const param_desc *p) {
    if (*p->slot) mark_owner(ctx, p->name);
    return 0;
}

static int mark_adapter(void *ctx, const unet_linear *l) {
    if (adapter_trains(*l->adapter)) mark_owner(ctx, l->path);
    return 0;
}

// trains (n_ops): 1 where the op has a parameter or an adapter tensor that gets a gradient.
static void ops_that_train(char *trains, const unet_tape *T, const unet_model *m, unet_model *g) {
    trains_map t = {T, sl_calloc((size_t)T->n_ops + 1, sizeof *t.module), trains};
    memset(trains, 0, (size_t)T->n_ops);
    for (int k = 0; k < T->n_ops; k++) unet_op_module(&T->ops[k], t.module[k], sizeof t.module[k]);
    if (g) unet_walk(g, mark_param, &t);
    unet_walk_linears((unet_model *)m, mark_adapter, &t);
    free(t.module);
}

// resnet_backward through the block's adapted convolutions: the merged kernels again (the
// forward's values, bit for bit), their gradients into scratch, then to the adapters and to
// W0's buffer in gr. A conv whose adapter is frozen and whose W0 is frozen gets no dW GEMM.
static void resnet_backward_adapted(float *dx, float *dtemb_silu, resnet_block *gr, const float *dout, const float *x,
                                    const float *temb_silu, const resnet_block *rb, const unet_resnet_adapters *ad,
                                    const unet_adapt *ua, const resnet_acts *acts, int N, int H, int W) {
    resnet_block merged, g = {0};
    const resnet_block *rm = unet_resnet_merged(&merged, rb, ad, ua);
    if (rm == rb) {
        resnet_backward(dx, dtemb_silu, gr, dout, x, temb_silu, rb, acts, N, H, W);
        return;
    }
    if (gr) g = *gr;
    float *dw[RES_N_CONVS] = {0};
    for (int k = 0; k < RES_N_CONVS; k++) {
        int di, dout_;
        float **slot = unet_resnet_conv(&g, k, &di, &dout_);
        unet_resnet_conv(&merged, k, &di, &dout_);   // the shape (g may be all NULL)
        if (ad->conv[k] && (adapter_trains(ad->conv[k]) || *slot)) *slot = dw[k] = sl_zeros_f32((int64_t)dout_ * di);
    }
    resnet_backward(dx, dtemb_silu, &g, dout, x, temb_silu, rm, acts, N, H, W);
    for (int k = 0; k < RES_N_CONVS; k++) {
        if (!dw[k]) continue;
        int di, dout_;
        float **w0 = unet_resnet_conv((resnet_block *)rb, k, &di, &dout_);
        float **g0 = gr ? unet_resnet_conv(gr, k, &di, &dout_) : NULL;
        unet_conv_weight_backward(g0 ? *g0 : NULL, dw[k], *w0, ad->conv[k], ua, di, dout_);
        sl_free_aligned(dw[k]);
    }
    unet_resnet_merged_free(&merged, rb);
}

// A resample conv's backward through its adapter (as resnet_backward_adapted).
static void resample_backward(float *din, unet_block *gb, const float *dout, const float *in, const unet_block *b,
                              const unet_adapt *ua, conv2d_shape cs) {
    float *wm = unet_conv_weight(b->resample_w, b->resample_ad, ua, cs.C_in * 9, cs.C_out);
    float *gw = gb ? gb->resample_w : NULL, *dw = NULL;
    if (wm && (adapter_trains(b->resample_ad) || gw)) dw = sl_zeros_f32((int64_t)cs.C_out * cs.C_in * 9);
    conv2d_backward(din, dw ? dw : gw, gb ? gb->resample_b : NULL, dout, in, wm ? wm : b->resample_w, cs);
    if (dw) unet_conv_weight_backward(gw, dw, b->resample_w, b->resample_ad, ua, cs.C_in * 9, cs.C_out);
    sl_free_aligned(dw);
    sl_free_aligned(wm);
}

// One op's backward: din (N, C_in, H, W) += dL/d(input) (din NULL: not needed); an up resnet
// also sends dL/d(skip) into dskip (allocated on first use); dtemb_silu, dctx and g accumulate.
static void op_backward(unet_op *op, const unet_model *m, unet_model *g, const float *in, const float *skip,
                        float *din, float **dskip, const float *dout, unet_tape *T, float *dtemb_silu, float *dctx) {
    const int N = T->N, HW = op->H * op->W;
    switch (op->kind) {
    case OP_RESNET: {
        const resnet_block *rb = unet_op_resnet(m, op);
        resnet_block *gr = g ? unet_op_resnet(g, op) : NULL;
        const unet_resnet_adapters *ad = unet_op_resnet_adapters(m, op);
        if (!skip) {
            resnet_backward_adapted(din, dtemb_silu, gr, dout, in, T->temb_silu, rb, ad, &T->ua, &op->ra, N, op->H, op->W);
            break;
        }
        // the input was [in, skip] along channels: split its gradient (none is wanted when nothing
        // before this op needs one, din == NULL: the skip comes from an earlier op too)
        const int Ca = op->C_in, Cb = op->Cs;
        float *cat = sl_alloc_f32((int64_t)N * (Ca + Cb) * HW), *dcat = din ? sl_zeros_f32((int64_t)N * (Ca + Cb) * HW) : NULL;
        unet_concat_channels(cat, in, Ca, skip, Cb, N, HW);
        resnet_backward_adapted(dcat, dtemb_silu, gr, dout, cat, T->temb_silu, rb, ad, &T->ua, &op->ra, N, op->H, op->W);
        if (din && !*dskip) *dskip = sl_zeros_f32((int64_t)N * Cb * HW);
        for (int n = 0; din && n < N; n++) {
            unet_add_inplace(din + (int64_t)n * Ca * HW, dcat + (int64_t)n * (Ca + Cb) * HW, (int64_t)Ca * HW);
            unet_add_inplace(*dskip + (int64_t)n * Cb * HW, dcat + ((int64_t)n * (Ca + Cb) + Ca) * HW, (int64_t)Cb * HW);
        }
        sl_free_aligned(cat);
        sl_free_aligned(dcat);
        break;
    }
    case OP_TRANSFORMER:
        transformer_backward(din, dctx, g ? unet_op_transformer(g, op) : NULL, dout, in, T->ctx,
                             unet_op_transformer(m, op), &T->ua, &op->ta, N, op->H, op->W, T->L);
        break;
    case OP_DOWNSAMPLE: {
        const unet_block *b = unet_op_block(m, op);
        unet_block *gb = g ? unet_op_block(g, op) : NULL;
        resample_backward(din, gb, dout, in, b, &T->ua, (conv2d_shape){N, op->C_in, op->H, op->W, op->C_out, 3, 2, 1});
        break;
    }
    case OP_UPSAMPLE: {
        // out = conv(crop(up2×(in))): the conv's input is recomputed
        const unet_block *b = unet_op_block(m, op);
        unet_block *gb = g ? unet_op_block(g, op) : NULL;
        const int C = op->C_in, Ho = op->Ho, Wo = op->Wo, H = op->H, W = op->W;
        float *u = sl_alloc_f32((int64_t)N * C * Ho * Wo), *du = sl_zeros_f32((int64_t)N * C * Ho * Wo);
        unet_upsample_to(u, in, N, C, H, W, Ho, Wo);
        resample_backward(din ? du : NULL, gb, dout, u, b, &T->ua, (conv2d_shape){N, C, Ho, Wo, op->C_out, 3, 1, 1});
        sl_free_aligned(u);
        if (!din) {
        } else if (Ho == 2 * H && Wo == 2 * W) {
            upsample_nearest2x_backward(din, du, N, C, H, W);
        } else {   // the crop's gradient: du in the top-left of a zero (2H, 2W) plane
            float *dpad = sl_zeros_f32((int64_t)N * C * 4 * H * W);
            for (int64_t nc = 0; nc < (int64_t)N * C; nc++)
                for (int y = 0; y < Ho; y++)
                    memcpy(dpad + (nc * 2 * H + y) * 2 * W, du + (nc * Ho + y) * Wo, sizeof(float) * (size_t)Wo);
            upsample_nearest2x_backward(din, dpad, N, C, H, W);
            sl_free_aligned(dpad);
        }
        sl_free_aligned(du);
        break;
    }
    }
}

int unet_backward(float *dx, float *dctx, unet_model *g, const float *dout, unet_tape *T) {
    if (!T || T->used) return sl_error(NULL, "unet_backward: the tape was already used (one backward per forward)");
    const unet_model *m = T->m;
    const unet_config *c = &m->cfg;
    const int N = T->N, h = T->h, w = T->w, C0 = c->block_out_channels[0], TD = c->time_embed_dim;
    if (g && check_dora(m, g) != 0) return -1;
    T->used = 1;
    const int time_trains = g && (g->time_w1 || g->time_b1 || g->time_w2 || g->time_b2);
    float *dtemb_silu = time_trains ? sl_zeros_f32((int64_t)N * TD) : NULL;   // (N, T), summed over all resnets

    // output head: out = conv_out(SiLU(GN(cur)))
    const float *cur = T->ops[T->n_ops - 1].out;
    const int64_t n0 = (int64_t)N * C0 * h * w;
    float *gs = sl_alloc_f32(n0), *dgs = sl_zeros_f32(n0);
    groupnorm_forward(gs, NULL, NULL, cur, m->norm_out_w, m->norm_out_b, N, C0, h * w, c->norm_num_groups, c->norm_eps, 1);
    conv2d_backward(dgs, G(conv_out_w), G(conv_out_b), dout, gs, m->conv_out_w,
                    (conv2d_shape){N, C0, h, w, c->out_channels, c->conv_out_kernel, 1, c->conv_out_kernel / 2});
    float *dcur = sl_zeros_f32(n0);
    groupnorm_silu_backward(dcur, G(norm_out_w), G(norm_out_b), dgs, cur, m->norm_out_w, m->norm_out_b, N, C0, h * w,
                            c->norm_num_groups, c->norm_eps);
    sl_free_aligned(gs);
    sl_free_aligned(dgs);

    // Gradients flow only to earlier ops: op k needs its input's gradient when an earlier op
    // trains or sends a gradient to the time embedding or the context, or conv_in or x needs
    // one. An op with nothing to compute is skipped (e.g. the first resnet when only adapters
    // train).
    int needs[UNET_MAX_OPS + 1];   // needs[k]: something before op k wants a gradient
    char trains[UNET_MAX_OPS];
    ops_that_train(trains, T, m, g);
    needs[0] = dx || (g && (g->conv_in_w || g->conv_in_b));
    for (int k = 0; k < T->n_ops; k++) {
        const unet_op *op = &T->ops[k];
        needs[k + 1] = needs[k] || trains[k] || (op->kind == OP_RESNET && dtemb_silu) ||
                       (op->kind == OP_TRANSFORMER && dctx);
    }

    // the ops in reverse; dcur is dL/d(op output)
    float *dskip[UNET_MAX_SKIPS] = {0};
    for (int k = T->n_ops - 1; k >= 0; k--) {
        unet_op *op = &T->ops[k];
        const float *in = k ? T->ops[k - 1].out : T->c0;
        const float *skip = op->skip >= 0 ? T->skips[op->skip] : NULL;
        if (op->out_skip >= 0 && dskip[op->out_skip]) {   // the up path's share of this output's gradient
            if (dcur) unet_add_inplace(dcur, dskip[op->out_skip], (int64_t)N * op->C_out * op->Ho * op->Wo);
            sl_free_aligned(dskip[op->out_skip]);
            dskip[op->out_skip] = NULL;
        }
        float *din = needs[k] ? sl_zeros_f32((int64_t)N * op->C_in * op->H * op->W) : NULL;
        if (needs[k + 1]) {   // dcur != NULL
            if (T->checkpoint && op->kind == OP_TRANSFORMER)
                transformer_recompute(&op->ta, T->ctx, unet_op_transformer(m, op), g ? unet_op_transformer(g, op) : NULL,
                                      &T->ua, N, op->H, op->W, T->L);
            op_backward(op, m, g, in, skip, din, op->skip >= 0 ? &dskip[op->skip] : NULL, dcur, T, dtemb_silu, dctx);
        }
        resnet_acts_free(&op->ra);
        transformer_acts_free(&op->ta);
        sl_free_aligned(dcur);
        dcur = din;
        sl_free_aligned(op->out);   // read by nothing any more
        op->out = NULL;
        if (op->out_skip >= 0) T->skips[op->out_skip] = NULL;
    }

    // conv_in (its output is skip 0)
    if (dcur && dskip[0]) unet_add_inplace(dcur, dskip[0], n0);
    const int Ci = c->in_channels;
    const int64_t nx = (int64_t)N * Ci * h * w;
    float *dxin = dx && c->center_input_sample ? sl_zeros_f32(nx) : dx;
    if (dcur) conv2d_backward(dxin, G(conv_in_w), G(conv_in_b), dcur, T->xin ? T->xin : T->x, m->conv_in_w,
                    (conv2d_shape){N, Ci, h, w, C0, c->conv_in_kernel, 1, c->conv_in_kernel / 2});
    if (dxin && dxin != dx) {   // x -> 2x − 1
        for (int64_t i = 0; i < nx; i++) dx[i] += 2.0f * dxin[i];
        sl_free_aligned(dxin);
    }
    sl_free_aligned(dcur);
    for (int s = 0; s < UNET_MAX_SKIPS; s++) sl_free_aligned(dskip[s]);

    // time embedding: temb_silu = SiLU(temb), temb = linear_2(SiLU(e1)), e1 = linear_1(sinusoids)
    if (dtemb_silu) {
        const int64_t nt = (int64_t)N * TD;
        float *dtemb = sl_zeros_f32(nt), *s1 = sl_alloc_f32(nt), *ds1 = sl_zeros_f32(nt), *de1 = sl_zeros_f32(nt);
        silu_backward(dtemb, dtemb_silu, T->temb, nt);
        silu_forward(s1, T->e1, nt);
        linear_backward(ds1, G(time_w2), G(time_b2), dtemb, s1, m->time_w2, N, TD, TD);
        silu_backward(de1, ds1, T->e1, nt);
        linear_backward(NULL, G(time_w1), G(time_b1), de1, T->tp, m->time_w1, N, C0, TD);
        float *bufs[] = {dtemb, s1, ds1, de1, dtemb_silu};
        for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) sl_free_aligned(bufs[i]);
    }
    return 0;
}
