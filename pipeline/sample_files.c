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
#include "engine/dist/dist.h"
#include "engine/io/atomic_file.h"
#include "pipeline/model_hash.h"

// A1111's sampler names (its PNG Info parser maps them back).
static const char *sampler_display(sl_sampler_kind k) {
    switch (k) {
    case SL_SAMPLER_DDIM: return "DDIM";
    case SL_SAMPLER_EULER: return "Euler";
    case SL_SAMPLER_EULER_A: return "Euler a";
    case SL_SAMPLER_DPMPP_2M: return "DPM++ 2M";
    case SL_SAMPLER_HEUN: return "Heun";
    case SL_SAMPLER_N_KINDS: break;
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
    (void)latents, (void)guided;
    step_ctx *sc = ctx;
    if (i == 0) progress_start(&sc->bar, sc->label, n);
    progress_step(&sc->bar, NULL);
}

static void a1111_parameters(char *out, size_t len, const sd_generate_opts *o, const sd_sample_provenance *p,
                             long long seed, const char *hash) {
    char extra[1024] = "";
    size_t e = 0;
    if (p->init_image_path) e += snprintf(extra + e, sizeof extra - e, ", Denoising strength: %g", (double)o->denoise.strength);
    if (p->clip_skip > 1 && e < sizeof extra) e += snprintf(extra + e, sizeof extra - e, ", Clip skip: %d", p->clip_skip);
    if (p->adapter_path && e < sizeof extra)
        e += snprintf(extra + e, sizeof extra - e, ", Adapter: %s:%g", base_name(p->adapter_path), (double)p->adapter_scale);
    for (int q = 0; q < p->n_loras && e < sizeof extra; q++)
        e += snprintf(extra + e, sizeof extra - e, "%s%s", q ? " " : ", Lora: ", base_name(p->loras[q]));
    const char *neg = o->negative;
    snprintf(out, len,
             "%s\n%s%s%sSteps: %d, Sampler: %s, Schedule type: %s, CFG scale: %g, Seed: %lld, Size: %dx%d, "
             "Model hash: %s, Model: %s%s, Version: singlora %s",
             o->prompt, neg ? "Negative prompt: " : "", neg ? neg : "", neg ? "\n" : "", o->denoise.sampler.steps,
             sampler_display(o->denoise.sampler.kind), o->denoise.sampler.sigmas == SL_SIGMAS_KARRAS ? "Karras" : "Automatic",
             (double)o->denoise.cfg, seed, o->width, o->height, hash, base_name(p->model_path), extra, SINGLORA_VERSION);
}

static cJSON *sidecar(const sd_model *m, const sd_generate_opts *o, const sd_sample_provenance *p, long long seed,
                      const char *hash, const char *params) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "prompt", o->prompt);
    cJSON_AddStringToObject(j, "negative_prompt", o->negative ? o->negative : "");
    cJSON_AddNumberToObject(j, "steps", o->denoise.sampler.steps);
    cJSON_AddStringToObject(j, "sampler", sl_sampler_name(o->denoise.sampler.kind));
    cJSON_AddStringToObject(j, "scheduler", sl_sigmas_name(o->denoise.sampler.sigmas));
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

// Image k's files (PNG with A1111 parameters, JSON sidecar) and its place in the grid.
static int write_image(const sd_model *m, const sd_generate_opts *o, const sd_sample_provenance *p, const char *out_dir,
                       int k, long long s, const char *hash, const float *img, image_grid *grid, int n) {
    char params[8192], png[4200], json[4200];
    a1111_parameters(params, sizeof params, o, p, s, hash);
    snprintf(png, sizeof png, "%s/%05d-%lld.png", out_dir, k, s);
    snprintf(json, sizeof json, "%s/%05d-%lld.json", out_dir, k, s);
    const char *keys[] = {"parameters"}, *vals[] = {params};
    if (image_save_png_text(png, img, 3, o->height, o->width, keys, vals, 1) != 0) return -1;
    cJSON *j = sidecar(m, o, p, s, hash, params);
    int rc = write_json(json, j);
    cJSON_Delete(j);
    if (rc != 0) return -1;
    fprintf(stderr, "wrote %s\n", png);
    if (n > 1) image_grid_put(grid, k, img);
    return 0;
}

int sd_sample_to_folder(const sd_model *m, const sd_generate_opts *o, const sd_sample_provenance *p,
                        const char *out_dir, int n, int64_t seed) {
    sd_generate_opts go = *o;
    step_ctx sc = {0};
    go.denoise.on_step = on_step;
    go.denoise.ctx = &sc;
    sd_generator g;
    if (sd_generator_init(&g, m, &go) != 0) return -1;
    char hash[11];
    model_hash10(p->model_path, hash);
    // several ranks (engine/dist/): round q, rank r makes image q·P + r; rank 0 gathers and writes
    const int P = dist_size(), rank = dist_rank();
    const int64_t npx = (int64_t)3 * o->height * o->width;
    float *img = sl_alloc_f32(npx * P);
    image_grid grid = {0};
    if (n > 1 && rank == 0) image_grid_init(&grid, n, 3, o->height, o->width);
    int rc = 0;
    for (int q = 0; q * P < n && rc == 0; q++) {
        const int k = q * P + rank;
        if (k < n) {
            sc = (step_ctx){0};   // no bar when img2img has nothing left to do
            snprintf(sc.label, sizeof sc.label, "image %d/%d", k + 1, n);
            if ((rc = sd_generate(&g, (uint64_t)(seed + k), img + npx * rank)) != 0) break;
            progress_end(&sc.bar);
        }
        for (int r = 0; r < P && rc == 0; r++) {
            if (q * P + r >= n) break;
            if (P > 1) rc = dist_bcast(img + npx * r, sizeof(float) * (size_t)npx, r);
            if (rc == 0 && rank == 0)
                rc = write_image(m, o, p, out_dir, q * P + r, (long long)seed + q * P + r, hash, img + npx * r, &grid, n);
        }
    }
    if (rc == 0 && n > 1 && rank == 0) {
        char gp[4200];
        snprintf(gp, sizeof gp, "%s/grid.png", out_dir);
        if ((rc = image_grid_save(&grid, gp)) == 0) fprintf(stderr, "wrote %s\n", gp);
    }
    if (n > 1 && rank == 0) image_grid_free(&grid);
    if (rc == 0) rc = dist_barrier();   // rank 0's files are all written
    sl_free_aligned(img);
    sd_generator_free(&g);
    return rc;
}
