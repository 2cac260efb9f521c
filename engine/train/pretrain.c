// Pretraining: VAE, latent cache, UNet; checkpoints, the log and the diffusers folder.
#include "engine/train/pretrain.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
#include <time.h>

#include "clip/backward.h"
#include "clip/text_encoder.h"
#include "clip/tokenizer.h"
#include "engine/core/error.h"
#include "engine/core/rng.h"
#include "engine/core/tensor.h"
#include "engine/diffusion/schedule.h"
#include "engine/io/atomic_file.h"
#include "engine/io/config.h"
#include "engine/io/file_read.h"
#include "engine/io/model_files.h"
#include "engine/io/safetensors.h"
#include "data/world/dataset.h"
#include "engine/train/full_params.h"
#include "engine/train/loss_plot.h"
#include "engine/train/step.h"
#include "engine/train/lr_schedule.h"
#include "pipeline/model_writer.h"
#include "unet/unet.h"
#include "vae/backward.h"
#include "vae/vae.h"

#define CTX_LEN 77

// ---------------------------------------------------------------- the stand-in data source

static const char *SQ_NAMES[6] = {"red", "green", "blue", "yellow", "white", "black"};
static const uint8_t SQ_RGB[6][3] = {{220, 30, 30}, {30, 180, 40}, {30, 60, 220}, {240, 220, 30}, {245, 245, 245}, {15, 15, 15}};

static uint64_t mix64(uint64_t z) {
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static void squares_example(void *ctx, uint64_t index, uint8_t *rgb, char *caption) {
    const pretrain_source *sq = ctx;
    const int size = sq->size;
    uint64_t s = mix64(sq->seed ^ mix64(index + 1));
    int bg = (int)((s >> 8) % 6), fg = (int)((s >> 16) % 5);
    if (fg >= bg) fg++;
    int side = size / 4 + (int)((s >> 24) % (uint64_t)(size / 4 + 1));
    int x0 = (int)((s >> 32) % (uint64_t)(size - side + 1)), y0 = (int)((s >> 44) % (uint64_t)(size - side + 1));
    for (int y = 0; y < size; y++)
        for (int x = 0; x < size; x++) {
            int in = x >= x0 && x < x0 + side && y >= y0 && y < y0 + side;
            memcpy(rgb + ((size_t)y * size + x) * 3, SQ_RGB[in ? fg : bg], 3);
        }
    snprintf(caption, PRETRAIN_CAPTION_MAX, "a %s square on a %s background", SQ_NAMES[fg], SQ_NAMES[bg]);
}

pretrain_data pretrain_data_squares(pretrain_source *sq) {
    return (pretrain_data){"squares", sq->size, squares_example, NULL, sq};
}

static void world_source(void *ctx, uint64_t index, uint8_t *rgb, char *caption) {
    const pretrain_source *w = ctx;
    char cap[CAPTION_MAX];
    world_example(w->seed, index, w->size, rgb, cap, NULL);
    snprintf(caption, PRETRAIN_CAPTION_MAX, "%s", cap);
}

pretrain_data pretrain_data_world(pretrain_source *src) { return (pretrain_data){"world", src->size, world_source, NULL, src}; }

static void world_vae_source(void *ctx, uint64_t index, uint8_t *rgb) {
    const pretrain_source *w = ctx;
    world_vae_example(w->seed, index, w->size, rgb, NULL);
}

pretrain_data pretrain_data_world_vae_subjects(pretrain_source *src) {
    return (pretrain_data){"world (VAE: and subjects)", src->size, world_source, world_vae_source, src};
}

// ---------------------------------------------------------------- defaults

pretrain_opts pretrain_defaults(void) {
    pretrain_opts o = {0};
    o.config = "configs/toyworld";
    o.vae_steps = 1200, o.vae_batch = 8, o.vae_crop = 32, o.vae_lr = 1e-3, o.vae_kl_start = 900, o.vae_kl_weight = 1e-4;
    o.n_latents = 16384;
    o.unet_steps = 6000, o.unet_batch = 64, o.unet_warmup = 200, o.unet_lr_schedule = LR_CONSTANT_WITH_WARMUP;
    o.unet_lr = 1e-3, o.ema_decay = 0.999, o.cond_drop = 0.1, o.grad_clip = 1.0, o.weight_decay = 1e-2;
    // A frozen random text encoder at width 24 binds shapes but not which colour is the
    // background (the first base: 7 % background, 30 % object colour on held-out captions).
    o.text_lr = 1e-3;
    o.ckpt_every_s = 300, o.log_every = 25;
    return o;
}

// ---------------------------------------------------------------- files

static int mkdir_p(const char *dir) {
    char buf[4096];
    if ((size_t)snprintf(buf, sizeof buf, "%s", dir) >= sizeof buf) return sl_error(dir, "path too long");
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || !*p) {
            char c = *p;
            *p = 0;
            if (mkdir(buf, 0755) != 0 && errno != EEXIST) return sl_error(buf, "cannot create folder: %s", strerror(errno));
            *p = c;
            if (!c) break;
        }
    }
    return 0;
}

static int write_text(const char *path, const char *text) {
    size_t len = strlen(text);
    const void *bufs[1] = {text};
    return atomic_write(path, bufs, &len, 1);
}

