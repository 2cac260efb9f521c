// singlora export: an adapter as a standard LoRA file other tools load (kohya-ss, diffusers).
#include <stdio.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/adapters/lora_files.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "unet/unet.h"

static const char *HELP =
    "usage: singlora export --adapter FILE --format kohya|diffusers --out FILE [--model M [--config DIR]]\n\n"
    "Writes the adapter as an exactly equivalent standard LoRA:\n"
    "  singlora  up = (alpha/r)·u(t)·A[:d_out], down = A[:d_in]ᵀ, alpha = r (u at the adapter's step)\n"
    "  lora      as is;  dora: kohya's dora_scale (d_out, 1) = the magnitude (kohya format only)\n"
    "  kohya      lora_unet_<module>.lora_down.weight / .lora_up.weight / .alpha, ss_* and modelspec.* metadata\n"
    "  diffusers  unet.<module>.lora.down.weight / .lora.up.weight (the alpha/r scale folded into up)\n"
    "A SingLoRA file stores max(d_in, d_out) rows per layer; the layer shapes are read from --model\n"
    "when given, else derived from the SD transformer layout.\n";

int cmd_export(int argc, char **argv) {
    const char *adapter_path = NULL, *format = NULL, *outp = NULL, *model = NULL, *config = NULL;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_value(argc, argv, &i, "--adapter", &adapter_path)) {}
        else if (arg_value(argc, argv, &i, "--format", &format)) {}
        else if (arg_value(argc, argv, &i, "--out", &outp)) {}
        else if (arg_model(argc, argv, &i, &model, &config, NULL)) {}
        else arg_unknown("export", argv[i]);
    }
    if (!adapter_path || !format || !outp) sl_die(NULL, "export: --adapter, --format and --out are required (see --help)");
    lora_format fmt;
    if (!strcmp(format, "kohya")) fmt = LORA_FORMAT_KOHYA;
    else if (!strcmp(format, "diffusers")) fmt = LORA_FORMAT_DIFFUSERS;
    else sl_die(NULL, "export: unknown --format '%s' (kohya or diffusers)", format);
    adapter_set *s = adapter_set_load(adapter_path);
    if (!s) sl_fail();
    if (model) {
        // the model's layers give every shape (attaching binds and checks them)
        unet_model *m = unet_load(model, config, NULL);
        if (!m || unet_attach_adapters(m, s, 1.0f, adapter_path) != 0) sl_fail();
        unet_attach_adapters(m, NULL, 1.0f, NULL);
        unet_free(m);
    } else if (unet_infer_adapter_shapes(s, adapter_path) != 0) {
        sl_fail();
    }
    if (lora_export(s, fmt, outp) != 0) sl_fail();
    fprintf(stderr, "wrote %s: %d layers, rank %d, %s format (from a %s adapter at step %lld)\n", outp, s->n_slots,
            s->rank, format, adapter_method_name(s->method), (long long)s->step);
    adapter_set_free(s);
    return 0;
}
