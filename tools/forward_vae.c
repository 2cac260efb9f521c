// singlora forward vae-encode / vae-decode: the VAE on inputs from a file (parity checks).
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/io.h"
#include "engine/core/rng.h"
#include "vae/vae.h"

static const char *HELP_ENCODE =
    "usage: singlora forward vae-encode --model PATH [--config DIR] [--variant fp16] --in IN --out OUT\n"
    "                                   [--tile N] [--overlap N] [--context N] [--threads N] [--precision fp32|bf16] [--profile]\n\n"
    "IN is an image file (PNG, JPEG, BMP, ...; mapped to [-1, 1]) or a .safetensors file with\n"
    "`image` (N, 3, H, W) in [-1, 1] and optionally `noise` (N, 4, H/8, W/8). OUT (.safetensors) gets\n"
    "`moments` (the quant_conv output), `mean`, `logvar` (clamped to [-30, 20]), `std`, and with a\n"
    "noise input `sample` = mean + std·noise (not multiplied by the scaling factor); --seed S draws the\n"
    "noise instead as torch.randn with that seed (the engine's torch-exact CPU generator).\n\n"
    "  --model PATH    diffusers folder, diffusers vae file, or original single-file checkpoint\n"
    "  --config DIR    folder with vae/config.json (overrides the model's; needed for original files\n"
    "                  of non-standard sizes)\n"
    "  --variant V     diffusers weights variant, e.g. fp16 (*.fp16.safetensors)\n"
    "  --tile N        encode in overlapping tiles of N latent pixels (8·N image pixels); 0: untiled\n"
    "  --overlap N     tile overlap in latent pixels (default N/4)\n"
    "  --context N     latent pixels computed around each tile and discarded (default 4)\n"
    "  --seed S        (encode) sample with noise = torch.randn(N, 4, h, w) from seed S\n";

static const char *HELP_DECODE =
    "usage: singlora forward vae-decode --model PATH [--config DIR] [--variant fp16] --in IN --out OUT\n"
    "                                   [--tile N] [--overlap N] [--context N] [--threads N] [--precision fp32|bf16] [--profile]\n\n"
    "IN is a .safetensors file with `latent` (N, 4, h, w): the raw decoder input, i.e. already\n"
    "divided by the scaling factor. OUT is a .safetensors file (gets `image` (N, 3, 8h, 8w),\n"
    "unclamped) or a .png (one image; N > 1 writes OUT with _0, _1, ... before .png).\n\n"
    "  --model, --config, --variant, --tile, --overlap, --context as for vae-encode.\n";

typedef struct {
    const char *model, *config, *variant, *in, *out;
    vae_tiling tiling;
    long long seed;   // -1: none
} vae_args;

// Resident memory from /proc (Linux; 0 when unavailable).
static double proc_status_mb(const char *key) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return 0;
    char line[256];
    double kb = 0;
    size_t n = strlen(key);
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, n) && line[n] == ':') kb = atof(line + n + 1);
    fclose(f);
    return kb / 1024.0;
}

// Resets the peak-RSS counter to the current RSS, so the next VmHWM is the compute's own peak.
static void reset_peak_rss(void) {
    FILE *f = fopen("/proc/self/clear_refs", "w");
    if (!f) return;
    fputs("5", f);
    fclose(f);
}

static void report(const char *what, double t_load, double t_run, double rss_loaded) {
    fprintf(stderr, "%s: load %.2f s, compute %.2f s; RSS after load %.0f MB, peak during compute %.0f MB\n", what, t_load,
            t_run, rss_loaded, proc_status_mb("VmHWM"));
}

