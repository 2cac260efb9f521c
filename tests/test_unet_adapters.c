// Adapters in the UNet: the Linear-module enumeration, attaching an adapter set (and its
// errors), u = 0 equals the base model bit for bit, merged equals unmerged, gradients of the
// adapter tensors through the whole UNet against finite differences, u(t) untouched by forward
// calls and checkpoint recomputation, and the forward/backward commands with --adapter.
#include <stdlib.h>
#include <string.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/bf16_weights.h"
#include "pipeline/adapters.h"
#include "engine/core/dtype.h"
#include "engine/kernels/gemm.h"
#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "tests/test.h"
#include "unet/unet.h"
#include "tests/unet_tiny.h"

// ---------------------------------------------------------------- enumeration

typedef struct {
    int n, n_conv, n_kernel;
    unet_model *m;
    const char *names[4096];
    int64_t shapes[4096][4];
    int ndims[4096], nn;
} enum_ctx;

static int collect_params(void *vp, const param_desc *p) {
    enum_ctx *e = vp;
    if (e->nn < 4096) {
        e->names[e->nn] = strdup(p->name);
        memcpy(e->shapes[e->nn], p->shape, sizeof p->shape);
        e->ndims[e->nn++] = p->ndim;
    }
    return 0;
}

static int check_linear(void *vp, const unet_linear *l) {
    enum_ctx *e = vp;
    e->n++;
    char w[400];
    snprintf(w, sizeof w, "%s.weight", l->path);
    int found = 0;
    for (int i = 0; i < e->nn; i++)
        if (!strcmp(e->names[i], w)) {
            found = 1;
            // a conv's (C_out, C_in, k, k) is the matrix (C_out, C_in·k·k); kernel 0 runs as a Linear
            int64_t k = l->kernel ? l->kernel : 1, cols = e->ndims[i] == 4 ? e->shapes[i][1] * k * k : e->shapes[i][1];
            CHECK_MSG(e->shapes[i][0] == l->d_out && cols == l->d_in, "%s: shape differs", w);
            CHECK_MSG(e->ndims[i] == 4 ? (e->shapes[i][2] == k && e->shapes[i][3] == k) : l->kernel == 0, "%s: kernel", w);
            if (e->ndims[i] == 4 && !l->kernel) e->n_conv++;   // SD 1.x's 1×1 proj_in/proj_out
            if (l->kernel) e->n_kernel++;
        }
    CHECK_MSG(found, "%s has no parameter %s", l->path, w);
    CHECK(l->weight && *l->weight && l->adapter && *l->adapter == NULL);
    int has_bias = strstr(l->path, ".to_q") || strstr(l->path, ".to_k") || strstr(l->path, ".to_v");
    CHECK_MSG(!l->kernel == !adapter_target_matches("conv1,conv2,conv_shortcut,conv", l->path), "%s: kernel %d", l->path,
              l->kernel);
    CHECK_MSG((l->bias == NULL) == (has_bias != 0), "%s: bias", l->path);
    return 0;
}

TEST(unet_linear_enumeration) {
    for (int k = 0; k < 2; k++) {
        unet_model *m = unet_load(shared_path(k ? "fixtures/sd2_tiny" : "fixtures/sd1_tiny"), NULL, NULL);
        REQUIRE(m != NULL);
        enum_ctx *e = calloc(1, sizeof *e);
        unet_walk(m, collect_params, e);
        unet_walk_linears(m, check_linear, e);
        // SD 1.x layout: 16 transformers (7 down/mid... here 3·2 down + 1 mid + 3·3 up), one block each:
        // 10 Linears per block + proj_in + proj_out
        int transformers = 3 * 2 + 1 + 3 * 3;
        // convolutions: conv1 and conv2 of 4 levels × 2 down resnets + 2 mid + 4 × 3 up resnets, a
        // conv_shortcut in each resnet whose channels change, 3 downsamplers and 3 upsamplers
        int resnets = 4 * 2 + 2 + 4 * 3, shortcuts = 0;
        for (int i = 0; i < m->cfg.n_levels; i++) {
            for (int j = 0; j < m->down[i].n_res; j++) shortcuts += m->down[i].res[j].C_in != m->down[i].res[j].C_out;
            for (int j = 0; j < m->up[i].n_res; j++) shortcuts += m->up[i].res[j].C_in != m->up[i].res[j].C_out;
        }
        CHECK_EQ_INT(e->n, transformers * 12 + e->n_kernel);
        CHECK_EQ_INT(e->n_kernel, 2 * resnets + shortcuts + 3 + 3);
        CHECK_EQ_INT(e->n_conv, k ? 0 : 2 * transformers);
        fprintf(stderr, "    %s: %d modules: %d Linears (%d are 1x1 convs), %d convolutions (%d shortcuts)\n",
                k ? "sd2" : "sd1", e->n, e->n - e->n_kernel, e->n_conv, e->n_kernel, shortcuts);
        for (int i = 0; i < e->nn; i++) free((char *)e->names[i]);
        free(e);
        unet_free(m);
    }
}