static int copy_text(const char *from, const char *to) {
    size_t n;
    char *data = read_file(from, &n, 1 << 20, "config");
    if (!data) return -1;
    const void *bufs[1] = {data};
    int rc = atomic_write(to, bufs, &n, 1);
    free(data);
    return rc;
}

#define PATH(buf, ...) do { if ((size_t)snprintf(buf, sizeof buf, __VA_ARGS__) >= sizeof buf) return sl_error(NULL, "path too long: %s", buf); } while (0)

// ---------------------------------------------------------------- weights as writer sources

static int unet_walk_cb(void *m, param_visitor fn, void *ctx) { return unet_walk(m, fn, ctx); }
static int vae_walk_cb(void *m, param_visitor fn, void *ctx) { return vae_walk(m, VAE_BOTH, fn, ctx); }
static int text_walk_cb(void *m, param_visitor fn, void *ctx) { return clip_text_walk(m, fn, ctx); }

typedef struct {
    const char *name;
    const float *found;
    int64_t n;
} find_ctx;

static int find_visitor(void *ctx, const param_desc *p) {
    find_ctx *f = ctx;
    if (!strcmp(p->name, f->name)) {
        f->found = *p->slot;
        f->n = shape_numel(p->ndim, p->shape);
        return 1;
    }
    return 0;
}

typedef struct {
    void *model;
    fp_walk walk;
} model_src;

static int model_source(void *ctx, const mw_param *mp, mw_data *d) {
    model_src *s = ctx;
    find_ctx f = {mp->p->name, NULL, 0};
    s->walk(s->model, find_visitor, &f);
    if (!f.found || f.n != shape_numel(mp->p->ndim, mp->p->shape))
        return sl_error(NULL, "pretrain: the trained %s has no parameter '%s' of that shape", mp->component, mp->p->name);
    d->f32 = sl_alloc_f32(f.n);
    memcpy(d->f32, f.found, sizeof(float) * (size_t)f.n);
    return 0;
}

// `init`'s random weights (uniform ±1/sqrt(fan_in), norms 1 and 0), element i a function of
// (seed, name, i): the frozen text encoder equals `singlora init --seed S`'s.
static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}
static uint64_t fin64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}
static void random_fill(float *data, const param_desc *p, uint64_t seed) {
    int64_t n = shape_numel(p->ndim, p->shape);
    if (p->kind == PARAM_NORM_WEIGHT || p->kind == PARAM_NORM_BIAS) {
        float v = p->kind == PARAM_NORM_WEIGHT ? 1.0f : 0.0f;
        for (int64_t i = 0; i < n; i++) data[i] = v;
        return;
    }
    float bound = 1.0f / sqrtf((float)(p->fan_in > 0 ? p->fan_in : 1));
    uint64_t key = fin64(seed ^ hash_str(p->name));
    for (int64_t i = 0; i < n; i++) {
        double u = (double)(fin64(key + 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1)) >> 11) * 0x1p-53;
        data[i] = (float)((2.0 * u - 1.0) * bound);
    }
}
static int random_source(void *ctx, const mw_param *mp, mw_data *d) {
    d->f32 = sl_alloc_f32(shape_numel(mp->p->ndim, mp->p->shape));
    random_fill(d->f32, mp->p, *(const uint64_t *)ctx);
    return 0;
}
static int random_visitor(void *ctx, const param_desc *p) {
    *p->slot = sl_alloc_f32(shape_numel(p->ndim, p->shape));
    random_fill(*p->slot, p, *(const uint64_t *)ctx);
    return 0;
}

// ---------------------------------------------------------------- the folder

// Configs, scheduler, tokenizer, model_index.json, and the random text encoder when absent.
static int write_skeleton(const pretrain_opts *o, double scaling) {
    char a[4096], b[4096];
    const char *sub[] = {"unet", "vae", "text_encoder", "scheduler", "tokenizer"};
    for (int i = 0; i < 5; i++) {
        PATH(a, "%s/%s", o->out, sub[i]);
        if (mkdir_p(a)) return -1;
    }
    PATH(a, "%s/unet/config.json", o->config); PATH(b, "%s/unet/config.json", o->out);
    if (copy_text(a, b)) return -1;
    PATH(a, "%s/text_encoder/config.json", o->config); PATH(b, "%s/text_encoder/config.json", o->out);
    if (copy_text(a, b)) return -1;
    PATH(a, "%s/scheduler/scheduler_config.json", o->config); PATH(b, "%s/scheduler/scheduler_config.json", o->out);
    if (copy_text(a, b)) return -1;
    // the VAE's config with the latent scaling factor measured on the data
    PATH(a, "%s/vae/config.json", o->config);
    json_config *j = config_load(a);
    if (!j) return -1;
    cJSON *root = cJSON_Duplicate(j->root, 1);
    config_free(j);
    cJSON_DeleteItemFromObjectCaseSensitive(root, "scaling_factor");
    cJSON_AddNumberToObject(root, "scaling_factor", scaling);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    PATH(b, "%s/vae/config.json", o->out);
    int rc = write_text(b, text);
    free(text);
    if (rc) return -1;
    PATH(b, "%s/tokenizer/bpe_simple_vocab_16e6.txt.gz", o->out);
    if (!path_exists(b)) {
        size_t n;
        const void *bufs[1] = {clip_default_vocab_gz(&n)};
        if (atomic_write(b, bufs, &n, 1)) return -1;
    }
    PATH(b, "%s/model_index.json", o->out);
    if (write_text(b, "{\n  \"_class_name\": \"StableDiffusionPipeline\",\n"
                      "  \"scheduler\": [\"diffusers\", \"DDIMScheduler\"],\n"
                      "  \"text_encoder\": [\"transformers\", \"CLIPTextModel\"],\n"
                      "  \"tokenizer\": [\"transformers\", \"CLIPTokenizer\"],\n"
                      "  \"unet\": [\"diffusers\", \"UNet2DConditionModel\"],\n"
                      "  \"vae\": [\"diffusers\", \"AutoencoderKL\"],\n"
                      "  \"safety_checker\": [null, null],\n  \"feature_extractor\": [null, null],\n"
                      "  \"requires_safety_checker\": false\n}\n"))
        return -1;
    PATH(b, "%s/text_encoder/model.safetensors", o->out);
    if (!o->init_from && !path_exists(b)) {   // a continued run writes the one it starts from
        model_writer *w = mw_new(0, DT_F16);
        uint64_t seed = o->seed;
        rc = mw_add_component(w, "text_encoder", o->out, random_source, &seed) || mw_save(w, b);
        mw_free(w);
        if (rc) return -1;
    }
    return 0;
}

