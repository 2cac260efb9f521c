// singlora sample: text-to-image (and img2img) with a Stable Diffusion model; PNGs carry the
// generation parameters as A1111 writes them, plus a JSON sidecar and a grid.
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "data/image.h"
#include "engine/io/atomic_file.h"
#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "pipeline/adapters.h"
#include "pipeline/denoise.h"
#include "pipeline/model_hash.h"
#include "pipeline/prompt.h"
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

static const char *sampler_display(sl_sampler_kind k) {
    switch (k) {
    case SL_SAMPLER_DDIM: return "DDIM";
    case SL_SAMPLER_EULER: return "Euler";
    case SL_SAMPLER_EULER_A: return "Euler a";
    case SL_SAMPLER_DPMPP_2M: return "DPM++ 2M";
    case SL_SAMPLER_HEUN: return "Heun";
    }
    return "?";
}

// A1111's "Model hash": the first 10 hex digits of the weights file's SHA-256 (cached).
static void model_hash10(const char *path, char out[11]) {
    char hex[65];
    if (model_sha256(path, hex) != 0) snprintf(hex, sizeof hex, "unknown");
    sl_error_clear();
    snprintf(out, 11, "%.10s", hex);
}

static const char *base_name(const char *path) {
    const char *b = strrchr(path, '/');
    return b ? b + 1 : path;
}

typedef struct {
    progress bar;
    char label[64];
} step_ctx;

// The bar starts at the first step, when the number of evaluations (img2img: those left) is known.
static void on_step(void *ctx, int i, int n, const float *latents, const float *guided) {
    (void)latents; (void)guided;
    step_ctx *sc = ctx;
    if (i == 0) progress_start(&sc->bar, sc->label, n);
    progress_step(&sc->bar, NULL);
}

