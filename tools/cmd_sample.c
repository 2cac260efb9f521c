// singlora sample: text-to-image (and img2img) with a Stable Diffusion model; PNGs carry the
// generation parameters as A1111 writes them, plus a JSON sidecar and a grid. Accepts A1111's
// prompt syntax and sampler names and stable-diffusion.cpp's flags; --from-png regenerates an
// image from its parameters.
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "data/image.h"
#include "engine/adapters/adapter_set.h"
#include "engine/kernels/gemm.h"
#include "engine/core/error.h"
#include "engine/diffusion/sampler_names.h"
#include "engine/dist/dist.h"
#include "engine/io/folders.h"
#include "pipeline/adapters.h"
#include "pipeline/model_hash.h"
#include "pipeline/png_replay.h"
#include "pipeline/sample_files.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/io.h"

static const char *HELP =
    "usage: singlora sample --model PATH --prompt TEXT --out DIR [options]\n"
    "       singlora sample --model PATH --from-png IMAGE.png --out DIR [options]\n\n"
    "  -m, --model PATH       diffusers folder or single-file .safetensors checkpoint\n"
    "  --config DIR           configs for non-standard models (DIR/unet, vae, text_encoder, scheduler)\n"
    "  --variant fp16         a diffusers folder's *.fp16.safetensors weights\n"
    "  --tokenizer DIR        CLIP tokenizer folder (single-file checkpoints carry none)\n"
    "  -p, --prompt TEXT      what to draw; A1111 syntax: (word:1.2), (word) x1.1, [word] /1.1, \\( \\) literal,\n"
    "                         BREAK (with --long-prompts), <lora:NAME:W> (a LoRA from --lora-dir)\n"
    "  -n, --negative-prompt TEXT  the unconditional branch of guidance (default: the empty prompt)\n"
    "  --no-emphasis          read (, ), [, ], BREAK as plain text (A1111's \"Emphasis: None\")\n"
    "  --lora-dir DIR         where <lora:NAME:W> finds NAME.safetensors (sd.cpp: --lora-model-dir)\n"
    "  --steps N              sampling steps (30)\n"
    "  --sampler S            ddim, euler, euler_a, dpmpp_2m, heun (euler_a); also A1111's names ('Euler a',\n"
    "                         'DPM++ 2M Karras', ...), ComfyUI's (euler_ancestral, ...) and sd.cpp's (dpm++2m);\n"
    "                         alias --sampling-method\n"
    "  --scheduler normal|karras   sigma schedule (normal); alias --schedule; A1111's Automatic/Uniform = normal\n"
    "  --timestep-spacing S   leading, linspace or trailing (default: a diffusers folder's scheduler config;\n"
    "                         a single file: linspace for the Euler family, as A1111/ComfyUI/sd.cpp, and\n"
    "                         leading + 1 for ddim, as A1111's DDIM)\n"
    "  --eta E                ddim's eta (0)\n"
    "  --cfg G                classifier-free guidance scale (7.5; 1 skips the unconditional pass); alias --cfg-scale\n"
    "  -s, --seed S           seed of the first image; image k uses S+k (default: random)\n"
    "  --n N                  number of images (1); a grid.png is written when N > 1; alias -b, --batch-count\n"
    "  -W, --width W  -H, --height H   image size, multiples of 8 (512x512, or the init image's size)\n"
    "  -i, --init-image FILE  img2img: start from this image ... (alias --init-img)\n"
    "  --strength S           ... noised this far (0.6; 1 = ignore the image)\n"
    "  --vae-tiling           decode (and encode) in overlapping tiles: less memory for large images\n"
    "  --clip-skip N          A1111's clip skip for SD 1.x (1)\n"
    "  --long-prompts         encode prompts past 75 tokens in 75-token chunks (A1111) instead of truncating\n"
    "  --prediction-type T    epsilon or v_prediction (default: the scheduler config, else epsilon)\n"
    "  --adapter FILE         a singlora adapter (singlora/lora/dora) on the UNet; --adapter-scale S (1)\n"
    "  --lora FILE[:SCALE]    fold a kohya / diffusers / PEFT LoRA file into the UNet (repeatable)\n"
    "  --from-png IMAGE.png   start from the settings in IMAGE's A1111 `parameters` chunk (prompt, negative\n"
    "                         prompt, steps, sampler, schedule, CFG, seed, size, clip skip, ...); options\n"
    "                         given as well override them; --model, adapters and LoRA files are given again\n"
    "  -t, --threads N        OpenMP/OpenBLAS threads\n"
    "  --precision P          fp32 (default) or bf16: GEMM operands rounded to bf16, f32 accumulation\n"
    "  --profile              time and GFLOP/s per op kind (stderr, at the end)\n"
    "  --out DIR              output folder (created); files NNNNN-SEED.png + .json\n"
    "  -o, --output PATH      PATH ending in .png: that file (as sd.cpp; image k > 0 is PATH_<k+1>.png,\n"
    "                         sidecars PATH.json, no grid); any other PATH: the same as --out\n\n"
    "Seeds: the initial noise for seed S is torch.randn(shape, generator=torch.Generator().manual_seed(S))\n"
    "on the CPU, bit for bit, so a diffusers/ComfyUI image made with CPU noise can be reproduced.\n";

