// bench_unet_backward: forward+backward of one UNet with several settings in one process,
// interleaved and repeated (the best of each is reported), so that a shared machine's changing
// load hits them alike. Each setting runs twice: from trimmed memory for its peak RSS (VmHWM,
// reset before it through /proc/self/clear_refs), then reusing its memory for the time, as
// steps of a training loop do (sl_memory_reuse).
//   build/bench_unet_backward --model FILE [--config DIR] --in FILE --params LIST --adapter FILE [--repeat K]
// Settings: the --params weights train, without and with gradient checkpointing; nothing
// trains; only the adapter trains (both with checkpointing). Prints one line per setting:
//   <name> <forward s> <backward s> <peak RSS GiB> <forward CPU s> <backward CPU s> (wall: the
// best run; CPU: that run's process CPU time), "adapter_gflop <n>": the adapter's
// forward+backward work (with the checkpoint recomputation) counted from its shapes, and
// "adapter_isolated <forward s> <backward s>": the adapted minus the plain Linear at every
// adapted layer's shape, timed alone (best of 5).
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/core/error.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "tools/args.h"
#include "unet/unet.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void reset_peak(void) {
    malloc_trim(0);
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (f) {
        fputs("5", f);
        fclose(f);
    }
}

static double peak_gib(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (!strncmp(line, "VmHWM:", 6)) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1048576.0;
}

typedef struct {
    const char *name, *params;
    int ckpt, adapter;
    double fw, bw, rss, cfw, cbw;   // best wall seconds, peak RSS, CPU seconds of the best runs
} setting;

// FLOPs of the adapters' GEMMs: tokens through each adapted Linear (the level's pixels, or the
// context for attn2.to_k/to_v) × 2·r·(d_in + d_out) per pass; backward ≈ 2.5 passes (dx, dA
// from both sides), checkpointing one more forward.
typedef struct {
    const unet_model *m;
    int h, w, L, N;
    double flops, iso_fw, iso_bw;
} flop_ctx;

static void isolated_cost(flop_ctx *c, const unet_linear *l, double tokens);

// Seconds of (adapted − plain) Linear forward and backward (dx) at each adapted layer's shape,
// best of 5: the adapter's cost without the run-to-run noise of whole steps.
static void isolated_cost(flop_ctx *c, const unet_linear *l, double tokens) {
    adapter *a = *l->adapter;
    int M = (int)tokens, di = l->d_in, dout = l->d_out;
    float *x = sl_alloc_f32((int64_t)M * di), *y = sl_alloc_f32((int64_t)M * dout), *dx = sl_alloc_f32((int64_t)M * di);
    for (int64_t i = 0; i < (int64_t)M * di; i++) x[i] = (float)(i % 17) * 0.01f;
    for (int64_t i = 0; i < (int64_t)M * dout; i++) y[i] = (float)(i % 13) * 0.01f;
    unet_adapt ua = {1.0f, 1.0f};
    double best[4] = {1e9, 1e9, 1e9, 1e9};
    for (int rep = 0; rep < 5; rep++) {
        double t[5];
        t[0] = now_s();
        unet_linear_forward(y, x, *l->weight, NULL, NULL, &ua, M, di, dout);
        t[1] = now_s();
        unet_linear_forward(y, x, *l->weight, NULL, a, &ua, M, di, dout);
        t[2] = now_s();
        unet_linear_backward(dx, NULL, NULL, y, x, *l->weight, NULL, &ua, M, di, dout);
        t[3] = now_s();
        unet_linear_backward(dx, NULL, NULL, y, x, *l->weight, a, &ua, M, di, dout);
        t[4] = now_s();
        for (int k = 0; k < 4; k++) best[k] = t[k + 1] - t[k] < best[k] ? t[k + 1] - t[k] : best[k];
    }
    c->iso_fw += best[1] - best[0];
    c->iso_bw += best[3] - best[2];
    sl_free_aligned(x), sl_free_aligned(y), sl_free_aligned(dx);
}

static int count_adapter(void *vp, const unet_linear *l) {
    flop_ctx *c = vp;
    const adapter *a = *l->adapter;
    if (!a) return 0;
    int lv = 0;
    if (!strncmp(l->path, "down_blocks.", 12)) lv = atoi(l->path + 12);
    else if (!strncmp(l->path, "up_blocks.", 10)) lv = c->m->cfg.n_levels - 1 - atoi(l->path + 10);
    else lv = c->m->cfg.n_levels - 1;
    int hh = c->h, ww = c->w;
    for (int i = 0; i < lv; i++) hh = (hh + 1) / 2, ww = (ww + 1) / 2;
    double tokens = (strstr(l->path, "attn2.to_k") || strstr(l->path, "attn2.to_v")) ? (double)c->N * c->L
                                                                                     : (double)c->N * hh * ww;
    c->flops += tokens * 2.0 * a->rank * (a->d_in + a->d_out) * (1 + 2.5 + 1);
    isolated_cost(c, l, tokens);
    return 0;
}