// ---------------------------------------------------------------- adapter sets for tests

typedef struct {
    adapter_set *s;
    const char *targets;
    uint64_t seed;
} make_ctx;

static int add_matching(void *vp, const unet_linear *l) {
    make_ctx *c = vp;
    if (!adapter_target_matches(c->targets, l->path)) return 0;
    adapter *a = adapter_set_add(c->s, l->path, l->d_in, l->d_out);
    a->kernel = l->kernel;
    if (a->method == ADAPTER_SINGLORA) {
        fill_uniform(a->A, (size_t)adapter_rows(a) * a->rank, c->seed++, -0.4f, 0.4f);
    } else {
        fill_uniform(a->down, (size_t)a->rank * a->d_in, c->seed++, -0.4f, 0.4f);
        fill_uniform(a->up, (size_t)a->d_out * a->rank, c->seed++, -0.4f, 0.4f);   // nonzero: a trained adapter
        if (a->magnitude) {
            const float *w = *l->weight;
            for (int o = 0; o < a->d_out; o++) {
                double s = 0;
                for (int i = 0; i < a->d_in; i++) s += (double)w[o * a->d_in + i] * w[o * a->d_in + i];
                a->magnitude[o] = (float)sqrt(s) * (0.7f + 0.1f * (float)(o % 5));
            }
        }
    }
    return 0;
}

static adapter_set *make_set(unet_model *m, adapter_method method, const char *targets, int64_t step, int64_t ramp,
                             uint64_t seed) {
    adapter_set *s = sl_calloc(1, sizeof *s);
    s->method = method;
    s->rank = 3;
    s->alpha = 4.0f;
    s->ramp_steps = ramp;
    s->step = step;
    snprintf(s->init, sizeof s->init, "kaiming");
    snprintf(s->targets, sizeof s->targets, "%s", targets);
    unet_model_hash(m, s->base_model);
    make_ctx c = {s, targets, seed};
    unet_walk_linears(m, add_matching, &c);
    return s;
}

#define ALL_TARGETS "attn1.to_q,attn1.to_k,attn1.to_v,attn1.to_out.0,attn2.to_q,attn2.to_k,attn2.to_v,attn2.to_out.0,ff.net.0.proj,ff.net.2,proj_in,proj_out"
#define CONV_TARGETS "conv1,conv2,conv_shortcut,conv"

// ---------------------------------------------------------------- attach