static int write_component(const pretrain_opts *o, const char *component, void *model, fp_walk walk) {
    char b[4096];
    int c = mw_component_find(component);
    PATH(b, "%s/%s/%s.safetensors", o->out, component, MW_COMPONENTS[c].weights);
    model_writer *w = mw_new(0, DT_F16);
    model_src src = {model, walk};
    int rc = mw_add_component(w, component, o->out, model_source, &src) || mw_save(w, b);
    mw_free(w);
    return rc ? -1 : 0;
}

// ---------------------------------------------------------------- shared pieces

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

// The generator of step k of a phase: a pure function of (seed, phase, k).
static void step_rng(sl_rng *r, uint64_t seed, int phase, int64_t k) {
    sl_rng_seed(r, mix64(seed ^ mix64(((uint64_t)phase << 48) ^ (uint64_t)k)));
}

// images (B, 3, S, S) in [-1, 1] and captions of examples idx[0..B-1]; caps NULL: the VAE's images
static void load_batch(const pretrain_data *d, const uint64_t *idx, int B, float *img, char (*caps)[PRETRAIN_CAPTION_MAX]) {
    const int S = d->size;
    const int64_t HW = (int64_t)S * S;
#pragma omp parallel for schedule(dynamic)
    for (int b = 0; b < B; b++) {
        uint8_t *rgb = malloc((size_t)HW * 3);
        char cap[PRETRAIN_CAPTION_MAX];
        if (!caps && d->vae_example) d->vae_example(d->ctx, idx[b], rgb);
        else d->example(d->ctx, idx[b], rgb, cap);
        for (int64_t i = 0; i < HW; i++)
            for (int ch = 0; ch < 3; ch++) img[((int64_t)b * 3 + ch) * HW + i] = rgb[i * 3 + ch] / 127.5f - 1.0f;
        if (caps) memcpy(caps[b], cap, PRETRAIN_CAPTION_MAX);
        free(rgb);
    }
}

// log.csv: phase, optimizer step, loss (VAE: L1 + L2 reconstruction; UNet: MSE to the scheduler's target, v for the toy world), aux (VAE: the
// KL term; UNet: the EMA decay), lr, gradient norm before clipping, mean seconds per step
static int open_log(const pretrain_opts *o, FILE **out) {
    char p[4096];
    PATH(p, "%s/log.csv", o->ckpt);
    int fresh = !path_exists(p);
    FILE *f = fopen(p, "a");
    if (!f) return sl_error(p, "cannot open the log: %s", strerror(errno));
    if (fresh) fprintf(f, "phase,step,loss,aux,lr,grad_norm,sec_per_step\n");
    *out = f;
    return 0;
}

// ---------------------------------------------------------------- phase 1: the VAE

