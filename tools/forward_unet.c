// singlora forward unet: out = unet(x, t, context) for tensors read from a safetensors file.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "engine/io/safetensors.h"
#include "engine/kernels/gemm.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/io.h"
#include "pipeline/adapters.h"
#include "unet/unet.h"

static const char *HELP =
    "usage: singlora forward unet --model PATH [--config DIR] [--variant fp16] --in IN.safetensors\n"
    "                             --out OUT.safetensors [--adapter FILE [--adapter-scale S]]\n"
    "                             [--threads N] [--trace FILE] [--repeat K]\n\n"
    "Runs the UNet once on the inputs in IN and writes OUT.\n"
    "  IN:  x (N, C_in, h, w) F32, t (N) F32 timesteps (I64/I32 accepted), context (N, L, D) F32\n"
    "  OUT: out (N, C_out, h, w) F32\n"
    "PATH is a diffusers folder (unet/diffusion_pytorch_model[.VARIANT].safetensors + unet/config.json),\n"
    "a diffusers UNet file (config.json next to it), or an original single-file checkpoint (the UNet\n"
    "under model.diffusion_model.; its config is detected from the tensor shapes).\n"
    "  --config DIR   read DIR/unet/config.json instead (needed for non-standard original files)\n"
    "  --variant V    use a diffusers folder's *.V.safetensors weights (as diffusers' variant=)\n"
    "  --adapter FILE a singlora adapter file (singlora/lora/dora) applied to the UNet's Linear layers\n"
    "                 without merging, u(t) from its step; --adapter-scale S scales its effect (1)\n"
    "  --lora FILE[:SCALE]  fold a kohya / diffusers / PEFT LoRA file into the weights (repeatable)\n"
    "  --threads N    OpenMP/OpenBLAS threads\n"
    "  --precision P  fp32 (default) or bf16: GEMM operands rounded to bf16, f32 accumulation\n"
    "  --profile      time and GFLOP/s per op kind (stderr, at the end)\n"
    "  --trace FILE   also write intermediate outputs as trace.<diffusers module> (debugging)\n"
    "  --repeat K     run the forward K times and print the load and forward seconds (benchmarking)\n"
    "Any latent size works (as in diffusers). 16-bit weights are widened to f32 once at load.\n";

typedef struct {
    st_writer *w;
    float **bufs;
    int n;
} trace_sink;

static void trace_collect(void *ctx, const char *name, const float *d, int ndim, const int64_t *shape) {
    trace_sink *s = ctx;
    int64_t n = shape_numel(ndim, shape);
    float *copy = sl_alloc_f32(n);
    memcpy(copy, d, sizeof(float) * (size_t)n);
    s->bufs = sl_realloc(s->bufs, sizeof(float *) * (size_t)(s->n + 1));
    s->bufs[s->n++] = copy;
    char full[300];
    snprintf(full, sizeof full, "trace.%s", name);
    st_writer_add(s->w, full, DT_F32, ndim, shape, copy);
}

int forward_unet_main(int argc, char **argv) {
    const char *model = NULL, *config = NULL, *variant = NULL, *in = NULL, *outp = NULL, *trace_path = NULL, *v;
    const char *adapter_path = NULL;
    float adapter_scale = 1.0f;
    const char *loras[32];
    int n_loras = 0;
    int threads = 0, repeat = 1, timing = 0;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_model(argc, argv, &i, &model, &config, &variant)) {}
        else if (arg_value(argc, argv, &i, "--in", &in)) {}
        else if (arg_value(argc, argv, &i, "--out", &outp)) {}
        else if (arg_value(argc, argv, &i, "--trace", &trace_path)) {}
        else if (arg_value(argc, argv, &i, "--adapter", &adapter_path)) {}
        else if (arg_value(argc, argv, &i, "--lora", &v)) {
            if (n_loras == 32) sl_die(NULL, "forward unet: at most 32 --lora files");
            loras[n_loras++] = v;
        }
        else if (arg_value(argc, argv, &i, "--adapter-scale", &v)) adapter_scale = (float)arg_double_range("--adapter-scale", v, -ADAPTER_SCALE_MAX, ADAPTER_SCALE_MAX);
        else if (arg_precision(argc, argv, &i)) {}
        else if (arg_profile(argv, i)) {}
        else if (arg_value(argc, argv, &i, "--threads", &v)) threads = arg_threads("--threads", v);
        else if (arg_value(argc, argv, &i, "--repeat", &v)) { repeat = (int)arg_int_range("--repeat", v, 1, 1000000); timing = 1; }
        else arg_unknown("forward unet", argv[i]);
    }
    if (!model || !in || !outp) sl_die(NULL, "forward unet: --model, --in and --out are required (see --help)");
    if (threads < 0 || repeat < 1) sl_die(NULL, "forward unet: --threads must be >= 0 and --repeat >= 1");
    set_threads(threads);

    // inputs: check what we can before loading the model
    st_file *f = st_open(in);
    if (!f) sl_fail();
    const unet_inputs u = input_unet(f);
    const int N = u.N, h = u.h, w = u.w, L = u.L;

    double t0 = now_seconds();
    unet_model *m = unet_load(model, config, variant);
    if (!m) sl_fail();
    for (int k = 0; k < n_loras; k++)
        if (unet_apply_lora_spec(m, loras[k]) != 0) sl_fail();
    adapter_set *ads = NULL;
    if (adapter_path) {
        ads = adapter_set_load(adapter_path);
        if (!ads || unet_attach_adapters(m, ads, adapter_scale, adapter_path) != 0) sl_fail();
    }
    // bf16: the frozen weights held in bf16 (same results, half the memory, no per-call conversion)
    if (gemm_active_precision() == GEMM_BF16) unet_hold_bf16(m);
    double t_load = now_seconds() - t0;
    const unet_config *c = &m->cfg;
    input_unet_match(f, &u, c->in_channels, c->cross_attention_dim);

    float *t = input_timesteps(&u), *x = input_copy_f32(u.x), *ctx = input_copy_f32(u.context);
    float *out = sl_alloc_f32((int64_t)N * c->out_channels * h * w);

    trace_sink sink = {st_writer_new(), NULL, 0};
    unet_trace tr = {trace_collect, &sink};
    for (int r = 0; r < repeat; r++) {
        double t1 = now_seconds();
        if (unet_forward(out, x, t, ctx, N, h, w, L, m, trace_path && r == 0 ? &tr : NULL) != 0) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", sl_error_msg());
            sl_die(in, "%s", msg);
        }
        if (timing) fprintf(stderr, "forward %d: %.3f s\n", r + 1, now_seconds() - t1);
    }
    if (timing) fprintf(stderr, "load: %.3f s\n", t_load);

    st_writer *wr = st_writer_new();
    int64_t shape[4] = {N, c->out_channels, h, w};
    st_writer_add(wr, "out", DT_F32, 4, shape, out);
    if (st_writer_save(wr, outp) != 0) sl_fail();
    st_writer_free(wr);
    if (trace_path && st_writer_save(sink.w, trace_path) != 0) sl_fail();
    st_writer_free(sink.w);
    for (int i = 0; i < sink.n; i++) sl_free_aligned(sink.bufs[i]);
    free(sink.bufs);
    sl_free_aligned(out);
    sl_free_aligned(x);
    sl_free_aligned(t);
    sl_free_aligned(ctx);
    unet_free(m);
    adapter_set_free(ads);
    st_close(f);
    return 0;
}
