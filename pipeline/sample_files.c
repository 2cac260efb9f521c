#include "pipeline/sample_files.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/image_grid.h"
#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "engine/core/tensor.h"
#include "engine/core/version.h"
#include "engine/diffusion/sampler_names.h"
#include "engine/dist/dist.h"
#include "engine/io/atomic_file.h"
#include "pipeline/a1111_params.h"
#include "pipeline/model_hash.h"

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

// The bar starts right before the first model evaluation, when the number of evaluations
// (img2img: those left) is known, so its time and count cover every step.
static void on_start(void *ctx, int n) {
    step_ctx *sc = ctx;
    progress_start(&sc->bar, sc->label, n);
}

static void on_step(void *ctx, int i, int n, const float *latents, const float *guided) {
    (void)i, (void)n, (void)latents, (void)guided;
    progress_step(&((step_ctx *)ctx)->bar, NULL);
}

// A1111's parameters text. Keys A1111 knows keep its names and value formats; singlora's own
// (Timestep spacing, Adapter, Lora, Long prompts) are kept as-is by A1111 and read back by
// `sample --from-png`.
static char *a1111_parameters(const sd_model *m, const sd_generate_opts *o, const sd_sample_provenance *p,
                              long long seed, const char *hash) {
    enum { MAXK = 24 };
    const char *keys[MAXK];
    char vals[MAXK][512];
    int n = 0;
#define KV(k, ...) (keys[n] = (k), snprintf(vals[n], sizeof vals[n], __VA_ARGS__), n++)
    const sl_sampler_opts *so = &o->denoise.sampler;
    sl_spacing sp = sl_sampler_spacing(&m->sched, so);
    KV("Steps", "%d", so->steps);
    KV("Sampler", "%s", sl_sampler_a1111_name(so->kind));
    // A1111's "Uniform" is the evenly spaced (linspace) discrete schedule
    KV("Schedule type", "%s", so->sigmas == SL_SIGMAS_KARRAS ? "Karras" : sp == SL_SPACING_LINSPACE ? "Uniform" : "Automatic");
    KV("CFG scale", "%g", (double)o->denoise.cfg);
    KV("Seed", "%lld", seed);
    KV("Size", "%dx%d", o->width, o->height);
    KV("Model hash", "%s", hash);
    KV("Model", "%s", base_name(p->model_path));
    if (p->init_image_path) KV("Denoising strength", "%g", (double)o->denoise.strength);
    if (p->clip_skip > 1) KV("Clip skip", "%d", p->clip_skip);
    if (so->eta != 0) KV("Eta", "%g", (double)so->eta);
    if (o->no_emphasis) KV("Emphasis", "None");
    KV("Timestep spacing", "%s", sl_spacing_name(sp));
    if (o->long_prompts) KV("Long prompts", "True");
    if (p->adapter_path) KV("Adapter", "%s:%g", base_name(p->adapter_path), (double)p->adapter_scale);
    if (p->n_loras) {
        size_t e = 0;
        keys[n] = "Lora";
        vals[n][0] = 0;
        for (int q = 0; q < p->n_loras && e < sizeof vals[n]; q++)
            e += snprintf(vals[n] + e, sizeof vals[n] - e, "%s%s", q ? " " : "", base_name(p->loras[q]));
        n++;
    }
    KV("Version", "singlora %s", SINGLORA_VERSION);
#undef KV
    const char *vp[MAXK];
    for (int i = 0; i < n; i++) vp[i] = vals[i];
    return a1111_params_format(p->prompt_as_typed ? p->prompt_as_typed : o->prompt, o->negative, keys, vp, n);
}

static cJSON *sidecar(const sd_model *m, const sd_generate_opts *o, const sd_sample_provenance *p, long long seed,
                      const char *hash, const char *params) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "prompt", p->prompt_as_typed ? p->prompt_as_typed : o->prompt);
    cJSON_AddStringToObject(j, "negative_prompt", o->negative ? o->negative : "");
    cJSON_AddNumberToObject(j, "steps", o->denoise.sampler.steps);
    cJSON_AddStringToObject(j, "sampler", sl_sampler_name(o->denoise.sampler.kind));
    cJSON_AddStringToObject(j, "scheduler", sl_sigmas_name(o->denoise.sampler.sigmas));
    cJSON_AddStringToObject(j, "timestep_spacing", sl_spacing_name(sl_sampler_spacing(&m->sched, &o->denoise.sampler)));
    cJSON_AddNumberToObject(j, "cfg_scale", o->denoise.cfg);
    cJSON_AddNumberToObject(j, "seed", (double)seed);
    cJSON_AddNumberToObject(j, "width", o->width);
    cJSON_AddNumberToObject(j, "height", o->height);
    cJSON_AddStringToObject(j, "model", p->model_path);
    cJSON_AddStringToObject(j, "model_hash", hash);
    cJSON_AddStringToObject(j, "prediction_type", sl_prediction_name(m->sched.prediction));
    if (p->init_image_path) {
        cJSON_AddStringToObject(j, "init_image", p->init_image_path);
        cJSON_AddNumberToObject(j, "strength", o->denoise.strength);
    }
    if (p->clip_skip > 1) cJSON_AddNumberToObject(j, "clip_skip", p->clip_skip);
    if (p->adapter_path) {
        cJSON_AddStringToObject(j, "adapter", p->adapter_path);
        cJSON_AddNumberToObject(j, "adapter_scale", p->adapter_scale);
    }
    if (p->n_loras) {
        cJSON *arr = cJSON_AddArrayToObject(j, "loras");
        for (int q = 0; q < p->n_loras; q++) cJSON_AddItemToArray(arr, cJSON_CreateString(p->loras[q]));
    }
    cJSON_AddStringToObject(j, "parameters", params);
    return j;
}