static int train_vae(const pretrain_opts *o, const pretrain_data *d, vae_model *vae, FILE *log) {
    char ck[4096];
    PATH(ck, "%s/vae_state.safetensors", o->ckpt);
    vae_model *g = vae_grads_new(vae);
    full_params *fp = full_params_new(vae, g, vae_walk_cb);
    if (!fp) return -1;
    if (o->resume && path_exists(ck) && full_params_load(fp, ck, NULL, NULL)) {
        full_params_free(fp), vae_free(g);
        return -1;
    }
    // the VAE is convolutional: it trains on random crops (C × C, a multiple of its factor) of
    // the rendered images, as SD's VAE trained on 256 px crops for 512 px use
    const int B = o->vae_batch, full = d->size, f = vae_factor(&vae->cfg), L = vae->cfg.latent_channels;
    const int S = o->vae_crop > 0 && o->vae_crop < full ? o->vae_crop / f * f : full, h = S / f;
    if (S < f) return sl_error(NULL, "pretrain: --vae-crop %d is smaller than the VAE's factor %d", o->vae_crop, f);
    const int64_t nimg = (int64_t)B * 3 * S * S, nlat = (int64_t)B * L * h * h, nmom = 2 * nlat;
    float *img = sl_alloc_f32(nimg), *rec = sl_alloc_f32(nimg), *drec = sl_alloc_f32(nimg);
    float *whole = sl_alloc_f32((int64_t)B * 3 * full * full);
    float *mom = sl_alloc_f32(nmom), *dmom = sl_alloc_f32(nmom), *z = sl_alloc_f32(nlat), *dz = sl_alloc_f32(nlat);
    float *eps = sl_alloc_f32(nlat);
    uint64_t *idx = malloc(sizeof(uint64_t) * B);
    lr_schedule lr = {LR_CONSTANT_WITH_WARMUP, o->vae_lr, o->vae_steps / 10 < 100 ? o->vae_steps / 10 : 100, o->vae_steps};
    adamw_opts ao = {0.9, 0.999, 1e-8, 0.0};
    double t_last_ck = now_s(), t0 = now_s(), loss_acc = 0;
    int n_acc = 0, rc = 0;
    int64_t step0 = fp->step;
    if (fp->step < o->vae_steps)
        fprintf(stderr, "pretrain: VAE from step %lld to %d (batch %d, %dx%d crops of %dx%d -> %dx%dx%d)\n",
                (long long)fp->step, o->vae_steps, B, S, S, full, full, h, h, L);
    while (fp->step < o->vae_steps) {
        int64_t k = fp->step;
        for (int b = 0; b < B; b++) idx[b] = (uint64_t)k * B + b + (1ull << 40);   // not the latent-cache examples
        load_batch(d, idx, B, whole, NULL);
        sl_rng r;
        step_rng(&r, o->seed, 1, k);
        for (int b = 0; b < B; b++) {   // crop offsets on the latent grid
            int y0 = f * (int)sl_rng_randint(&r, (uint64_t)((full - S) / f + 1));
            int x0 = f * (int)sl_rng_randint(&r, (uint64_t)((full - S) / f + 1));
            for (int ch = 0; ch < 3; ch++)
                for (int y = 0; y < S; y++)
                    memcpy(img + (((int64_t)b * 3 + ch) * S + y) * S,
                           whole + (((int64_t)b * 3 + ch) * full + y0 + y) * full + x0, sizeof(float) * S);
        }
        full_params_zero_grads(fp);
        vae_tape *te = vae_encode_train(vae, g, mom, img, B, S, S);
        int sampled = k >= o->vae_kl_start;
        sl_rng_randn(&r, eps, (size_t)nlat);
        vae_posterior(&vae->cfg, sampled ? NULL : z, NULL, sampled ? z : NULL, mom, eps, B, h, h);
        vae_tape *td = vae_decode_train(vae, g, rec, z, B, h, h);
        double l1 = 0, l2 = 0;
        const double inv = 1.0 / (double)nimg;
#pragma omp parallel for reduction(+ : l1, l2) schedule(static)
        for (int64_t i = 0; i < nimg; i++) {
            double e = (double)rec[i] - img[i];
            l1 += fabs(e), l2 += e * e;
            drec[i] = (float)(((e > 0) - (e < 0)) * inv + 2.0 * e * inv);
        }
        l1 *= inv, l2 *= inv;
        memset(dz, 0, sizeof(float) * (size_t)nlat);
        memset(dmom, 0, sizeof(float) * (size_t)nmom);
        if (vae_tape_backward(td, dz, drec)) rc = -1;
        double kl = vae_posterior_backward(&vae->cfg, dmom, dz, mom, sampled ? eps : NULL, B, h, h,
                                           sampled ? o->vae_kl_weight : 0.0, (double)nimg);
        if (vae_tape_backward(te, NULL, dmom)) rc = -1;
        vae_tape_free(te), vae_tape_free(td);
        if (rc) break;
        double gn = full_params_grad_norm(fp);
        if (train_check_finite(fp->step + 1, "VAE loss", l1 + l2) || train_check_finite(fp->step + 1, "VAE gradient norm", gn)) {
            rc = -1;
            break;
        }
        full_params_clip(fp, gn, o->grad_clip);
        double lrk = lr_schedule_at(&lr, k + 1);
        full_params_adamw(fp, lrk, &ao);
        loss_acc += l1 + l2, n_acc++;
        double t = now_s(), sps = (t - t0) / (double)(fp->step - step0);
        if (log) fprintf(log, "vae,%lld,%.6f,%.6g,%.3g,%.4g,%.3f\n", (long long)fp->step, l1 + l2, kl, lrk, gn, sps), fflush(log);
        if (fp->step % o->log_every == 0 || fp->step == o->vae_steps) {
            fprintf(stderr, "pretrain: vae step %lld/%d  rec %.5f (L1 %.4f L2 %.5f)  kl %.3g  %.2f s/step\n",
                    (long long)fp->step, o->vae_steps, loss_acc / n_acc, l1, l2, kl, sps);
            loss_acc = 0, n_acc = 0;
        }
        if (t - t_last_ck >= o->ckpt_every_s || fp->step == o->vae_steps) {
            if (full_params_save(fp, ck, NULL, NULL)) { rc = -1; break; }
            t_last_ck = t;
        }
    }
    free(idx);
    sl_free_aligned(whole);
    sl_free_aligned(img), sl_free_aligned(rec), sl_free_aligned(drec), sl_free_aligned(mom), sl_free_aligned(dmom);
    sl_free_aligned(z), sl_free_aligned(dz), sl_free_aligned(eps);
    // the VAE ships its EMA-free final weights (an autoencoder gains little from EMA)
    full_params_free(fp);
    vae_free(g);
    return rc;
}

