// singlora forward txt2img: the whole generation loop on given token ids and initial noise
// (parity with diffusers' StableDiffusionPipeline, and debugging).
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/diffusion/sampler_names.h"
#include "engine/io/safetensors.h"
#include "pipeline/generate.h"
#include "pipeline/prompt.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/io.h"

static const char *HELP =
    "usage: singlora forward txt2img --model PATH [--config DIR] [--variant fp16] --in IN --out OUT\n"
    "                                [--sampler S] [--scheduler normal|karras] [--steps N] [--cfg G] [--eta E]\n"
    "                                [--timestep-spacing leading|linspace|trailing] [--seed S] [--threads N] [--precision fp32|bf16] [--profile]\n\n"
    "  IN:  input_ids (2, 77) I32/I64 - row 0 the prompt, row 1 the unconditional (empty/negative)\n"
    "       prompt - and latents_init (1, C, h, w) F32, the unscaled initial noise\n"
    "  OUT: latents (n_evals, 1, C, h, w) after each step, image (1, 3, 8h, 8w) (VAE output, unclamped)\n"
    "The sampler defaults to ddim with 50 steps and guidance 7.5; --seed seeds the noise that\n"
    "ancestral samplers draw during sampling (torch's CPU generator).\n";

typedef struct {
    float *traj;      // (n_evals, n), allocated at the first step, when n_evals is known
    int64_t n;
    int n_evals;
} trajectory;

static void keep_step(void *ctx, int i, int n_evals, const float *latents, const float *guided) {
    (void)guided;
    trajectory *t = ctx;
    if (i == 0) {
        t->n_evals = n_evals;
        t->traj = sl_alloc_f32((int64_t)n_evals * t->n);
    }
    memcpy(t->traj + (size_t)i * t->n, latents, sizeof(float) * (size_t)t->n);
}

int forward_txt2img_main(int argc, char **argv) {
    const char *v;
    sd_load_opts lo = {.vae_parts = VAE_DECODER, .no_tokenizer = 1};
    const char *in = NULL, *outp = NULL;
    sd_denoise_opts o = {.cfg = 7.5f, .strength = 1.0f};
    sl_sampler_opts_default(&o.sampler);
    uint64_t seed = 0;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_model(argc, argv, &i, &lo.path, &lo.config_dir, &lo.variant)) {}
        else if (arg_value(argc, argv, &i, "--in", &in)) {}
        else if (arg_value(argc, argv, &i, "--out", &outp)) {}
        else if (arg_value(argc, argv, &i, "--sampler", &v)) {
            int karras;
            if (sl_sampler_lookup(v, &o.sampler.kind, &karras)) sl_fail();
            if (karras) o.sampler.sigmas = SL_SIGMAS_KARRAS;
        }
        else if (arg_value(argc, argv, &i, "--timestep-spacing", &v)) { if (sl_spacing_parse(v, &o.sampler.spacing)) sl_fail(); }
        else if (arg_value(argc, argv, &i, "--scheduler", &v) || arg_value(argc, argv, &i, "--sigmas", &v)) { if (sl_sigmas_lookup(v, &o.sampler.sigmas)) sl_fail(); }
        else if (arg_value(argc, argv, &i, "--steps", &v)) o.sampler.steps = (int)arg_int_range("--steps", v, 1, 10000);
        else if (arg_value(argc, argv, &i, "--cfg", &v)) o.cfg = (float)arg_double_range("--cfg", v, 0, 100);
        else if (arg_value(argc, argv, &i, "--eta", &v)) o.sampler.eta = (float)arg_double_range("--eta", v, 0, 10);
        else if (arg_value(argc, argv, &i, "--seed", &v)) seed = arg_seed("--seed", v);
        else if (arg_precision(argc, argv, &i)) {}
        else if (arg_profile(argv, i)) {}
        else if (arg_value(argc, argv, &i, "--threads", &v)) threads = arg_threads("--threads", v);
        else arg_unknown("forward txt2img", argv[i]);
    }
    if (!lo.path || !in || !outp) sl_die(NULL, "forward txt2img: --model, --in and --out are required (see --help)");
    set_threads(threads);
    st_file *f = st_open(in);
    if (!f) sl_fail();
    const st_entry *eid = input_tensor(f, "input_ids", 2, "(2, L) token ids, I32 or I64: row 0 the prompt, row 1 the unconditional");
    const st_entry *elat = input_tensor(f, "latents_init", 4, "(1, C, h, w) F32, the unscaled initial noise");
    if (eid->shape[0] != 2) sl_die(in, "tensor 'input_ids' must have 2 rows: the prompt, then the unconditional prompt");
    if (elat->shape[0] != 1) sl_die(in, "tensor 'latents_init' must hold one latent (1, C, h, w)");
    input_require_f32(f, elat, "initial noise");
    int32_t *ids = input_token_ids(f, eid);

    sd_model *m = sd_model_load(&lo);
    if (!m) sl_fail();
    int L = (int)eid->shape[1], C = (int)elat->shape[1], h = (int)elat->shape[2], w = (int)elat->shape[3];
    if (L != m->text->cfg.max_pos) sl_die(in, "input_ids rows have %d tokens; the text encoder takes %d", L, m->text->cfg.max_pos);
    if (C != m->unet->cfg.in_channels) sl_die(in, "latents_init has %d channels; the UNet takes %d", C, m->unet->cfg.in_channels);
    int D = m->text->cfg.hidden;
    float *ctx = sl_alloc_f32((int64_t)2 * L * D);   // rows: [prompt, uncond]
    if (sd_encode_ids(m, ids, 2, ctx) != 0) sl_die(in, "%s", sl_error_msg());

    int64_t n = (int64_t)C * h * w;
    float *lat = sl_alloc_f32(n);
    memcpy(lat, elat->data, sizeof(float) * (size_t)n);
    trajectory tr = {NULL, n, 0};
    o.on_step = keep_step;
    o.ctx = &tr;
    sl_rng rng;
    sl_rng_seed(&rng, seed);
    if (sd_denoise(m, ctx, ctx + (size_t)L * D, L, lat, NULL, h, w, &o, &rng) != 0) sl_fail();

    int fct = vae_factor(&m->vae->cfg);
    float *img = sl_alloc_f32((int64_t)m->vae->cfg.out_channels * h * fct * w * fct);
    sd_decode_latents(m, img, lat, h, w, 0);

    st_writer *wr = st_writer_new();
    st_writer_add(wr, "latents", DT_F32, 5, (int64_t[]){tr.n_evals, 1, C, h, w}, tr.traj);
    st_writer_add(wr, "image", DT_F32, 4, (int64_t[]){1, m->vae->cfg.out_channels, (int64_t)h * fct, (int64_t)w * fct}, img);
    if (st_writer_save(wr, outp) != 0) sl_fail();
    st_writer_free(wr);
    sl_free_aligned(tr.traj);
    sl_free_aligned(lat);
    sl_free_aligned(img);
    sl_free_aligned(ctx);
    free(ids);
    sd_model_free(m);
    st_close(f);
    return 0;
}
