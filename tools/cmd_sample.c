// singlora sample: text-to-image (and img2img) with a Stable Diffusion model; PNGs carry the
// generation parameters as A1111 writes them, plus a JSON sidecar and a grid.
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "data/image.h"
#include "engine/core/error.h"
#include "engine/dist/dist.h"
#include "pipeline/adapters.h"
#include "pipeline/sample_files.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/io.h"

static const char *HELP =
    "usage: singlora sample --model PATH --prompt TEXT --out DIR [options]\n\n"
    "  --model PATH           diffusers folder or single-file .safetensors checkpoint\n"
    "  --config DIR           configs for non-standard models (DIR/unet, vae, text_encoder, scheduler)\n"
    "  --variant fp16         a diffusers folder's *.fp16.safetensors weights\n"
    "  --tokenizer DIR        CLIP tokenizer folder (single-file checkpoints carry none)\n"
    "  --prompt TEXT          what to draw\n"
    "  --negative-prompt TEXT the unconditional branch of guidance (default: the empty prompt)\n"
    "  --steps N              sampling steps (30)\n"
    "  --sampler S            ddim, euler, euler_a, dpmpp_2m, heun (euler_a)\n"
    "  --scheduler normal|karras   sigma schedule (normal)\n"
    "  --eta E                ddim's eta (0)\n"
    "  --cfg G                classifier-free guidance scale (7.5; 1 skips the unconditional pass)\n"
    "  --seed S               seed of the first image; image k uses S+k (default: random)\n"
    "  --n N                  number of images (1); a grid.png is written when N > 1\n"
    "  --width W --height H   image size, multiples of 8 (512x512, or the init image's size)\n"
    "  --init-image FILE      img2img: start from this image ...\n"
    "  --strength S           ... noised this far (0.6; 1 = ignore the image)\n"
    "  --vae-tiling           decode (and encode) in overlapping tiles: less memory for large images\n"
    "  --clip-skip N          A1111's clip skip for SD 1.x (1)\n"
    "  --long-prompts         encode prompts past 75 tokens in 75-token chunks (A1111) instead of truncating\n"
    "  --prediction-type T    epsilon or v_prediction (default: the scheduler config, else epsilon)\n"
    "  --adapter FILE         a singlora adapter (singlora/lora/dora) on the UNet; --adapter-scale S (1)\n"
    "  --lora FILE[:SCALE]    fold a kohya / diffusers / PEFT LoRA file into the UNet (repeatable)\n"
    "  --threads N            OpenMP/OpenBLAS threads\n"
    "  --out DIR              output folder (created); files NNNNN-SEED.png + .json\n\n"
    "Seeds: the initial noise for seed S is torch.randn(shape, generator=torch.Generator().manual_seed(S))\n"
    "on the CPU, bit for bit, so a diffusers/ComfyUI image made with CPU noise can be reproduced.\n";