static void parse(vae_args *a, int argc, char **argv, const char *help) {
    memset(a, 0, sizeof *a);
    const char *v;
    int overlap = -1;
    a->tiling.context = 4;
    a->seed = -1;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(help, stdout); exit(0); }
        else if (arg_model(argc, argv, &i, &a->model, &a->config, &a->variant)) {}
        else if (arg_value(argc, argv, &i, "--in", &a->in)) {}
        else if (arg_value(argc, argv, &i, "--out", &a->out)) {}
        // tile, overlap and context in latent pixels
        else if (arg_value(argc, argv, &i, "--tile", &v)) a->tiling.tile = (int)arg_int_range("--tile", v, 0, 4096);
        else if (arg_value(argc, argv, &i, "--overlap", &v)) overlap = (int)arg_int_range("--overlap", v, 0, 4096);
        else if (arg_value(argc, argv, &i, "--context", &v)) a->tiling.context = (int)arg_int_range("--context", v, 0, 4096);
        else if (arg_value(argc, argv, &i, "--seed", &v)) a->seed = arg_int_range("--seed", v, 0, INT64_MAX);
        else if (arg_precision(argc, argv, &i)) {}
        else if (arg_profile(argv, i)) {}
        else if (arg_value(argc, argv, &i, "--threads", &v)) set_threads(arg_threads("--threads", v));
        else arg_unknown("forward", argv[i]);
    }
    if (!a->model) sl_die(NULL, "forward %s: --model is required", argv[0]);
    if (!a->in) sl_die(NULL, "forward %s: --in is required", argv[0]);
    if (!a->out) sl_die(NULL, "forward %s: --out is required", argv[0]);
    a->tiling.overlap = overlap >= 0 ? overlap : a->tiling.tile / 4;
    if (a->tiling.tile && a->tiling.overlap * 2 > a->tiling.tile)
        sl_die(NULL, "--overlap %d: at most half the tile (%d)", a->tiling.overlap, a->tiling.tile);
}

int forward_vae_encode_main(int argc, char **argv) {
    vae_args a;
    parse(&a, argc, argv, HELP_ENCODE);
    int N = 1, C = 3, H, W;
    float *image = NULL, *noise = NULL;
    st_file *in = NULL;
    if (ends_with(a.in, ".safetensors")) {
        if (!(in = st_open(a.in))) sl_fail();
        const st_entry *e = input_tensor(in, "image", 4, "(N, 3, H, W) in [-1, 1]");
        N = (int)e->shape[0], C = (int)e->shape[1], H = (int)e->shape[2], W = (int)e->shape[3];
        if (!(image = st_load_f32(in, "image", -1, NULL))) sl_fail();
    } else {
        if (!(image = image_load(a.in, &H, &W))) sl_fail();
    }
    double t0 = now_seconds();
    vae_model *m = vae_load(a.model, a.config, a.variant, VAE_ENCODER);
    if (!m) sl_fail();
    double t_load = now_seconds() - t0;
    const vae_config *c = &m->cfg;
    int f = vae_factor(c), L = c->latent_channels;
    if (C != c->in_channels) sl_die(a.in, "the image has %d channels but the VAE takes %d", C, c->in_channels);
    if (N < 1 || H < f || W < f || H % f || W % f)
        sl_die(a.in, "image size %dx%d must be a positive multiple of %d (the VAE's downsampling factor)", W, H, f);
    int h = H / f, w = W / f;
    int64_t lat_shape[4] = {N, L, h, w};
    if (in && st_find(in, "noise") && !(noise = st_load_f32(in, "noise", 4, lat_shape))) sl_fail();
    if (a.seed >= 0) {
        if (noise) sl_die(a.in, "has a `noise` tensor and --seed was given: use one or the other");
        sl_rng rng;
        sl_rng_seed(&rng, (uint64_t)a.seed);
        noise = sl_alloc_f32(shape_numel(4, lat_shape));
        sl_rng_randn(&rng, noise, (size_t)shape_numel(4, lat_shape));
    }

    double rss_loaded = proc_status_mb("VmRSS");
    reset_peak_rss();
    t0 = now_seconds();
    float *moments = sl_alloc_f32((int64_t)N * 2 * L * h * w);
    if (a.tiling.tile) vae_encode_tiled(m, moments, image, N, H, W, a.tiling);
    else vae_encode(m, moments, image, N, H, W);
    report("vae-encode", t_load, now_seconds() - t0, rss_loaded);
    int64_t n = (int64_t)N * L * h * w;
    float *mean = sl_alloc_f32(n), *logvar = sl_alloc_f32(n), *stdv = sl_alloc_f32(n), *sample = sl_alloc_f32(n);
    vae_posterior(c, mean, logvar, noise ? sample : NULL, moments, noise, N, h, w);
    for (int64_t i = 0; i < n; i++) stdv[i] = expf(0.5f * logvar[i]);

    st_writer *wr = st_writer_new();
    int64_t mom_shape[4] = {N, 2 * L, h, w};
    st_writer_add(wr, "moments", DT_F32, 4, mom_shape, moments);
    st_writer_add(wr, "mean", DT_F32, 4, lat_shape, mean);
    st_writer_add(wr, "logvar", DT_F32, 4, lat_shape, logvar);
    st_writer_add(wr, "std", DT_F32, 4, lat_shape, stdv);
    if (noise) st_writer_add(wr, "sample", DT_F32, 4, lat_shape, sample);
    char sf[32];
    snprintf(sf, sizeof sf, "%.9g", c->scaling_factor);
    st_writer_meta(wr, "scaling_factor", sf);
    if (st_writer_save(wr, a.out)) sl_fail();
    st_writer_free(wr);
    printf("vae-encode: %d x %dx%d -> latent %dx%d, wrote %s\n", N, W, H, w, h, a.out);
    sl_free_aligned(moments), sl_free_aligned(mean), sl_free_aligned(logvar), sl_free_aligned(stdv);
    sl_free_aligned(sample), sl_free_aligned(image), sl_free_aligned(noise);
    st_close(in);
    vae_free(m);
    return 0;
}