TEST(unet_attach_adapters_binds_and_errors) {
    unet_model *m = tiny_unet(0, 3);
    REQUIRE(m != NULL);
    adapter_set *s = make_set(m, ADAPTER_SINGLORA, ADAPTER_DEFAULT_TARGETS, 5, 10, 1);
    CHECK_EQ_INT(s->n_slots, 11 * 4);
    CHECK(unet_attach_adapters(m, s, 1.0f, "a.safetensors") == 0);
    CHECK(m->down[0].attn[0].blocks[0].ad[TB_ATTN2_K] == adapter_set_find(s, "down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k"));
    CHECK(m->down[0].attn[0].blocks[0].ad[TB_ATTN1_Q] == NULL && m->down[0].attn[0].proj_in_ad == NULL);
    CHECK_NEAR(unet_adapter_state(m).u, 0.5, 0);
    // detach
    CHECK(unet_attach_adapters(m, NULL, 1.0f, NULL) == 0);
    CHECK(m->down[0].attn[0].blocks[0].ad[TB_ATTN2_K] == NULL && m->adapters == NULL);
    // a slot naming no Linear of this UNet: an error naming it, and the model stays plain
    adapter_set_add(s, "down_blocks.0.attentions.0.transformer_blocks.0.attn3.to_k", 8, 8);
    CHECK(unet_attach_adapters(m, s, 1.0f, "a.safetensors") == -1);
    CHECK(strstr(sl_error_msg(), "a.safetensors") && strstr(sl_error_msg(), "attn3.to_k"));
    CHECK(m->down[0].attn[0].blocks[0].ad[TB_ATTN2_K] == NULL && m->adapters == NULL);
    adapter_set_free(s);
    // a LoRA for a layer of another shape
    s = make_set(m, ADAPTER_LORA, "attn2.to_k", 0, 0, 2);
    adapter_free(&s->slots[0].a);
    adapter_alloc(&s->slots[0].a, ADAPTER_LORA, 7, 8, 3, 4.0f);
    CHECK(unet_attach_adapters(m, s, 1.0f, "b.safetensors") == -1);
    CHECK(strstr(sl_error_msg(), "b.safetensors") && strstr(sl_error_msg(), s->slots[0].module));
    adapter_set_free(s);
    unet_free(m);
}

// ---------------------------------------------------------------- forward equivalences

static float *forward_out(const unet_model *m, const tiny_io *io) {
    float *out = sl_alloc_f32(tiny_out_n(io));
    CHECK(unet_forward(out, io->x, io->t, io->ctx, io->N, io->h, io->w, io->L, m, NULL) == 0);
    return out;
}

TEST(unet_adapter_u0_is_base_model) {
    for (int lp = 0; lp < 2; lp++) {
        unet_model *m = tiny_unet(lp, 4);
        REQUIRE(m != NULL);
        tiny_io io;
        tiny_io_new(&io, m, 8);
        float *base = forward_out(m, &io);
        adapter_set *s = make_set(m, ADAPTER_SINGLORA, ALL_TARGETS "," CONV_TARGETS, 0, 100, 9);   // step 0: u = 0
        REQUIRE(unet_attach_adapters(m, s, 1.0f, NULL) == 0);
        float *with = forward_out(m, &io);
        CHECK(memcmp(base, with, sizeof(float) * (size_t)tiny_out_n(&io)) == 0);
        s->step = 50;   // u = 0.5: now it matters
        float *half = forward_out(m, &io);
        err_stats e = compare_f32(half, base, (size_t)tiny_out_n(&io));
        CHECK(e.max_abs > 1e-3);
        fprintf(stderr, "    %s proj: u = 0 output identical to the base; u = 0.5 differs by %.3g\n", lp ? "linear" : "conv",
                e.max_abs);
        sl_free_aligned(base), sl_free_aligned(with), sl_free_aligned(half);
        adapter_set_free(s);
        tiny_io_free(&io);
        unet_free(m);
    }
}

// --precision bf16 with the frozen weights held in bf16 (unet_hold_bf16): the forward is bit
// for bit the one on f32 weights (every GEMM rounds them to the same bf16), plain, with SingLoRA
// on Linears and convolutions (merged conv kernels read W0) and with DoRA (its norms read W0):
// the adapted layers stay f32.
TEST(unet_held_bf16_weights_identical) {
    if (!gemm_bf16_supported()) {
        fprintf(stderr, "    skipped: this CPU has no AVX512_BF16\n");
        return;
    }
    REQUIRE(gemm_set_precision(GEMM_BF16) == 0);
    static const struct { adapter_method method; const char *targets; } cases[] = {
        {ADAPTER_SINGLORA, NULL}, {ADAPTER_SINGLORA, "attn1.to_q,ff.net.2,conv1,conv_shortcut"}, {ADAPTER_DORA, "attn2.to_v,proj_in"}};
    for (int c = 0; c < 3; c++) {
        unet_model *m = tiny_unet(1, 4);
        REQUIRE(m != NULL);
        tiny_io io;
        tiny_io_new(&io, m, 8);
        adapter_set *s = cases[c].targets ? make_set(m, cases[c].method, cases[c].targets, 3, 10, 13) : NULL;
        if (s) REQUIRE(unet_attach_adapters(m, s, 1.0f, NULL) == 0);
        float *f32 = forward_out(m, &io);
        int64_t before = bf16_weights_count();
        unet_hold_bf16(m);
        int64_t held = bf16_weights_count() - before;
        CHECK(held > 0);
        float *bf = forward_out(m, &io);
        CHECK_MSG(memcmp(f32, bf, sizeof(float) * (size_t)tiny_out_n(&io)) == 0, "held weights change the output (case %d)", c);
        fprintf(stderr, "    %s: %lld weights held, output identical\n",
                s ? adapter_method_name(cases[c].method) : "no adapters", (long long)held);
        sl_free_aligned(f32), sl_free_aligned(bf);
        adapter_set_free(s);
        tiny_io_free(&io);
        unet_free(m);
        CHECK_EQ_INT(bf16_weights_count(), before);   // unet_free released them
    }
    gemm_set_precision(GEMM_FP32);
}

