// libFuzzer: the JSON configs a model folder or a recipe holds. The first byte picks the reader
// (UNet, text encoder, VAE, scheduler, training recipe); the rest is the file.
#include "clip/text_encoder.h"
#include "engine/diffusion/schedule.h"
#include "engine/io/config.h"
#include "engine/train/train_options.h"
#include "engine/train/trainer.h"
#include "tests/fuzz/input.h"
#include "unet/config.h"
#include "unet/unet.h"
#include "vae/vae.h"

static int count_param(void *ctx, const param_desc *p) {
    (void)p;
    ++*(int *)ctx;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    fuzz_quiet();
    if (size < 1) return 0;
    const char *path = fuzz_write_input("config.json", data + 1, size - 1);
    switch (data[0] % 5) {
    case 0: {
        json_config *j = config_load(path);
        unet_config cfg;
        if (j && unet_config_from_json(&cfg, j) == 0 && unet_config_validate(&cfg, path) == 0) {
            int n = 0;   // a valid config enumerates its parameters (sizes, no allocation)
            unet_enumerate(&cfg, count_param, &n);
        }
        config_free(j);
        break;
    }
    case 1: {
        clip_text_config c;
        (void)clip_text_config_load(&c, path);
        break;
    }
    case 2: {
        vae_config c;
        if (vae_config_from_json(&c, path) == 0) (void)vae_config_check(&c, path);
        break;
    }
    case 3: {
        sl_schedule s;
        if (sl_schedule_load(&s, path) == 0) sl_schedule_free(&s);
        break;
    }
    default: {
        train_config c;
        train_config_defaults(&c);
        void *keep = NULL;
        (void)train_recipe_load(&c, path, &keep);
        train_recipe_free(keep);
        break;
    }
    }
    return 0;
}