// ---------------------------------------------------------------- phase 2: the latent cache

typedef struct {
    int n, L, h;
    float *moments;   // (n, 2L, h, h)
    int32_t *ids;     // (n, 77)
    double scaling;
} latent_cache;

static int build_cache(const pretrain_opts *o, const pretrain_data *d, const vae_model *vae, const clip_tokenizer *tok,
                       latent_cache *c) {
    char p[4096];
    PATH(p, "%s/latents.safetensors", o->ckpt);
    const int S = d->size, f = vae_factor(&vae->cfg), h = S / f, L = vae->cfg.latent_channels, n = o->n_latents;
    const int64_t per = (int64_t)2 * L * h * h;
    c->n = n, c->L = L, c->h = h;
    if (o->resume && path_exists(p)) {
        st_file *sf = st_open(p);
        if (!sf) return -1;
        int64_t ms[4] = {n, 2 * L, h, h};
        c->moments = st_load_f32(sf, "moments", 4, ms);
        const st_entry *e = st_find(sf, "ids");
        const char *sc = st_meta(sf, "scaling_factor");
        int ok = c->moments && e && e->dt == DT_I32 && e->ndim == 2 && e->shape[0] == n && e->shape[1] == CTX_LEN && sc;
        if (ok) {
            c->ids = malloc(sizeof(int32_t) * (size_t)n * CTX_LEN);
            memcpy(c->ids, e->data, sizeof(int32_t) * (size_t)n * CTX_LEN);
            c->scaling = atof(sc);
        }
        st_close(sf);
        if (ok) {
            fprintf(stderr, "pretrain: latent cache %s (%d examples, scaling factor %.5f)\n", p, n, c->scaling);
            return 0;
        }
        sl_free_aligned(c->moments);
        c->moments = NULL;
        return sl_error(p, "latent cache does not match this recipe (%d examples of %dx%dx%d)", n, 2 * L, h, h);
    }
    fprintf(stderr, "pretrain: encoding %d examples to latents\n", n);
    c->moments = sl_alloc_f32((int64_t)n * per);
    c->ids = malloc(sizeof(int32_t) * (size_t)n * CTX_LEN);
    const int B = 32;
    float *img = sl_alloc_f32((int64_t)B * 3 * S * S);
    char(*caps)[PRETRAIN_CAPTION_MAX] = malloc(sizeof *caps * B);
    uint64_t idx[32];
    double t0 = now_s();
    for (int i0 = 0; i0 < n; i0 += B) {
        int nb = n - i0 < B ? n - i0 : B;
        for (int b = 0; b < nb; b++) idx[b] = (uint64_t)(i0 + b);
        load_batch(d, idx, nb, img, caps);
        vae_encode(vae, c->moments + (int64_t)i0 * per, img, nb, S, S);
        for (int b = 0; b < nb; b++) clip_encode(tok, caps[b], CTX_LEN, c->ids + (int64_t)(i0 + b) * CTX_LEN, 1);
    }
    // scaling factor: 1 / std of the posterior means (as SD's 0.18215 was measured)
    double s = 0, s2 = 0;
    int64_t cnt = 0;
    for (int i = 0; i < n; i++)
        for (int64_t j = 0; j < per / 2; j++) {
            double v = c->moments[(int64_t)i * per + j];
            s += v, s2 += v * v, cnt++;
        }
    double mean = s / cnt, sd = sqrt(fmax(s2 / cnt - mean * mean, 1e-12));
    c->scaling = 1.0 / sd;
    fprintf(stderr, "pretrain: %d latents in %.0f s, mean %.4f std %.4f -> scaling factor %.5f\n", n, now_s() - t0, mean,
            sd, c->scaling);
    st_writer *w = st_writer_new();
    int64_t ms[4] = {n, 2 * L, h, h}, is[2] = {n, CTX_LEN};
    st_writer_add(w, "moments", DT_F32, 4, ms, c->moments);
    st_writer_add(w, "ids", DT_I32, 2, is, c->ids);
    char buf[64];
    snprintf(buf, sizeof buf, "%.9g", c->scaling);
    st_writer_meta(w, "scaling_factor", buf);
    int rc = st_writer_save(w, p);
    st_writer_free(w);
    sl_free_aligned(img);
    free(caps);
    return rc;
}

// ---------------------------------------------------------------- phase 3: the UNet

// The text encoder's trainer state when it trains jointly (NULL members when frozen).
typedef struct {
    clip_text_model *grads;
    full_params *fp;
    char ck[4096];
} text_trainer;

static void text_trainer_free(text_trainer *tt) {
    if (tt->fp) full_params_free(tt->fp);
    clip_text_free(tt->grads);
}