int cmd_sample(int argc, char **argv) {
    sd_load_opts lo = {.vae_parts = VAE_DECODER};
    const char *prompt = NULL, *negative = NULL, *out_dir = NULL, *init_image = NULL, *v;
    sd_denoise_opts o = {.cfg = 7.5f, .strength = 0.6f};
    sl_sampler_opts_default(&o.sampler);
    o.sampler.kind = SL_SAMPLER_EULER_A;
    o.sampler.steps = 30;
    long long seed = -1;
    const char *adapter_path = NULL, *loras[32];
    int n_loras = 0;
    float adapter_scale = 1.0f;
    int n_images = 1, width = 0, height = 0, tiling = 0, threads = 0, long_prompts = 0, clip_skip = 1;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_model(argc, argv, &i, &lo.path, &lo.config_dir, &lo.variant)) {}
        else if (arg_value(argc, argv, &i, "--tokenizer", &lo.tokenizer_dir)) {}
        else if (arg_value(argc, argv, &i, "--prediction-type", &lo.prediction)) {}
        else if (arg_value(argc, argv, &i, "--prompt", &prompt)) {}
        else if (arg_value(argc, argv, &i, "--negative-prompt", &negative)) {}
        else if (arg_value(argc, argv, &i, "--steps", &v)) o.sampler.steps = (int)arg_long("--steps", v);
        else if (arg_value(argc, argv, &i, "--sampler", &v)) { if (sl_sampler_parse(v, &o.sampler.kind)) sl_fail(); }
        else if (arg_value(argc, argv, &i, "--scheduler", &v)) { if (sl_sigmas_parse(v, &o.sampler.sigmas)) sl_fail(); }
        else if (arg_value(argc, argv, &i, "--eta", &v)) o.sampler.eta = (float)arg_double("--eta", v);
        else if (arg_value(argc, argv, &i, "--cfg", &v)) o.cfg = (float)arg_double("--cfg", v);
        else if (arg_value(argc, argv, &i, "--seed", &v)) seed = arg_long("--seed", v);
        else if (arg_value(argc, argv, &i, "--n", &v)) n_images = (int)arg_long("--n", v);
        else if (arg_value(argc, argv, &i, "--width", &v)) width = (int)arg_long("--width", v);
        else if (arg_value(argc, argv, &i, "--height", &v)) height = (int)arg_long("--height", v);
        else if (arg_value(argc, argv, &i, "--init-image", &init_image)) {}
        else if (arg_value(argc, argv, &i, "--strength", &v)) o.strength = (float)arg_double("--strength", v);
        else if (arg_flag(argv, i, "--vae-tiling")) tiling = 1;
        else if (arg_flag(argv, i, "--long-prompts")) long_prompts = 1;
        else if (arg_value(argc, argv, &i, "--clip-skip", &v)) clip_skip = (int)arg_long("--clip-skip", v);
        else if (arg_value(argc, argv, &i, "--threads", &v)) threads = (int)arg_long("--threads", v);
        else if (arg_value(argc, argv, &i, "--out", &out_dir)) {}
        else if (arg_value(argc, argv, &i, "--adapter", &adapter_path)) {}
        else if (arg_value(argc, argv, &i, "--adapter-scale", &v)) adapter_scale = (float)arg_double("--adapter-scale", v);
        else if (arg_value(argc, argv, &i, "--lora", &v)) {
            if (n_loras == 32) sl_die(NULL, "sample: at most 32 --lora files");
            loras[n_loras++] = v;
        }
        else arg_unknown("sample", argv[i]);
    }
    if (!lo.path || !prompt || !out_dir) sl_die(NULL, "sample: --model, --prompt and --out are required (see --help)");
    if (n_images < 1 || n_images > 10000) sl_die(NULL, "sample: --n must be 1..10000");
    if (o.cfg < 0) sl_die(NULL, "sample: --cfg must be >= 0");
    if (init_image && !(o.strength > 0 && o.strength <= 1)) sl_die(NULL, "sample: --strength must be in (0, 1]");
    if (seed < 0) seed = (long long)(time(NULL) % 4294967296LL);
    if (dist_bcast(&seed, sizeof seed, 0) != 0) sl_fail();   // under mpirun: rank 0's seed for every rank
    set_threads(threads);

    // the init image fixes the size unless one is given
    float *init_px = NULL;
    int ih = 0, iw = 0;
    if (init_image) {
        init_px = image_load(init_image, &ih, &iw);
        if (!init_px) sl_fail();
        if (!width) width = iw;
        if (!height) height = ih;
        if (width != iw || height != ih)
            sl_die(init_image, "is %dx%d but --width/--height ask for %dx%d (resize the image first)", iw, ih, width, height);
        lo.vae_parts = VAE_BOTH;
    }
    if (!width) width = 512;
    if (!height) height = 512;
    if (width <= 0 || height <= 0 || width % 8 || height % 8)
        sl_die(init_image, "sample: width and height must be positive multiples of 8 (got %dx%d)", width, height);
    if (dist_is_lead() && mkdir_p(out_dir) != 0) sl_fail();   // rank 0 alone writes the folder

    sd_model *m = sd_model_load(&lo);
    if (!m) sl_fail();
    m->clip_skip = clip_skip;
    for (int k = 0; k < n_loras; k++)
        if (unet_apply_lora_spec(m->unet, loras[k]) != 0) sl_fail();
    adapter_set *ads = NULL;
    if (adapter_path) {
        ads = adapter_set_load(adapter_path);
        if (!ads || unet_attach_adapters(m->unet, ads, adapter_scale, adapter_path) != 0) sl_fail();
    }
    if (clip_text_cond_layers(m->text, clip_skip) < 0) sl_fail();
    sd_generate_opts go = {.prompt = prompt, .negative = negative, .width = width, .height = height,
                           .long_prompts = long_prompts, .vae_tiling = tiling, .init_image = init_px, .denoise = o};
    sd_sample_provenance prov = {.model_path = lo.path, .init_image_path = init_image, .clip_skip = clip_skip,
                                 .adapter_path = adapter_path, .adapter_scale = adapter_scale, .loras = loras,
                                 .n_loras = n_loras};
    if (sd_sample_to_folder(m, &go, &prov, out_dir, n_images, seed) != 0) sl_fail();
    sl_free_aligned(init_px);
    sd_model_free(m);
    adapter_set_free(ads);
    return 0;
}