static int write_json(const char *path, cJSON *j) {
    char *text = cJSON_Print(j);
    const void *bufs[2] = {text, "\n"};
    size_t lens[2] = {strlen(text), 1};
    int rc = atomic_write(path, bufs, lens, 2);
    free(text);
    return rc;
}

// Image k's PNG and JSON paths: out_dir/NNNNN-SEED.png, or (file mode) FILE.png, FILE_2.png, ...
static void image_paths(const char *out_dir, const char *file, int k, long long seed, char *png, char *json, size_t len) {
    if (!file) {
        snprintf(png, len, "%s/%05d-%lld.png", out_dir, k, seed);
        snprintf(json, len, "%s/%05d-%lld.json", out_dir, k, seed);
        return;
    }
    const char *slash = strrchr(file, '/'), *dot = strrchr(file, '.');
    int stem = dot && (!slash || dot > slash) ? (int)(dot - file) : (int)strlen(file);
    const char *ext = file + stem;
    if (k == 0) snprintf(png, len, "%s", file);
    else snprintf(png, len, "%.*s_%d%s", stem, file, k + 1, ext);
    if (k == 0) snprintf(json, len, "%.*s.json", stem, file);
    else snprintf(json, len, "%.*s_%d.json", stem, file, k + 1);
}

// Image k's files (PNG with A1111 parameters, JSON sidecar) and its place in the grid.
static int write_image(const sd_model *m, const sd_generate_opts *o, const sd_sample_provenance *p, const char *out_dir,
                       const char *file, int k, long long s, const char *hash, const float *img, image_grid *grid,
                       int with_grid) {
    char png[4200], json[4200];
    char *params = a1111_parameters(m, o, p, s, hash);
    image_paths(out_dir, file, k, s, png, json, sizeof png);
    const char *keys[] = {"parameters"}, *vals[] = {params};
    int rc = image_save_png_text(png, img, 3, o->height, o->width, keys, vals, 1);
    if (rc == 0) {
        cJSON *j = sidecar(m, o, p, s, hash, params);
        rc = write_json(json, j);
        cJSON_Delete(j);
    }
    free(params);
    if (rc != 0) return -1;
    fprintf(stderr, "wrote %s\n", png);
    if (with_grid) image_grid_put(grid, k, img);
    return 0;
}

static int sample_images(sd_model *m, const sd_generate_opts *o, const sd_sample_provenance *p, const char *out_dir,
                         const char *file, int n, int64_t seed, int release) {
    sd_generate_opts go = *o;
    step_ctx sc = {0};
    go.denoise.on_start = on_start;
    go.denoise.on_step = on_step;
    go.denoise.ctx = &sc;
    sd_generator g;
    if (sd_generator_init(&g, m, &go) != 0) return -1;
    if (release) {   // the prompts are encoded: the text encoder's part is done
        clip_text_free(m->text);
        m->text = NULL;
        sl_memory_release();
    }
    char hash[11];
    model_hash10(p->model_path, hash);
    // several ranks (engine/dist/): round q, rank r makes image q·P + r; rank 0 gathers and writes
    const int P = dist_size(), rank = dist_rank();
    const int64_t npx = (int64_t)3 * o->height * o->width;
    float *img = sl_alloc_f32(npx * P), *lat = sl_alloc_f32((int64_t)g.C * g.h * g.w);
    image_grid grid = {0};
    const int with_grid = n > 1 && !file;
    if (with_grid && rank == 0) image_grid_init(&grid, n, 3, o->height, o->width);
    int rc = 0;
    for (int q = 0; q * P < n && rc == 0; q++) {
        const int k = q * P + rank;
        if (k < n) {
            sc = (step_ctx){0};   // no bar when img2img has nothing left to do
            snprintf(sc.label, sizeof sc.label, "image %d/%d", k + 1, n);
            if ((rc = sd_generate_latents(&g, (uint64_t)(seed + k), lat)) != 0) break;
            progress_end(&sc.bar);
        }
        if (release && (q + 1) * P >= n) {   // the last round's latents are made: the UNet is done
            unet_free(m->unet);
            m->unet = NULL;
            sl_memory_release();
        }
        if (k < n) sd_generator_decode(&g, lat, img + npx * rank);
        for (int r = 0; r < P && rc == 0; r++) {
            if (q * P + r >= n) break;
            if (P > 1) rc = dist_bcast(img + npx * r, sizeof(float) * (size_t)npx, r);
            if (rc == 0 && rank == 0)
                rc = write_image(m, o, p, out_dir, file, q * P + r, (long long)seed + q * P + r, hash, img + npx * r, &grid,
                                 with_grid);
        }
    }
    if (rc == 0 && with_grid && rank == 0) {
        char gp[4200];
        snprintf(gp, sizeof gp, "%s/grid.png", out_dir);
        if ((rc = image_grid_save(&grid, gp)) == 0) fprintf(stderr, "wrote %s\n", gp);
    }
    if (with_grid && rank == 0) image_grid_free(&grid);
    if (rc == 0) rc = dist_barrier();   // rank 0's files are all written
    sl_free_aligned(img);
    sl_free_aligned(lat);
    sd_generator_free(&g);
    return rc;
}

int sd_sample_to_folder(sd_model *m, const sd_generate_opts *o, const sd_sample_provenance *p, const char *out_dir,
                        int n, int64_t seed, int release) {
    return sample_images(m, o, p, out_dir, NULL, n, seed, release);
}

int sd_sample_to_file(sd_model *m, const sd_generate_opts *o, const sd_sample_provenance *p, const char *png_path,
                      int n, int64_t seed, int release) {
    return sample_images(m, o, p, NULL, png_path, n, seed, release);
}