static int round_weights_to_bf16(void *ctx, const param_desc *p) {
    (void)ctx;
    if (p->kind != PARAM_WEIGHT || p->ndim < 2) return 0;
    int64_t n = shape_numel(p->ndim, p->shape);
    for (int64_t i = 0; i < n; i++) (*p->slot)[i] = bf16_to_f32(f32_to_bf16((*p->slot)[i]));
    return 0;
}

// train --precision bf16 holds the whole UNet as it loads, then creates and attaches adapters:
// the adapted layers get f32 W0 back (the bf16 values), so DoRA's magnitudes and the merged conv
// kernels read real numbers, and the result equals adapters on a UNet whose W0 was rounded to bf16.
TEST(unet_adapters_on_held_unet_unhold_their_layers) {
    if (!gemm_bf16_supported()) {
        fprintf(stderr, "    skipped: this CPU has no AVX512_BF16\n");
        return;
    }
    REQUIRE(gemm_set_precision(GEMM_BF16) == 0);
    float *out[2];
    tiny_io io;
    int64_t n = 0;
    for (int held = 0; held < 2; held++) {
        unet_model *m = tiny_unet(1, 4);
        REQUIRE(m != NULL);
        if (held) unet_hold_bf16(m);
        else unet_walk(m, round_weights_to_bf16, NULL);
        int64_t before = bf16_weights_count();
        // as the trainer makes a fresh set: DoRA's magnitudes are the rows' norms of W0
        adapter_new_opts ao = {ADAPTER_DORA, 3, 4.0f, 0, "kaiming", "attn2.to_v,proj_in,conv1", 13};
        adapter_set *s = adapter_set_create(m, &ao);
        REQUIRE(s != NULL);
        if (held) CHECK_MSG(bf16_weights_count() < before, "no adapted layer was unheld");
        for (int i = 0; i < s->n_slots; i++)   // a trained adapter: nonzero up matrices
            fill_uniform(s->slots[i].a.up, (size_t)s->slots[i].a.d_out * s->rank, 30 + i, -0.4f, 0.4f);
        REQUIRE(unet_attach_adapters(m, s, 1.0f, NULL) == 0);
        tiny_io_new(&io, m, 8);
        out[held] = forward_out(m, &io);
        n = tiny_out_n(&io);
        tiny_io_free(&io);
        adapter_set_free(s);
        unet_free(m);
    }
    CHECK_MSG(memcmp(out[0], out[1], sizeof(float) * (size_t)n) == 0, "held-then-unheld differs from bf16-rounded weights");
    sl_free_aligned(out[0]), sl_free_aligned(out[1]);
    gemm_set_precision(GEMM_FP32);
}

static int merge_visitor(void *vp, const unet_linear *l) {
    const adapter_set *s = vp;
    adapter *a = adapter_set_find(s, l->path);
    if (a) adapter_merge_into(*l->weight, a, adapter_set_ramp(s), 0.7f);
    return 0;
}