// Loads both checkpoints when resuming; a UNet state without the text encoder's (a run begun
// with the text encoder frozen) cannot continue jointly.
static int load_states(const pretrain_opts *o, full_params *fp, const char *ck, text_trainer *tt) {
    if (!o->resume || !path_exists(ck)) return 0;
    if (tt->fp && !path_exists(tt->ck))
        return sl_error(ck, "this UNet state was trained with a frozen text encoder (no %s); rerun without --resume "
                            "or with --text-lr 0", tt->ck);
    if (full_params_load(fp, ck, NULL, NULL)) return -1;
    if (tt->fp && full_params_load(tt->fp, tt->ck, NULL, NULL)) return -1;
    if (tt->fp && tt->fp->step != fp->step)
        return sl_error(tt->ck, "text encoder state at step %lld, UNet state at %lld", (long long)tt->fp->step,
                        (long long)fp->step);
    return 0;
}

// Checkpoint states first, then the folder's EMA weights (a kill between leaves a resumable run).
static int save_states(const pretrain_opts *o, full_params *fp, const char *ck, text_trainer *tt, unet_model *u,
                       clip_text_model *te, int states) {
    if (states && (full_params_save(fp, ck, NULL, NULL) || (tt->fp && full_params_save(tt->fp, tt->ck, NULL, NULL))))
        return -1;
    full_params_swap_ema(fp);
    int rc = write_component(o, "unet", u, unet_walk_cb);
    full_params_swap_ema(fp);
    if (rc || !tt->fp) return rc;
    full_params_swap_ema(tt->fp);
    rc = write_component(o, "text_encoder", te, text_walk_cb);
    full_params_swap_ema(tt->fp);
    return rc;
}

