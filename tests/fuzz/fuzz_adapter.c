// libFuzzer: adapter and LoRA files against a tiny UNet (configs/tiny, so run from the repo root).
// The first byte picks the reader: a singlora adapter file (parsed, then bound to the model's
// Linear layers and detached), or a LoRA file (kohya / diffusers / PEFT names) folded into the
// weights; the rest is the .safetensors file.
#include <stdio.h>
#include <stdlib.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "pipeline/adapters.h"
#include "tests/fuzz/input.h"
#include "unet/config.h"
#include "unet/unet.h"

static unet_model *tiny_unet(void) {
    static unet_model *m;
    if (m) return m;
    unet_config cfg;
    unet_model *skeleton;
    // weights all zero: a gradient mirror of every parameter is such a model
    if (unet_config_load_dir(&cfg, "configs/tiny/unet") != 0 || !(skeleton = unet_model_new(&cfg)) ||
        !(m = unet_grads_new(skeleton, "all"))) {
        fprintf(stderr, "fuzz_adapter: %s (run from the repository root)\n", sl_error_msg());
        abort();
    }
    unet_free(skeleton);
    return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    if (size < 1) return 0;
    unet_model *m = tiny_unet();
    const char *path = fuzz_write_input("in.safetensors", data + 1, size - 1);
    if (data[0] & 1) {
        (void)unet_apply_lora_spec(m, path);   // LoRA: W += ..., so weights drift over inputs (harmless)
        return 0;
    }
    adapter_set *s = adapter_set_load(path);
    if (!s) return 0;
    if (unet_attach_adapters(m, s, 1.0f, path) == 0) unet_attach_adapters(m, NULL, 1.0f, path);
    adapter_set_free(s);
    return 0;
}