int main(int argc, char **argv) {
    const char *model = NULL, *config = NULL, *in = NULL, *params = NULL, *adapter_path = NULL, *v;
    int repeat = 2;
    for (int i = 1; i < argc; i++) {
        if (arg_value(argc, argv, &i, "--model", &model)) {}
        else if (arg_value(argc, argv, &i, "--config", &config)) {}
        else if (arg_value(argc, argv, &i, "--in", &in)) {}
        else if (arg_value(argc, argv, &i, "--params", &params)) {}
        else if (arg_value(argc, argv, &i, "--adapter", &adapter_path)) {}
        else if (arg_value(argc, argv, &i, "--repeat", &v)) repeat = (int)arg_int_range("--repeat", v, 1, 1000000);
        else arg_unknown("bench_unet_backward", argv[i]);
    }
    if (!model || !in || !params || !adapter_path)
        sl_die(NULL, "usage: bench_unet_backward --model FILE [--config DIR] --in FILE --params LIST --adapter FILE");
    sl_memory_reuse();   // as `singlora backward unet`: a step reuses the memory of the one before
    unet_model *m = unet_load(model, config, NULL);
    if (!m) sl_fail();
    adapter_set *ads = adapter_set_load(adapter_path);
    if (!ads) sl_fail();
    st_file *f = st_open(in);
    if (!f) sl_fail();
    const st_entry *ex = st_find(f, "x"), *ec = st_find(f, "context");
    if (!ex || !ec || !st_find(f, "t") || !st_find(f, "target")) sl_die(in, "needs x, t, context, target");
    const int N = (int)ex->shape[0], h = (int)ex->shape[2], w = (int)ex->shape[3], L = (int)ec->shape[1];
    float *x = st_load_f32(f, "x", -1, NULL), *t = st_load_f32(f, "t", -1, NULL);
    float *ctx = st_load_f32(f, "context", -1, NULL), *target = st_load_f32(f, "target", -1, NULL);
    const int64_t nx = (int64_t)N * m->cfg.in_channels * h * w, nc = (int64_t)N * L * m->cfg.cross_attention_dim;
    const int64_t no = (int64_t)N * m->cfg.out_channels * h * w;
    float *out = sl_alloc_f32(no), *dout = sl_alloc_f32(no), *dx = sl_alloc_f32(nx), *dctx = sl_alloc_f32(nc);

    setting S[] = {{.name = "xattn", .params = params, .ckpt = 0},
                   {.name = "xattn_ckpt", .params = params, .ckpt = 1},
                   {.name = "base_ckpt", .params = "none", .ckpt = 1},
                   {.name = "adapter_ckpt", .params = "none", .ckpt = 1, .adapter = 1}};
    const int ns = (int)(sizeof S / sizeof *S);
    // each setting runs twice in a row: the first from trimmed memory (its peak RSS is the
    // setting's), the second reusing that memory as a training loop does (its time is reported)
    for (int r = 0; r < repeat; r++)
        for (int k = 0; k < ns; k++)
            for (int pass = 0; pass < 2; pass++) {
                setting *s = &S[k];
                if (unet_attach_adapters(m, s->adapter ? ads : NULL, 1.0f, adapter_path) != 0) sl_fail();
                if (s->adapter)
                    for (int i = 0; i < ads->n_slots; i++) {
                        adapter_alloc_grads(&ads->slots[i].a);
                        adapter_zero_grads(&ads->slots[i].a);
                    }
                if (pass == 0) reset_peak();
                unet_model *g = unet_grads_new(m, s->params);
                if (!g) sl_fail();
                memset(dx, 0, sizeof(float) * (size_t)nx);
                memset(dctx, 0, sizeof(float) * (size_t)nc);
                double t0 = now_s(), c0 = cpu_s();
                unet_tape *tape = unet_forward_train(out, x, t, ctx, N, h, w, L, m, s->ckpt);
                if (!tape) sl_fail();
                double t1 = now_s(), c1 = cpu_s();
                for (int64_t i = 0; i < no; i++) dout[i] = 2.0f * (out[i] - target[i]) / (float)no;
                if (unet_backward(dx, dctx, g, dout, tape) != 0) sl_fail();
                double t2 = now_s(), c2 = cpu_s();
                unet_tape_free(tape);
                unet_free(g);
                double rss = peak_gib();
                fprintf(stderr, "%s run %d%s: forward %.2f s (cpu %.2f), backward %.2f s (cpu %.2f), peak RSS %.2f GiB\n",
                        s->name, r + 1, pass ? "" : " (cold)", t1 - t0, c1 - c0, t2 - t1, c2 - c1, rss);
                if (pass == 0) {
                    if (rss > s->rss) s->rss = rss;
                    continue;
                }
                if (r == 0 || t1 - t0 < s->fw) s->fw = t1 - t0, s->cfw = c1 - c0;
                if (r == 0 || t2 - t1 < s->bw) s->bw = t2 - t1, s->cbw = c2 - c1;
            }
    for (int k = 0; k < ns; k++)
        printf("%s %.3f %.3f %.3f %.3f %.3f\n", S[k].name, S[k].fw, S[k].bw, S[k].rss, S[k].cfw, S[k].cbw);
    unet_attach_adapters(m, ads, 1.0f, adapter_path);
    flop_ctx fc = {m, h, w, L, N, 0, 0, 0};
    for (int i = 0; i < ads->n_slots; i++) adapter_alloc_grads(&ads->slots[i].a);
    unet_walk_linears(m, count_adapter, &fc);
    printf("adapter_gflop %.3f\n", fc.flops * 1e-9);
    printf("adapter_isolated %.3f %.3f\n", fc.iso_fw, fc.iso_bw);
    float *bufs[] = {x, t, ctx, target, out, dout, dx, dctx};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) sl_free_aligned(bufs[i]);
    st_close(f);
    unet_free(m);
    adapter_set_free(ads);
    return 0;
}