static void write_sidecar(const char *path, cJSON *j) {
    char *text = cJSON_Print(j);
    size_t len = strlen(text);
    const void *bufs[2] = {text, "\n"};
    size_t lens[2] = {len, 1};
    if (atomic_write(path, bufs, lens, 2) != 0) sl_fail();
    free(text);
}

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
        else if (arg_value(argc, argv, &i, "--model", &lo.path)) {}
        else if (arg_value(argc, argv, &i, "--config", &lo.config_dir)) {}
        else if (arg_value(argc, argv, &i, "--variant", &lo.variant)) {}
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
    if (mkdir_p(out_dir) != 0) sl_fail();

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
    int f = vae_factor(&m->vae->cfg);
    if (width % f || height % f) sl_die(lo.path, "this VAE needs width and height that are multiples of %d", f);
    int h = height / f, w = width / f, C = m->unet->cfg.in_channels;
    int64_t n = (int64_t)C * h * w;

    sd_conditioning cond;
    if (sd_encode_prompts(m, prompt, negative, o.cfg != 1.0f, long_prompts, &cond) != 0) sl_fail();
    char hash[11];
    model_hash10(lo.path, hash);
    const char *model_name = base_name(lo.path);

    float *lat = sl_alloc_f32(n), *z = sl_alloc_f32(n), *init_latent = NULL;
    float *img = sl_alloc_f32((int64_t)3 * height * width);
    float *grid = NULL;
    int cols = 1;
    while (cols * cols < n_images) cols++;
    int rows = (n_images + cols - 1) / cols;
    if (n_images > 1) {
        grid = sl_alloc_f32((int64_t)3 * rows * height * cols * width);
        for (int64_t k = 0; k < (int64_t)3 * rows * height * cols * width; k++) grid[k] = -1.0f;   // black
    }
    vae_tiling vt = vae_tiling_default();
    float *moments = NULL;   // img2img: the init image's posterior, the same for every seed
    if (init_px) {
        moments = sl_alloc_f32(2 * n);
        init_latent = sl_alloc_f32(n);
        if (tiling) vae_encode_tiled(m->vae, moments, init_px, 1, height, width, vt);
        else vae_encode(m->vae, moments, init_px, 1, height, width);
    }
    for (int k = 0; k < n_images; k++) {
        long long s = seed + k;
        sl_rng rng;
        sl_rng_seed(&rng, (uint64_t)s);
        if (init_px) {
            // diffusers' img2img: the posterior sample draws from the generator first, then the noise
            float *eps = sl_alloc_f32(n);
            sl_rng_randn(&rng, eps, (size_t)n);
            vae_posterior(&m->vae->cfg, NULL, NULL, init_latent, moments, eps, 1, h, w);
            for (int64_t q = 0; q < n; q++) init_latent[q] *= m->vae->cfg.scaling_factor;
            sl_free_aligned(eps);
        }
        sl_rng_randn(&rng, lat, (size_t)n);
        step_ctx sc = {0};   // the bar starts at the first step (none when img2img has nothing left to do)
        snprintf(sc.label, sizeof sc.label, "image %d/%d", k + 1, n_images);
        o.on_step = on_step;
        o.ctx = &sc;
        if (sd_denoise(m, cond.cond, cond.uncond, cond.L, lat, init_px ? init_latent : NULL, h, w, &o, &rng) != 0) sl_fail();
        progress_end(&sc.bar);
        for (int64_t q = 0; q < n; q++) z[q] = lat[q] / m->vae->cfg.scaling_factor;
        if (tiling) vae_decode_tiled(m->vae, img, z, 1, h, w, vt);
        else vae_decode(m->vae, img, z, 1, h, w);

        // A1111's parameters text
        char params[8192], extra[256] = "";
        if (init_px) snprintf(extra, sizeof extra, ", Denoising strength: %g", (double)o.strength);
        if (clip_skip > 1) snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ", Clip skip: %d", clip_skip);
        if (adapter_path)
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra), ", Adapter: %s:%g", base_name(adapter_path),
                     (double)adapter_scale);
        for (int q = 0; q < n_loras; q++)
            snprintf(extra + strlen(extra), sizeof extra - strlen(extra), "%s%s", q ? " " : ", Lora: ", base_name(loras[q]));
        snprintf(params, sizeof params,
                 "%s\n%s%s%sSteps: %d, Sampler: %s, Schedule type: %s, CFG scale: %g, Seed: %lld, Size: %dx%d, "
                 "Model hash: %s, Model: %s%s, Version: singlora %s",
                 prompt, negative ? "Negative prompt: " : "", negative ? negative : "", negative ? "\n" : "",
                 o.sampler.steps, sampler_display(o.sampler.kind), o.sampler.sigmas == SL_SIGMAS_KARRAS ? "Karras" : "Automatic",
                 (double)o.cfg, s, width, height, hash, model_name, extra, SINGLORA_VERSION);
        char png[4200], json[4200];
        snprintf(png, sizeof png, "%s/%05d-%lld.png", out_dir, k, s);
        snprintf(json, sizeof json, "%s/%05d-%lld.json", out_dir, k, s);
        const char *keys[] = {"parameters"}, *vals[] = {params};
        if (image_save_png_text(png, img, 3, height, width, keys, vals, 1) != 0) sl_fail();
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "prompt", prompt);
        cJSON_AddStringToObject(j, "negative_prompt", negative ? negative : "");
        cJSON_AddNumberToObject(j, "steps", o.sampler.steps);
        cJSON_AddStringToObject(j, "sampler", sl_sampler_name(o.sampler.kind));
        cJSON_AddStringToObject(j, "scheduler", sl_sigmas_name(o.sampler.sigmas));
        cJSON_AddNumberToObject(j, "cfg_scale", o.cfg);
        cJSON_AddNumberToObject(j, "seed", (double)s);
        cJSON_AddNumberToObject(j, "width", width);
        cJSON_AddNumberToObject(j, "height", height);
        cJSON_AddStringToObject(j, "model", lo.path);
        cJSON_AddStringToObject(j, "model_hash", hash);
        cJSON_AddStringToObject(j, "prediction_type", sl_prediction_name(m->sched.prediction));
        if (init_px) {
            cJSON_AddStringToObject(j, "init_image", init_image);
            cJSON_AddNumberToObject(j, "strength", o.strength);
        }
        if (clip_skip > 1) cJSON_AddNumberToObject(j, "clip_skip", clip_skip);
        if (adapter_path) {
            cJSON_AddStringToObject(j, "adapter", adapter_path);
            cJSON_AddNumberToObject(j, "adapter_scale", adapter_scale);
        }
        if (n_loras) {
            cJSON *arr = cJSON_AddArrayToObject(j, "loras");
            for (int q = 0; q < n_loras; q++) cJSON_AddItemToArray(arr, cJSON_CreateString(loras[q]));
        }
        cJSON_AddStringToObject(j, "parameters", params);
        write_sidecar(json, j);
        cJSON_Delete(j);
        fprintf(stderr, "wrote %s\n", png);
        if (grid) {
            int gx = k % cols, gy = k / cols, GW = cols * width, GH = rows * height;
            for (int c = 0; c < 3; c++)
                for (int y = 0; y < height; y++)
                    memcpy(grid + ((size_t)c * GH + (size_t)gy * height + y) * GW + (size_t)gx * width,
                           img + ((size_t)c * height + y) * width, sizeof(float) * (size_t)width);
        }
    }
    if (grid) {
        char gp[4200];
        snprintf(gp, sizeof gp, "%s/grid.png", out_dir);
        if (image_save_png(gp, grid, 3, rows * height, cols * width) != 0) sl_fail();
        fprintf(stderr, "wrote %s\n", gp);
        sl_free_aligned(grid);
    }
    sd_conditioning_free(&cond);
    sl_free_aligned(lat);
    sl_free_aligned(z);
    sl_free_aligned(img);
    sl_free_aligned(init_latent);
    sl_free_aligned(moments);
    sl_free_aligned(init_px);
    sd_model_free(m);
    adapter_set_free(ads);
    return 0;
}