int forward_vae_decode_main(int argc, char **argv) {
    vae_args a;
    parse(&a, argc, argv, HELP_DECODE);
    if (!ends_with(a.in, ".safetensors")) sl_die(a.in, "--in must be a .safetensors file with a 'latent' tensor");
    if (!ends_with(a.out, ".safetensors") && !ends_with(a.out, ".png"))
        sl_die(a.out, "--out must end in .safetensors or .png");
    st_file *in = st_open(a.in);
    if (!in) sl_fail();
    const st_entry *e = input_tensor(in, "latent", 4, "(N, 4, h, w), already divided by the scaling factor");
    int N = (int)e->shape[0], C = (int)e->shape[1], h = (int)e->shape[2], w = (int)e->shape[3];
    double t0 = now_seconds();
    vae_model *m = vae_load(a.model, a.config, a.variant, VAE_DECODER);
    if (!m) sl_fail();
    double t_load = now_seconds() - t0;
    const vae_config *c = &m->cfg;
    if (C != c->latent_channels) sl_die(a.in, "the latent has %d channels but the VAE takes %d", C, c->latent_channels);
    int f = vae_factor(c);
    if (N < 1 || h < 1 || w < 1 || (int64_t)h * f > 16384 || (int64_t)w * f > 16384)
        sl_die(a.in, "latent size %dx%d is out of range", w, h);
    float *latent = st_load_f32(in, "latent", -1, NULL);
    if (!latent) sl_fail();
    int H = h * f, W = w * f, Co = c->out_channels;
    double rss_loaded = proc_status_mb("VmRSS");
    reset_peak_rss();
    t0 = now_seconds();
    float *image = sl_alloc_f32((int64_t)N * Co * H * W);
    if (a.tiling.tile) vae_decode_tiled(m, image, latent, N, h, w, a.tiling);
    else vae_decode(m, image, latent, N, h, w);
    report("vae-decode", t_load, now_seconds() - t0, rss_loaded);
    if (ends_with(a.out, ".png")) {
        for (int n = 0; n < N; n++) {
            char path[4096];
            if (N == 1) snprintf(path, sizeof path, "%s", a.out);
            else snprintf(path, sizeof path, "%.*s_%d.png", (int)(strlen(a.out) - 4), a.out, n);
            if (image_save_png(path, image + (int64_t)n * Co * H * W, Co, H, W)) sl_fail();
        }
    } else {
        st_writer *wr = st_writer_new();
        int64_t shape[4] = {N, Co, H, W};
        st_writer_add(wr, "image", DT_F32, 4, shape, image);
        if (st_writer_save(wr, a.out)) sl_fail();
        st_writer_free(wr);
    }
    printf("vae-decode: %d x latent %dx%d -> %dx%d, wrote %s\n", N, w, h, W, H, a.out);
    sl_free_aligned(image), sl_free_aligned(latent);
    st_close(in);
    vae_free(m);
    return 0;
}
