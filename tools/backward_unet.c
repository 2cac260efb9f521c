// singlora backward unet: loss = mean((unet(x, t, context) − target)²) and its gradients with
// respect to x, the context, chosen parameters and an adapter's tensors (parity and debugging).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "engine/train/step.h"
#include "engine/kernels/gemm.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/io.h"
#include "unet/unet.h"

static const char *HELP =
    "usage: singlora backward unet --model PATH [--config DIR] [--variant V] --in IN.safetensors\n"
    "                              --out OUT.safetensors [--params NAME,NAME,...|all|none]\n"
    "                              [--grad-checkpointing] [--adapter FILE [--adapter-scale S]]\n"
    "                              [--threads N] [--precision fp32|bf16] [--profile] [--repeat K]\n\n"
    "One forward and backward of the UNet with loss = mean((unet(x, t, context) - target)^2) over all\n"
    "elements.\n"
    "  IN:  x (N, C_in, h, w) F32, t (N) F32/I64/I32, context (N, L, D) F32, target (N, C_out, h, w) F32\n"
    "  OUT: loss (scalar F32), grad.x, grad.context, grad.<diffusers parameter name> for each parameter\n"
    "       --params selects, and with --adapter grad.<adapter tensor name> for every adapter tensor\n"
    "       (e.g. grad.unet.down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k.singlora.A)\n"
    "  --params LIST   diffusers parameter names, exact or shell patterns ('*.attn2.to_k.weight'),\n"
    "                  comma-separated; 'all' (full fine-tuning) or 'none' (default). Parameters not\n"
    "                  listed are frozen: no weight gradient is computed for them.\n"
    "  --grad-checkpointing   keep only each layer's input and recompute its activations in\n"
    "                  backward (less memory, about one more forward; the same gradients bit for bit)\n"
    "  --adapter FILE  attach a singlora adapter file (u(t) from its step); --adapter-scale S (1)\n"
    "  --threads N     OpenMP/OpenBLAS threads\n"
    "  --precision P   fp32 (default) or bf16: GEMM operands rounded to bf16, f32 accumulation\n"
    "  --profile       time and GFLOP/s per op kind (stderr, at the end)\n"
    "  --repeat K      run K times and print the seconds of each forward+backward (benchmarking)\n"
    "PATH is a diffusers folder, a diffusers UNet file, or an original single-file checkpoint (as for\n"
    "singlora forward unet).\n";

typedef struct {
    st_writer *w;
    char (*names)[320];
    int n;
} grad_out;

static int add_param_grad(void *ctx, const param_desc *p) {
    grad_out *o = ctx;
    if (!*p->slot) return 0;
    snprintf(o->names[o->n], sizeof o->names[0], "grad.%s", p->name);
    st_writer_add(o->w, o->names[o->n++], DT_F32, p->ndim, p->shape, *p->slot);
    return 0;
}

static int count_params(void *ctx, const param_desc *p) {
    (void)p;
    (*(int *)ctx)++;
    return 0;
}