TEST(unet_adapter_merged_equals_unmerged) {
    const adapter_method methods[3] = {ADAPTER_SINGLORA, ADAPTER_LORA, ADAPTER_DORA};
    for (int k = 0; k < 3; k++) {
        unet_model *m = tiny_unet(k == 1, 11), *merged = tiny_unet(k == 1, 11);
        REQUIRE(m && merged);
        tiny_io io;
        tiny_io_new(&io, m, 12);
        adapter_set *s = make_set(m, methods[k], ALL_TARGETS "," CONV_TARGETS, 3, 10, 13);   // u = 0.3
        REQUIRE(unet_attach_adapters(m, s, 0.7f, NULL) == 0);
        unet_walk_linears(merged, merge_visitor, s);
        float *a = forward_out(m, &io), *b = forward_out(merged, &io), *base = NULL;
        char label[64];
        snprintf(label, sizeof label, "%s merged vs unmerged (scale 0.7)", adapter_method_name(methods[k]));
        check_close(label, a, b, (size_t)tiny_out_n(&io), 1e-5);
        unet_attach_adapters(m, NULL, 1.0f, NULL);
        base = forward_out(m, &io);
        err_stats e = compare_f32(a, base, (size_t)tiny_out_n(&io));
        CHECK_MSG(e.max_abs > 1e-3, "the adapter changed the output by only %g", e.max_abs);
        sl_free_aligned(a), sl_free_aligned(b), sl_free_aligned(base);
        adapter_set_free(s);
        tiny_io_free(&io);
        unet_free(m), unet_free(merged);
    }
}

// ---------------------------------------------------------------- gradients through the UNet

static void adapter_fd(adapter_method method, int lp, const char *targets, float scale) {
    unet_model *m = tiny_unet(lp, 21 + (uint64_t)lp);
    REQUIRE(m != NULL);
    tiny_io io;
    tiny_io_new(&io, m, 22);
    adapter_set *s = make_set(m, method, targets, 6, 10, 23);   // u = 0.6
    REQUIRE(unet_attach_adapters(m, s, scale, NULL) == 0);
    for (int i = 0; i < s->n_slots; i++) adapter_alloc_grads(&s->slots[i].a);
    CHECK(tiny_backward(m, &io, NULL, NULL, NULL, 1) == tiny_forward_loss(m, &io));
    double worst = 0;
    int checked = 0;
    for (int i = 0; i < s->n_slots; i++) {
        adapter *a = &s->slots[i].a;
        float *ts[3] = {a->A ? a->A : a->down, a->up, a->magnitude}, *gs[3] = {a->A ? a->dA : a->ddown, a->dup, a->dmagnitude};
        int64_t ns[3] = {a->A ? (int64_t)adapter_rows(a) * a->rank : (int64_t)a->rank * a->d_in, (int64_t)a->d_out * a->rank,
                         a->d_out};
        for (int k = 0; k < adapter_tensor_count(method); k++) {
            char label[600];
            adapter_tensor_name(label, sizeof label, s->slots[i].module, method, k);
            double rel = directional_check(label, m, &io, ts[k], gs[k], ns[k], 1e-3, 3e-2, 40 + (uint64_t)(i * 3 + k));
            worst = rel > worst ? rel : worst;
            checked++;
        }
    }
    fprintf(stderr, "    %s (%s proj, %s, strength %g): %d adapter tensors, directional derivative worst rel err %.2g; %d below the floor\n",
            adapter_method_name(method), lp ? "linear" : "conv", strcmp(targets, ALL_TARGETS) ? "convolutions" : "Linears",
            (double)scale, checked, worst, directional_below_floor);
    directional_below_floor = 0;

    if (method == ADAPTER_SINGLORA && !strcmp(targets, ALL_TARGETS)) {
        // single entries of one non-square A (attn2.to_k: d_in 6 < d_out 16 at the deepest level):
        // the 4 largest gradients, central differences with step 1e-2
        adapter *a = adapter_set_find(s, "down_blocks.2.attentions.0.transformer_blocks.0.attn2.to_k");
        REQUIRE(a != NULL);
        int64_t n = (int64_t)adapter_rows(a) * a->rank;
        for (int pick = 0; pick < 4; pick++) {
            int64_t best = 0;
            for (int64_t j = 0; j < n; j++)
                if (fabsf(a->dA[j]) > fabsf(a->dA[best])) best = j;
            float keep = a->A[best], h = 1e-2f;
            a->A[best] = keep + h;
            double lp2 = tiny_forward_loss(m, &io);
            a->A[best] = keep - h;
            double lm = tiny_forward_loss(m, &io);
            a->A[best] = keep;
            double fd = (lp2 - lm) / (2 * h), an = a->dA[best];
            fprintf(stderr, "    dL/dA[%lld] (row %lld of %d): analytic %.6g, finite difference %.6g\n", (long long)best,
                    (long long)(best / a->rank), adapter_rows(a), an, fd);
            CHECK_MSG(fabs(fd - an) <= 2e-2 * fabs(an), "dA entry %lld: %g vs %g", (long long)best, an, fd);
            a->dA[best] = 0;   // next pick
        }
    }
    adapter_set_free(s);
    tiny_io_free(&io);
    unet_free(m);
}