static int train_unet(const pretrain_opts *o, unet_model *u, clip_text_model *te, const clip_tokenizer *tok,
                      const latent_cache *c, FILE *log) {
    char ck[4096];
    PATH(ck, "%s/unet_state.safetensors", o->ckpt);
    unet_model *g = unet_grads_new(u, "all");
    if (!g) return -1;
    full_params *fp = full_params_new(u, g, unet_walk_cb);
    if (!fp) return -1;
    text_trainer tt = {0};
    PATH(tt.ck, "%s/text_state.safetensors", o->ckpt);
    if (o->text_lr > 0) {
        tt.grads = clip_text_grads_new(te);
        tt.fp = full_params_new(te, tt.grads, text_walk_cb);
        if (!tt.fp) {
            text_trainer_free(&tt), full_params_free(fp), unet_free(g);
            return -1;
        }
    }
    if (load_states(o, fp, ck, &tt)) {
        text_trainer_free(&tt), full_params_free(fp), unet_free(g);
        return -1;
    }
    sl_schedule sch;
    char sp[4096];
    PATH(sp, "%s/scheduler/scheduler_config.json", o->out);
    if (sl_schedule_load(&sch, sp)) {
        text_trainer_free(&tt), full_params_free(fp), unet_free(g);
        return -1;
    }
    const int B = o->unet_batch, L = c->L, h = c->h, D = te->cfg.hidden;
    const int64_t per = (int64_t)L * h * h, nx = (int64_t)B * per;
    float *x0 = sl_alloc_f32(nx), *xt = sl_alloc_f32(nx), *noise = sl_alloc_f32(nx), *out = sl_alloc_f32(nx);
    float *dout = sl_alloc_f32(nx), *eps = sl_alloc_f32(nx), *tf = sl_alloc_f32(B), *target = sl_alloc_f32(nx);
    float *ctx = sl_alloc_f32((int64_t)B * CTX_LEN * D), *dctx = sl_alloc_f32((int64_t)B * CTX_LEN * D);
    int64_t *t = malloc(sizeof(int64_t) * B);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * CTX_LEN), empty[CTX_LEN];
    clip_encode(tok, "", CTX_LEN, empty, 0);
    lr_schedule lr = {o->unet_lr_schedule, o->unet_lr, o->unet_warmup, o->unet_steps};
    lr_schedule text_lr = {o->unet_lr_schedule, o->text_lr, o->unet_warmup, o->unet_steps};
    adamw_opts ao = {0.9, 0.999, 1e-8, o->weight_decay};
    double t_last_ck = now_s(), t0 = now_s(), loss_acc = 0;
    int n_acc = 0, rc = 0;
    int64_t step0 = fp->step;
    if (fp->step < o->unet_steps)
        fprintf(stderr, "pretrain: UNet (%lld parameters) from step %lld to %d, batch %d, %dx%dx%d latents; text encoder %s\n",
                (long long)fp->n_params, (long long)fp->step, o->unet_steps, B, L, h, h, tt.fp ? "trained" : "frozen");
    while (fp->step < o->unet_steps) {
        int64_t k = fp->step;
        sl_rng r;
        step_rng(&r, o->seed, o->init_from ? 4 : 3, k);   // a continued run draws new noise, not the first run's again
        sl_rng_randn(&r, noise, (size_t)nx);
        sl_rng_randn(&r, eps, (size_t)nx);
        for (int b = 0; b < B; b++) {
            int i = (int)sl_rng_randint(&r, (uint64_t)c->n);
            t[b] = (int64_t)sl_rng_randint(&r, (uint64_t)sch.T);
            tf[b] = (float)t[b];
            int drop = sl_rng_uniform_f64(&r) < o->cond_drop;
            memcpy(ids + (int64_t)b * CTX_LEN, drop ? empty : c->ids + (int64_t)i * CTX_LEN, sizeof(int32_t) * CTX_LEN);
            const float *mu = c->moments + (int64_t)i * 2 * per, *lv = mu + per;
            for (int64_t j = 0; j < per; j++) {
                float l = lv[j] < -30.0f ? -30.0f : lv[j] > 20.0f ? 20.0f : lv[j];
                x0[b * per + j] = (float)c->scaling * (mu[j] + expf(0.5f * l) * eps[b * per + j]);
            }
        }
        sl_schedule_add_noise(&sch, xt, x0, noise, t, B, per);
        sl_schedule_target(&sch, target, x0, noise, t, B, per);   // ε, v or x0: the scheduler's prediction type
        clip_text_tape *ttape = NULL;
        if (tt.fp) {
            ttape = clip_text_forward_train(te, ids, B, CTX_LEN, ctx);
            if (!ttape) { rc = -1; break; }
        } else if (clip_text_condition(te, ids, B, CTX_LEN, 0, ctx)) {
            rc = -1;
            break;
        }
        full_params_zero_grads(fp);
        if (tt.fp) full_params_zero_grads(tt.fp);
        unet_tape *tape = unet_forward_train(out, xt, tf, ctx, B, h, h, CTX_LEN, u, 0);
        if (!tape) { clip_text_tape_free(ttape); rc = -1; break; }
        double loss = 0;
        const double inv = 1.0 / (double)nx;
#pragma omp parallel for reduction(+ : loss) schedule(static)
        for (int64_t i = 0; i < nx; i++) {
            double e = (double)out[i] - target[i];
            loss += e * e;
            dout[i] = (float)(2.0 * e * inv);
        }
        loss *= inv;
        if (tt.fp) memset(dctx, 0, sizeof(float) * (size_t)B * CTX_LEN * D);
        rc = unet_backward(NULL, tt.fp ? dctx : NULL, g, dout, tape);
        unet_tape_free(tape);
        if (!rc && tt.fp) clip_text_backward(tt.grads, dctx, ttape);
        clip_text_tape_free(ttape);
        if (rc) break;
        // one norm over both models (clip_grad_norm_ over every trained parameter)
        double gu = full_params_grad_norm(fp), gt = tt.fp ? full_params_grad_norm(tt.fp) : 0;
        double gn = sqrt(gu * gu + gt * gt);
        if (train_check_finite(fp->step + 1, "UNet loss", loss) || train_check_finite(fp->step + 1, "gradient norm", gn)) {
            rc = -1;
            break;
        }
        full_params_clip(fp, gn, o->grad_clip);
        double lrk = lr_schedule_at(&lr, k + 1);
        full_params_adamw(fp, lrk, &ao);
        // EMA with diffusers' warm-up: decay min(ema_decay, (1 + k) / (10 + k))
        double dk = fmin(o->ema_decay, (1.0 + (double)fp->step) / (10.0 + (double)fp->step));
        full_params_ema_update(fp, dk);
        if (tt.fp) {
            full_params_clip(tt.fp, gn, o->grad_clip);
            full_params_adamw(tt.fp, lr_schedule_at(&text_lr, k + 1), &ao);
            full_params_ema_update(tt.fp, dk);
        }
        loss_acc += loss, n_acc++;
        double tn = now_s(), sps = (tn - t0) / (double)(fp->step - step0);
        if (log) fprintf(log, "unet,%lld,%.6f,%.4g,%.3g,%.4g,%.3f\n", (long long)fp->step, loss, dk, lrk, gn, sps), fflush(log);
        if (fp->step % o->log_every == 0 || fp->step == o->unet_steps) {
            double eta = sps * (double)(o->unet_steps - fp->step);
            fprintf(stderr, "pretrain: unet step %lld/%d  loss %.5f  grad %.3g  lr %.2g  %.2f s/step  eta %.0f min\n",
                    (long long)fp->step, o->unet_steps, loss_acc / n_acc, gn, lrk, sps, eta / 60);
            loss_acc = 0, n_acc = 0;
        }
        if (tn - t_last_ck >= o->ckpt_every_s || fp->step == o->unet_steps) {   // the folder gets the EMA weights
            if ((rc = save_states(o, fp, ck, &tt, u, te, 1))) break;
            t_last_ck = tn;
        }
    }
    if (rc == 0 && fp->step >= o->unet_steps && step0 == fp->step)   // resumed a finished run: rewrite the folder
        rc = save_states(o, fp, ck, &tt, u, te, 0);
    sl_schedule_free(&sch);
    sl_free_aligned(x0), sl_free_aligned(xt), sl_free_aligned(noise), sl_free_aligned(out), sl_free_aligned(dout);
    sl_free_aligned(eps), sl_free_aligned(tf), sl_free_aligned(ctx), sl_free_aligned(dctx), sl_free_aligned(target);
    free(t), free(ids);
    text_trainer_free(&tt);
    full_params_free(fp);
    unet_free(g);
    return rc;
}

// ---------------------------------------------------------------- the loss curve