int backward_unet_main(int argc, char **argv) {
    const char *model = NULL, *config = NULL, *variant = NULL, *in = NULL, *outp = NULL, *params = NULL;
    const char *adapter_path = NULL, *v;
    int threads = 0, repeat = 1, timing = 0, ckpt = 0;
    float adapter_scale = 1.0f;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_model(argc, argv, &i, &model, &config, &variant)) {}
        else if (arg_value(argc, argv, &i, "--in", &in)) {}
        else if (arg_value(argc, argv, &i, "--out", &outp)) {}
        else if (arg_value(argc, argv, &i, "--params", &params)) {}
        else if (arg_value(argc, argv, &i, "--adapter", &adapter_path)) {}
        else if (arg_value(argc, argv, &i, "--adapter-scale", &v)) adapter_scale = (float)arg_double_range("--adapter-scale", v, -ADAPTER_SCALE_MAX, ADAPTER_SCALE_MAX);
        else if (arg_flag(argv, i, "--grad-checkpointing")) ckpt = 1;
        else if (arg_precision(argc, argv, &i)) {}
        else if (arg_profile(argv, i)) {}
        else if (arg_value(argc, argv, &i, "--threads", &v)) threads = arg_threads("--threads", v);
        else if (arg_value(argc, argv, &i, "--repeat", &v)) { repeat = (int)arg_int_range("--repeat", v, 1, 1000000); timing = 1; }
        else arg_unknown("backward unet", argv[i]);
    }
    if (!model || !in || !outp) sl_die(NULL, "backward unet: --model, --in and --out are required (see --help)");
    if (threads < 0 || repeat < 1) sl_die(NULL, "backward unet: --threads must be >= 0 and --repeat >= 1");
    set_threads(threads);
    sl_memory_reuse();   // repeated steps reuse their activation memory

    st_file *f = st_open(in);
    if (!f) sl_fail();
    const unet_inputs u = input_unet(f);
    const int N = u.N, h = u.h, w = u.w, L = u.L;
    const st_entry *eg = input_tensor(f, "target", 4, "(N, C_out, h, w) target, the same shape as the output");
    input_require_f32(f, eg, "target");
    if (eg->shape[0] != N) sl_die(f->path, "batch sizes differ: x has %d, target %lld", N, (long long)eg->shape[0]);

    double t0 = now_seconds();
    unet_model *m = unet_load(model, config, variant);
    if (!m) sl_fail();
    double t_load = now_seconds() - t0;
    const unet_config *c = &m->cfg;
    const int D = c->cross_attention_dim, Ci = c->in_channels, Co = c->out_channels;
    input_unet_match(f, &u, Ci, D);
    if (eg->shape[1] != Co || eg->shape[2] != h || eg->shape[3] != w) {
        char s[128];
        sl_die(f->path, "tensor 'target' has shape %s; the output is [%d, %d, %d, %d]",
               shape_str(s, sizeof s, eg->ndim, eg->shape), N, Co, h, w);
    }

    adapter_set *ads = NULL;
    if (adapter_path) {
        ads = adapter_set_load(adapter_path);
        if (!ads || unet_attach_adapters(m, ads, adapter_scale, adapter_path) != 0) sl_fail();
        for (int i = 0; i < ads->n_slots; i++) adapter_alloc_grads(&ads->slots[i].a);
    }
    // bf16: the frozen weights held in bf16 (same results, half the memory, no per-call conversion)
    if (gemm_active_precision() == GEMM_BF16) unet_hold_bf16(m);
    unet_model *g = unet_grads_new(m, params);
    if (!g) sl_fail();

    const int64_t nx = (int64_t)N * Ci * h * w, nc = (int64_t)N * L * D;
    float *t = input_timesteps(&u), *x = input_copy_f32(u.x), *ctx = input_copy_f32(u.context);
    float *target = input_copy_f32(eg);
    float *dx = sl_alloc_f32(nx), *dctx = sl_alloc_f32(nc);
    float loss = 0.0f;
    for (int r = 0; r < repeat; r++) {
        memset(dx, 0, sizeof(float) * (size_t)nx);
        memset(dctx, 0, sizeof(float) * (size_t)nc);
        unet_grads_zero(g);
        for (int i = 0; ads && i < ads->n_slots; i++) adapter_zero_grads(&ads->slots[i].a);
        double t1 = now_seconds();
        if (unet_regression_step(m, g, x, t, ctx, target, NULL, N, h, w, L, ckpt, 1.0, dx, dctx, &loss) != 0)
            sl_die(in, "%s", sl_error_msg());
        if (timing) fprintf(stderr, "forward+backward %d: %.3f s\n", r + 1, now_seconds() - t1);
    }
    if (timing) fprintf(stderr, "load: %.3f s\n", t_load);

    st_writer *wr = st_writer_new();
    int64_t sx[4] = {N, Ci, h, w}, sc[3] = {N, L, D};
    st_writer_add(wr, "loss", DT_F32, 0, NULL, &loss);
    st_writer_add(wr, "grad.x", DT_F32, 4, sx, dx);
    st_writer_add(wr, "grad.context", DT_F32, 3, sc, dctx);
    int n_params = 0;
    unet_walk(g, count_params, &n_params);
    grad_out go = {wr, sl_calloc((size_t)n_params + 1, sizeof *go.names), 0};
    unet_walk(g, add_param_grad, &go);
    int n_ad = 0;
    for (int i = 0; ads && i < ads->n_slots; i++) n_ad += adapter_tensor_count(ads->method);
    char (*adn)[600] = sl_calloc((size_t)n_ad + 1, sizeof *adn);
    int k_ad = 0;
    for (int i = 0; ads && i < ads->n_slots; i++) {
        adapter *a = &ads->slots[i].a;
        for (int k = 0; k < adapter_tensor_count(ads->method); k++) {
            char name[560];
            adapter_tensor_name(name, sizeof name, ads->slots[i].module, ads->method, k);
            snprintf(adn[k_ad], sizeof adn[0], "grad.%s", name);
            adapter_tensor_ref t = adapter_tensor(a, k);
            st_writer_add(wr, adn[k_ad++], DT_F32, t.ndim, t.shape, *t.grad);
        }
    }
    if (st_writer_save(wr, outp) != 0) sl_fail();
    st_writer_free(wr);
    free(go.names);
    free(adn);
    float *bufs[] = {t, x, ctx, target, dx, dctx};
    for (size_t i = 0; i < sizeof bufs / sizeof *bufs; i++) sl_free_aligned(bufs[i]);
    unet_free(g);
    unet_free(m);
    adapter_set_free(ads);
    st_close(f);
    return 0;
}