TEST(unet_adapter_grads_fd) {
    adapter_fd(ADAPTER_SINGLORA, 0, ALL_TARGETS, 1.0f);
    adapter_fd(ADAPTER_SINGLORA, 1, ALL_TARGETS, 1.0f);
    adapter_fd(ADAPTER_LORA, 0, ALL_TARGETS, 1.0f);
    adapter_fd(ADAPTER_DORA, 1, ALL_TARGETS, 1.0f);
}

// Adapters on the ResNet and resample convolutions (the kernel merged, then one conv): every
// adapter tensor through the whole UNet, at strength 1 and (DoRA's interpolation) 0.7.
TEST(unet_conv_adapter_grads_fd) {
    adapter_fd(ADAPTER_SINGLORA, 0, CONV_TARGETS, 1.0f);
    adapter_fd(ADAPTER_LORA, 1, CONV_TARGETS, 0.7f);
    adapter_fd(ADAPTER_DORA, 0, CONV_TARGETS, 1.0f);
    adapter_fd(ADAPTER_DORA, 1, CONV_TARGETS, 0.7f);
}

// u(t) is read from the set's optimizer step: forwards, training forwards and checkpoint
// recomputation never move it, and adapter gradients are the same with checkpointing.
TEST(unet_adapter_ramp_not_advanced_checkpoint_identical) {
    unet_model *m = tiny_unet(0, 31);
    REQUIRE(m != NULL);
    tiny_io io;
    tiny_io_new(&io, m, 32);
    adapter_set *s = make_set(m, ADAPTER_SINGLORA, ALL_TARGETS "," CONV_TARGETS, 2, 8, 33);   // u = 0.25
    REQUIRE(unet_attach_adapters(m, s, 1.0f, NULL) == 0);
    for (int i = 0; i < s->n_slots; i++) adapter_alloc_grads(&s->slots[i].a);
    float *o1 = forward_out(m, &io);
    CHECK(tiny_backward(m, &io, NULL, NULL, NULL, 0) == tiny_backward(m, &io, NULL, NULL, NULL, 1));
    float *o2 = forward_out(m, &io);
    CHECK_EQ_INT(s->step, 2);
    CHECK_NEAR(unet_adapter_state(m).u, 0.25, 0);
    CHECK(memcmp(o1, o2, sizeof(float) * (size_t)tiny_out_n(&io)) == 0);
    // gradients: without and with checkpointing, bit for bit
    int64_t total = 0;
    for (int i = 0; i < s->n_slots; i++) total += adapter_param_count(&s->slots[i].a);
    float *g1 = sl_alloc_f32(total);
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < s->n_slots; i++) adapter_zero_grads(&s->slots[i].a);
        tiny_backward(m, &io, NULL, NULL, NULL, pass);
        int64_t off = 0, same = 1;
        for (int i = 0; i < s->n_slots; i++) {
            adapter *a = &s->slots[i].a;
            int64_t n = adapter_param_count(a);
            if (pass == 0) memcpy(g1 + off, a->dA, sizeof(float) * (size_t)n);
            else same &= memcmp(g1 + off, a->dA, sizeof(float) * (size_t)n) == 0;
            off += n;
        }
        if (pass) CHECK_MSG(same, "adapter gradients differ with checkpointing");
    }
    CHECK_EQ_INT(s->step, 2);
    s->step = 8;   // the optimizer moved: u = 1 and the output follows
    float *o3 = forward_out(m, &io);
    CHECK(compare_f32(o3, o1, (size_t)tiny_out_n(&io)).max_abs > 1e-4);
    sl_free_aligned(o1), sl_free_aligned(o2), sl_free_aligned(o3), sl_free_aligned(g1);
    adapter_set_free(s);
    tiny_io_free(&io);
    unet_free(m);
}