// OUT/loss.png: the UNet's loss per step from CKPT/log.csv, with an EMA (0.98) line.
static int write_loss_plot(const pretrain_opts *o) {
    char p[4096], line[256];
    PATH(p, "%s/log.csv", o->ckpt);
    FILE *f = fopen(p, "r");
    if (!f) return sl_error(p, "cannot read the log: %s", strerror(errno));
    int n = 0, cap = 1024;
    int64_t *steps = malloc(sizeof(int64_t) * (size_t)cap);
    float *loss = malloc(sizeof(float) * (size_t)cap), *ema = malloc(sizeof(float) * (size_t)cap);
    double e = 0;
    while (fgets(line, sizeof line, f)) {
        long long k;
        double l;
        if (sscanf(line, "unet,%lld,%lf", &k, &l) != 2) continue;
        if (n == cap) {
            cap *= 2;
            steps = sl_realloc(steps, sizeof(int64_t) * (size_t)cap);
            loss = sl_realloc(loss, sizeof(float) * (size_t)cap);
            ema = sl_realloc(ema, sizeof(float) * (size_t)cap);
        }
        e = n == 0 ? l : 0.98 * e + 0.02 * l;
        steps[n] = k, loss[n] = (float)l, ema[n] = (float)e;
        n++;
    }
    fclose(f);
    PATH(p, "%s/loss.png", o->out);
    int rc = n > 0 ? loss_plot_write(p, steps, loss, ema, n) : 0;
    free(steps), free(loss), free(ema);
    return rc;
}

// ---------------------------------------------------------------- the run

int pretrain_run(const pretrain_opts *o_in, const pretrain_data *d) {
    pretrain_opts o = *o_in;
    char ckbuf[4096], p[4096];
    if (!o.out) return sl_error(NULL, "pretrain: no output folder");
    if (!o.ckpt) {
        PATH(ckbuf, "%s.ckpt", o.out);
        o.ckpt = ckbuf;
    }
    if (o.threads > 0) omp_set_num_threads(o.threads);
    if (o.init_from) {   // its configs describe the models that continue training
        char a[PATH_MAX], b[PATH_MAX];
        if (!realpath(o.init_from, a)) return sl_error(o.init_from, "cannot open the model to continue from: %s", strerror(errno));
        if (realpath(o.out, b) && !strcmp(a, b))
            return sl_error(o.out, "pretrain: --out must differ from --init-from (the folder is rewritten while it trains)");
        o.config = o.init_from;
    }
    if (mkdir_p(o.out) || mkdir_p(o.ckpt)) return -1;
    if (!o.resume) {   // a fresh run: old checkpoints and the text encoder go
        const char *old[] = {"vae_state.safetensors", "unet_state.safetensors", "text_state.safetensors",
                             "latents.safetensors", "log.csv"};
        for (int i = 0; i < 5; i++) {
            PATH(p, "%s/%s", o.ckpt, old[i]);
            remove(p);
        }
        PATH(p, "%s/text_encoder/model.safetensors", o.out);
        remove(p);
    }
    vae_config vc;
    PATH(p, "%s/vae/config.json", o.config);
    if (vae_config_from_json(&vc, p) || vae_config_check(&vc, p)) return -1;
    if (d->size % vae_factor(&vc)) return sl_error(p, "image size %d is not a multiple of the VAE's factor %d", d->size, vae_factor(&vc));
    unet_config uc;
    if (unet_config_load_dir(&uc, o.config)) return -1;
    if (write_skeleton(&o, vc.scaling_factor)) return -1;
    clip_text_model *te = clip_text_load(o.init_from ? o.init_from : o.out, NULL, NULL);
    clip_tokenizer *tok = clip_tokenizer_for_model(o.out, NULL);
    if (!te || !tok || (o.init_from && write_component(&o, "text_encoder", te, text_walk_cb))) {
        clip_text_free(te), clip_tokenizer_free(tok);
        return -1;
    }
    if (te->cfg.hidden != uc.cross_attention_dim) {
        clip_text_free(te), clip_tokenizer_free(tok);
        return sl_error(o.config, "the text encoder's width %d is not the UNet's cross_attention_dim %d", te->cfg.hidden,
                        uc.cross_attention_dim);
    }
    FILE *log = NULL;
    int rc = open_log(&o, &log);
    vae_model *vae = o.init_from ? vae_load(o.init_from, NULL, NULL, VAE_BOTH)
                                 : vae_random(&vc, VAE_BOTH, o.seed ^ 0x7661650000000000ull);
    latent_cache cache = {0};
    if (!vae) rc = -1;
    if (!rc && (!o.init_from || o.vae_continue)) rc = train_vae(&o, d, vae, log);
    if (!rc) rc = build_cache(&o, d, vae, tok, &cache);
    if (!rc) rc = write_skeleton(&o, cache.scaling) || write_component(&o, "vae", vae, vae_walk_cb);
    unet_model *u = NULL;
    if (!rc) {
        if (o.init_from) {
            u = unet_load(o.init_from, NULL, NULL);
        } else {
            u = unet_model_new(&uc);
            uint64_t s = o.seed ^ 0x756e657400000000ull;
            unet_walk(u, random_visitor, &s);
        }
        rc = u ? train_unet(&o, u, te, tok, &cache, log) : -1;
    }
    if (log) fflush(log);
    if (!rc) rc = write_loss_plot(&o);
    if (!rc) fprintf(stderr, "pretrain: wrote %s\n", o.out);
    if (log) fclose(log);
    unet_free(u);
    vae_free(vae);
    clip_text_free(te);
    clip_tokenizer_free(tok);
    sl_free_aligned(cache.moments);
    free(cache.ids);
    return rc;
}