#define SAMPLE_MAX_IMAGES 10000

static int ends_with_png(const char *s) {
    size_t n = strlen(s);
    return n > 4 && s[n - 4] == '.' && tolower((unsigned char)s[n - 3]) == 'p' && tolower((unsigned char)s[n - 2]) == 'n' &&
           tolower((unsigned char)s[n - 1]) == 'g';
}

// Any of the names for one option (sd.cpp's short and long spellings next to singlora's).
static int arg_any(int argc, char **argv, int *i, const char *const *names, const char **v) {
    for (; *names; names++)
        if (arg_value(argc, argv, i, *names, v)) return 1;
    return 0;
}
#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})

int cmd_sample(int argc, char **argv) {
    sd_load_opts lo = {.vae_parts = VAE_DECODER};
    const char *out_dir = NULL, *out_file = NULL, *init_image = NULL, *from_png = NULL, *lora_dir = NULL, *v;
    sd_png_replay rp = {.gen = {.denoise = {.cfg = 7.5f, .strength = 0.6f}}, .seed = -1, .clip_skip = 1};
    sd_denoise_opts *o = &rp.gen.denoise;
    sl_sampler_opts_default(&o->sampler);
    o->sampler.kind = SL_SAMPLER_EULER_A;
    o->sampler.steps = 30;
    // --from-png first: the image's settings are the defaults the other options override
    for (int i = 1; i < argc; i++)
        if (arg_value(argc, argv, &i, "--from-png", &from_png)) {}
    if (from_png && sd_png_replay_load(from_png, &rp) != 0) sl_fail();
    const char *prompt = rp.gen.prompt, *negative = rp.gen.negative;
    long long seed = rp.seed;
    int width = rp.gen.width, height = rp.gen.height, clip_skip = rp.clip_skip;
    const char *adapter_path = NULL, *loras[32];
    int n_loras = 0;
    float adapter_scale = 1.0f;
    int n_images = 1, tiling = 0, threads = 0;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_model(argc, argv, &i, &lo.path, &lo.config_dir, &lo.variant) || arg_value(argc, argv, &i, "-m", &lo.path)) {}
        else if (arg_value(argc, argv, &i, "--from-png", &v)) {}
        else if (arg_value(argc, argv, &i, "--tokenizer", &lo.tokenizer_dir)) {}
        else if (arg_value(argc, argv, &i, "--prediction-type", &lo.prediction)) {}
        else if (arg_any(argc, argv, &i, NAMES("--prompt", "-p"), &prompt)) {}
        else if (arg_any(argc, argv, &i, NAMES("--negative-prompt", "-n"), &negative)) {}
        else if (arg_flag(argv, i, "--no-emphasis")) rp.gen.no_emphasis = 1;
        else if (arg_any(argc, argv, &i, NAMES("--lora-dir", "--lora-model-dir"), &lora_dir)) {}
        else if (arg_value(argc, argv, &i, "--steps", &v)) o->sampler.steps = (int)arg_int_range("--steps", v, 1, SD_MAX_STEPS);
        else if (arg_any(argc, argv, &i, NAMES("--sampler", "--sampling-method"), &v)) {
            int karras;
            if (sl_sampler_lookup(v, &o->sampler.kind, &karras)) sl_fail();
            if (karras) o->sampler.sigmas = SL_SIGMAS_KARRAS;
        }
        else if (arg_any(argc, argv, &i, NAMES("--scheduler", "--schedule"), &v)) { if (sl_sigmas_lookup(v, &o->sampler.sigmas)) sl_fail(); }
        else if (arg_value(argc, argv, &i, "--timestep-spacing", &v)) { if (sl_spacing_parse(v, &o->sampler.spacing)) sl_fail(); }
        else if (arg_value(argc, argv, &i, "--eta", &v)) o->sampler.eta = (float)arg_double_range("--eta", v, 0, SD_MAX_ETA);
        else if (arg_any(argc, argv, &i, NAMES("--cfg", "--cfg-scale"), &v)) o->cfg = (float)arg_double_range("--cfg", v, 0, SD_MAX_CFG);
        else if (arg_any(argc, argv, &i, NAMES("--seed", "-s"), &v)) seed = arg_int_range("--seed", v, 0, INT64_MAX);
        else if (arg_any(argc, argv, &i, NAMES("--n", "-b", "--batch-count"), &v)) n_images = (int)arg_int_range("--n", v, 1, SAMPLE_MAX_IMAGES);
        else if (arg_any(argc, argv, &i, NAMES("--width", "-W"), &v)) width = (int)arg_int_range("--width", v, 8, SD_MAX_SIDE);
        else if (arg_any(argc, argv, &i, NAMES("--height", "-H"), &v)) height = (int)arg_int_range("--height", v, 8, SD_MAX_SIDE);
        else if (arg_any(argc, argv, &i, NAMES("--init-image", "--init-img", "-i"), &init_image)) {}
        else if (arg_value(argc, argv, &i, "--strength", &v)) o->strength = (float)arg_double_range("--strength", v, 0, 1);
        else if (arg_flag(argv, i, "--vae-tiling")) tiling = 1;
        else if (arg_flag(argv, i, "--long-prompts")) rp.gen.long_prompts = 1;
        else if (arg_value(argc, argv, &i, "--clip-skip", &v)) clip_skip = (int)arg_int_range("--clip-skip", v, 1, SD_MAX_CLIP_SKIP);
        else if (arg_precision(argc, argv, &i)) {}
        else if (arg_profile(argv, i)) {}
        else if (arg_any(argc, argv, &i, NAMES("--threads", "-t"), &v)) threads = arg_threads("--threads", v);
        else if (arg_value(argc, argv, &i, "--out", &out_dir)) {}
        else if (arg_any(argc, argv, &i, NAMES("--output", "-o"), &v)) {
            if (ends_with_png(v)) out_file = v, out_dir = NULL;
            else out_dir = v, out_file = NULL;
        }
        else if (arg_value(argc, argv, &i, "--adapter", &adapter_path)) {}
        else if (arg_value(argc, argv, &i, "--adapter-scale", &v)) adapter_scale = (float)arg_double_range("--adapter-scale", v, -ADAPTER_SCALE_MAX, ADAPTER_SCALE_MAX);
        else if (arg_value(argc, argv, &i, "--lora", &v)) {
            if (n_loras == 32) sl_die(NULL, "sample: at most 32 --lora files");
            loras[n_loras++] = v;
        }
        else arg_unknown("sample", argv[i]);
    }
    if (!lo.path || !prompt || !(out_dir || out_file))
        sl_die(NULL, "sample: --model, --prompt (or --from-png) and --out (or -o FILE.png) are required (see --help)");
    if (init_image && !(o->strength > 0 && o->strength <= 1)) sl_die(NULL, "sample: --strength must be in (0, 1]");
    if (from_png) {
        if (rp.img2img && !init_image)
            sl_die(from_png, "was made with img2img (Denoising strength %g): give its init image with --init-image",
                   (double)o->strength);
        if (rp.adapter && !adapter_path) sl_warn("%s was made with the adapter %s: give it again with --adapter", from_png, rp.adapter);
        if (rp.loras && !n_loras) sl_warn("%s was made with the LoRA files %s: give them again with --lora", from_png, rp.loras);
    }
    if (seed < 0) seed = (long long)(time(NULL) % 4294967296LL);   // no --seed: a random one
    // image k has seed + k
    if (seed > INT64_MAX - (n_images - 1))
        sl_die(NULL, "option --seed: %lld + %d images passes 2^63-1 (give a seed up to %lld)", seed, n_images,
               (long long)(INT64_MAX - (n_images - 1)));
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
    if (width < 8 || height < 8 || width > SD_MAX_SIDE || height > SD_MAX_SIDE || width % 8 || height % 8)
        sl_die(init_image, "sample: width and height must be multiples of 8 in 8..%d (got %dx%d)", SD_MAX_SIDE, width,
               height);
    if (dist_is_lead()) {   // rank 0 alone writes (mpirun, engine/dist/); a folder it cannot write fails now, not after sampling
        if (out_dir && (mkdir_p(out_dir) != 0 || folder_check_writable(out_dir) != 0)) sl_fail();
        if (out_file) {
            char dir[4096];
            snprintf(dir, sizeof dir, "%s", out_file);
            char *slash = strrchr(dir, '/');
            if (slash) *slash = 0;
            else snprintf(dir, sizeof dir, ".");
            if (slash == dir) snprintf(dir, sizeof dir, "/");
            if (mkdir_p(dir) != 0 || folder_check_writable(dir) != 0) sl_fail();
        }
    }

    // bf16: the frozen weights are held in bf16 as they load (half the memory, same images); a
    // UNet that LoRA files, <lora:...> tags or an adapter change is held once they are applied
    const int bf16 = gemm_active_precision() == GEMM_BF16;
    const int unet_changes = n_loras > 0 || adapter_path || strchr(prompt, '<');
    if (bf16) lo.hold_bf16 = SD_HOLD_TEXT | SD_HOLD_VAE | (unet_changes ? 0 : SD_HOLD_UNET);
    sd_model *m = sd_model_load(&lo);
    if (!m) sl_fail();
    if (from_png && rp.model_hash) {
        char hex[65];
        if (model_sha256(lo.path, hex) == 0 && strncmp(hex, rp.model_hash, strlen(rp.model_hash)) != 0)
            sl_warn("%s was made with model hash %s; %s has %.10s (the image will differ)", from_png, rp.model_hash,
                    lo.path, hex);
        sl_error_clear();
    }
    m->clip_skip = clip_skip;
    for (int k = 0; k < n_loras; k++)
        if (unet_apply_lora_spec(m->unet, loras[k]) != 0) sl_fail();
    char *prompt_text;   // the prompt without its <lora:...> tags
    if (unet_apply_prompt_loras(m->unet, prompt, lora_dir, &prompt_text) != 0) sl_fail();
    adapter_set *ads = NULL;
    if (adapter_path) {
        ads = adapter_set_load(adapter_path);
        if (!ads || unet_attach_adapters(m->unet, ads, adapter_scale, adapter_path) != 0) sl_fail();
    }
    if (bf16 && unet_changes) unet_hold_bf16(m->unet);
    if (clip_text_cond_layers(m->text, clip_skip) < 0) sl_fail();
    sd_generate_opts go = rp.gen;
    go.prompt = prompt_text;
    go.negative = negative;
    go.width = width, go.height = height;
    go.vae_tiling = tiling;
    go.init_image = init_px;
    sd_sample_provenance prov = {.model_path = lo.path, .prompt_as_typed = prompt, .init_image_path = init_image,
                                 .clip_skip = clip_skip, .adapter_path = adapter_path, .adapter_scale = adapter_scale,
                                 .loras = loras, .n_loras = n_loras};
    // one-shot: each part of the model is freed once it is done (peak memory: the largest stage)
    int rc = out_file ? sd_sample_to_file(m, &go, &prov, out_file, n_images, seed, 1)
                      : sd_sample_to_folder(m, &go, &prov, out_dir, n_images, seed, 1);
    if (rc != 0) sl_fail();
    free(prompt_text);
    sl_free_aligned(init_px);
    sd_model_free(m);
    adapter_set_free(ads);
    sd_png_replay_free(&rp);
    return 0;
}