// ---------------------------------------------------------------- commands

TEST(unet_adapter_cli) {
    unet_model *m = unet_load(shared_path("fixtures/sd1_tiny"), NULL, NULL);
    REQUIRE(m != NULL);
    adapter_set *s = make_set(m, ADAPTER_SINGLORA, ADAPTER_DEFAULT_TARGETS, 0, 10, 51);   // u = 0
    const char *ad = tmp_path("adapter.safetensors"), *o0 = tmp_path("o0.safetensors"), *o1 = tmp_path("o1.safetensors");
    REQUIRE(adapter_set_save(s, ad) == 0);
    const char *io = shared_path("fixtures/io/sd1_unet_io.safetensors"), *model = shared_path("fixtures/sd1_tiny");
    char out[8192];
    int rc = run_cmd(out, sizeof out, "%s forward unet --model %s --in %s --out %s", singlora_bin(), model, io, o0);
    CHECK_MSG(rc == 0, "%s", out);
    rc = run_cmd(out, sizeof out, "%s forward unet --model %s --in %s --out %s --adapter %s", singlora_bin(), model, io, o1, ad);
    CHECK_MSG(rc == 0, "%s", out);
    st_file *a = st_open(o0), *b = st_open(o1);
    REQUIRE(a && b);
    const st_entry *ea = st_find(a, "out"), *eb = st_find(b, "out");
    CHECK(ea && eb && ea->end - ea->begin == eb->end - eb->begin && memcmp(ea->data, eb->data, ea->end - ea->begin) == 0);   // u = 0: the base model
    st_close(a), st_close(b);

    // backward with the adapter (u = 0.5): grad.<adapter tensor> for every tensor, shapes as in the file
    s->step = 5;
    REQUIRE(adapter_set_save(s, ad) == 0);
    const char *g = tmp_path("g.safetensors");
    rc = run_cmd(out, sizeof out, "%s backward unet --model %s --in %s --out %s --adapter %s --grad-checkpointing",
                 singlora_bin(), model, shared_path("fixtures/io/sd1_unet_grad.safetensors"), g, ad);
    CHECK_MSG(rc == 0, "%s", out);
    st_file *f = st_open(g), *af = st_open(ad);
    REQUIRE(f && af);
    CHECK_EQ_INT(f->n_entries, 3 + s->n_slots);
    int nonzero = 0;
    for (int i = 0; i < af->n_entries; i++) {
        char name[700];
        snprintf(name, sizeof name, "grad.%s", af->entries[i].name);
        const st_entry *e = st_find(f, name);
        CHECK_MSG(e && e->ndim == 2 && e->shape[0] == af->entries[i].shape[0] && e->shape[1] == af->entries[i].shape[1],
                  "%s missing or wrong shape", name);
        if (!e) continue;
        float *d = st_load_f32(f, name, -1, NULL);
        for (int64_t k = 0; k < shape_numel(e->ndim, e->shape); k++) nonzero += d[k] != 0;
        sl_free_aligned(d);
    }
    CHECK(nonzero > 0);
    st_close(f), st_close(af);
    // an adapter for another model: error naming the module
    adapter_set_add(s, "mid_block.attentions.0.transformer_blocks.7.attn2.to_k", 32, 32);
    REQUIRE(adapter_set_save(s, ad) == 0);
    rc = run_cmd(out, sizeof out, "%s forward unet --model %s --in %s --out %s --adapter %s", singlora_bin(), model, io, o1, ad);
    CHECK(rc == 1 && strstr(out, "transformer_blocks.7.attn2.to_k") && strstr(out, "adapter.safetensors"));
    adapter_set_free(s);
    unet_free(m);
}
