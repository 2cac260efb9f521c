// singlora adapter init: a freshly initialized SingLoRA / LoRA / DoRA adapter for a model.
#include <stdio.h>
#include <string.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "pipeline/adapters.h"
#include "tools/args.h"
#include "tools/commands.h"

static const char *HELP =
    "usage: singlora adapter init --model M [--config DIR] [--variant fp16] --method singlora|lora|dora\n"
    "                             --rank R --alpha A [--ramp-steps T] [--init kaiming|normal:STD]\n"
    "                             [--targets LIST] [--seed S] --out FILE\n\n"
    "Writes an adapter over the UNet's layers that match --targets, initialized as training\n"
    "starts from it (step 0):\n"
    "  singlora  A (max(d_in, d_out), r); u(t) = min(t/T, 1) with T = --ramp-steps (default 100; 0\n"
    "            disables the ramp); --init kaiming = U(±1/sqrt(r)) (PyTorch's kaiming_uniform_(a=√5))\n"
    "  lora      down (r, d_in) kaiming, up (d_out, r) zeros\n"
    "  dora      lora plus a magnitude per output row, initialized to the row norms of W0\n"
    "--targets: comma-separated module-path suffixes and shorthands: cross-attn (the default:\n"
    "attn2.to_q, attn2.to_k, attn2.to_v, attn2.to_out.0), self-attn, attn, ff, proj, all (every\n"
    "Linear of the transformers), resnets (the ResNet blocks' conv1, conv2, conv_shortcut), conv (those\n"
    "and the down/up samplers' conv); a k x k conv (C_out, C_in, k, k) is the matrix (C_out, C_in*k*k).\n"
    "--alpha defaults to the rank (scale alpha/r = 1).\n";

static int adapter_init_main(int argc, char **argv) {
    const char *model = NULL, *config = NULL, *variant = NULL, *outp = NULL, *method = NULL, *v;
    adapter_new_opts o = {.rank = 0, .alpha = -1, .ramp_steps = 100, .init = "kaiming",
                          .targets = "cross-attn", .seed = 0};
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_model(argc, argv, &i, &model, &config, &variant)) {}
        else if (arg_value(argc, argv, &i, "--method", &method)) {}
        else if (arg_value(argc, argv, &i, "--rank", &v)) o.rank = (int)arg_int_range("--rank", v, 1, ADAPTER_MAX_RANK);
        else if (arg_value(argc, argv, &i, "--alpha", &v)) o.alpha = (float)arg_double_range("--alpha", v, 0, ADAPTER_MAX_ALPHA);
        else if (arg_value(argc, argv, &i, "--ramp-steps", &v)) o.ramp_steps = arg_int_range("--ramp-steps", v, 0, ADAPTER_MAX_STEPS);
        else if (arg_value(argc, argv, &i, "--init", &o.init)) {}
        else if (arg_value(argc, argv, &i, "--targets", &o.targets)) {}
        else if (arg_value(argc, argv, &i, "--seed", &v)) o.seed = arg_seed("--seed", v);
        else if (arg_value(argc, argv, &i, "--out", &outp)) {}
        else arg_unknown("adapter init", argv[i]);
    }
    if (!model || !method || !o.rank || !outp)
        sl_die(NULL, "adapter init: --model, --method, --rank and --out are required (see --help)");
    int mth = adapter_method_from_name(method);
    if (mth < 0) sl_die(NULL, "adapter init: unknown --method '%s' (singlora, lora or dora)", method);
    o.method = (adapter_method)mth;
    if (o.alpha < 0) o.alpha = (float)o.rank;
    unet_model *m = unet_load(model, config, variant);
    if (!m) sl_fail();
    adapter_set *s = adapter_set_create(m, &o);
    if (!s) sl_fail();
    if (adapter_set_save(s, outp) != 0) sl_fail();
    fprintf(stderr, "wrote %s: %s rank %d alpha %g on %d layers, %lld trainable parameters\n", outp,
            adapter_method_name(s->method), s->rank, (double)s->alpha, s->n_slots, (long long)adapter_set_param_count(s));
    adapter_set_free(s);
    unet_free(m);
    return 0;
}

int cmd_adapter(int argc, char **argv) {
    if (argc >= 2 && !strcmp(argv[1], "init")) return adapter_init_main(argc - 1, argv + 1);
    if (argc >= 2 && arg_is_help(argv[1])) {
        fputs("usage: singlora adapter init ...   (singlora adapter init --help)\n", stdout);
        return 0;
    }
    sl_die(NULL, "adapter: expected the subcommand 'init' (see singlora adapter init --help)");
}
