// The training loop of `singlora train` (trainer.h): data, prior-preservation class images,
// caches, adapter creation or resume, the optimizer steps, checkpoints, validation, outputs.
#include "engine/train/trainer.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "data/image.h"
#include "engine/adapters/adapter_set.h"
#include "engine/kernels/gemm.h"
#include "engine/io/atomic_file.h"
#include "engine/core/error.h"
#include "engine/adapters/lora_files.h"
#include "engine/core/progress.h"
#include "engine/io/safetensors.h"
#include "engine/core/tensor.h"
#include "engine/core/sha256.h"
#include "engine/dist/dist.h"
#include "engine/train/checkpoint.h"
#include "engine/train/dataset.h"
#include "engine/train/example_rng.h"
#include "engine/io/folders.h"
#include "engine/train/generate.h"
#include "engine/train/latent_cache.h"
#include "engine/train/loss_plot.h"
#include "engine/train/param_block.h"
#include "engine/train/step.h"
#include "pipeline/adapters.h"
#include "pipeline/model_hash.h"

void train_config_defaults(train_config *c) {
    memset(c, 0, sizeof *c);
    c->prior_loss_weight = 1.0;
    c->num_class_images = 100;
    c->sample_batch_size = 4;
    c->resolution = 512;
    c->method = "singlora";
    c->rank = 4;
    c->alpha = 0;
    c->ramp_steps = -1;
    c->init = NULL;   // the method's default (train_run): see default_init
    c->targets = "cross-attn";
    c->train_batch_size = 1;
    c->gradient_accumulation_steps = 1;
    c->num_train_epochs = 1;
    c->learning_rate = 1e-4;
    c->lr_scheduler = "constant";
    c->adam_beta1 = 0.9;
    c->adam_beta2 = 0.999;
    c->adam_weight_decay = 1e-2;
    c->adam_epsilon = 1e-8;
    c->max_grad_norm = 1.0;
    c->checkpointing_steps = 500;
    c->num_validation_images = 4;
    c->validation_steps = 100;
}

// ---------------------------------------------------------------- the resolved options as JSON

static cJSON *config_json(const train_config *c, int64_t steps, int64_t ramp, double alpha, const char *prediction) {
    cJSON *j = cJSON_CreateObject();
#define S(k, v) cJSON_AddStringToObject(j, k, (v) ? (v) : "")
#define N(k, v) cJSON_AddNumberToObject(j, k, (double)(v))
    S("model", c->model); S("instance_data_dir", c->instance_data_dir); S("instance_prompt", c->instance_prompt);
    S("output_dir", c->output_dir); S("class_data_dir", c->class_data_dir); S("class_prompt", c->class_prompt);
    cJSON_AddBoolToObject(j, "with_prior_preservation", c->with_prior_preservation);
    N("prior_loss_weight", c->prior_loss_weight); N("num_class_images", c->num_class_images);
    N("sample_batch_size", c->sample_batch_size); S("caption_extension", c->caption_extension);
    N("resolution", c->resolution); cJSON_AddBoolToObject(j, "center_crop", c->center_crop);
    cJSON_AddBoolToObject(j, "random_flip", c->random_flip);
    S("method", c->method); N("rank", c->rank); N("alpha", alpha); N("ramp_steps", ramp); S("init", c->init);
    S("targets", c->targets); N("train_batch_size", c->train_batch_size);
    N("gradient_accumulation_steps", c->gradient_accumulation_steps); N("max_train_steps", steps);
    N("num_train_epochs", c->num_train_epochs); N("learning_rate", c->learning_rate); S("lr_scheduler", c->lr_scheduler);
    N("lr_warmup_steps", c->lr_warmup_steps); N("adam_beta1", c->adam_beta1); N("adam_beta2", c->adam_beta2);
    N("adam_weight_decay", c->adam_weight_decay); N("adam_epsilon", c->adam_epsilon); N("max_grad_norm", c->max_grad_norm);
    N("snr_gamma", c->snr_gamma); N("seed", c->seed); S("prediction_type", prediction);
    cJSON_AddBoolToObject(j, "gradient_checkpointing", c->gradient_checkpointing); N("threads", c->threads);
    S("precision", gemm_precision_name(gemm_active_precision()));
    N("checkpointing_steps", c->checkpointing_steps); N("checkpoints_total_limit", c->checkpoints_total_limit);
    S("resume_from_checkpoint", c->resume_from_checkpoint); S("validation_prompt", c->validation_prompt);
    N("num_validation_images", c->num_validation_images); N("validation_steps", c->validation_steps);
    S("trace", c->trace); S("command_line", c->command_line);
#undef S
#undef N
    return j;
}

static int write_text(const char *path, const char *text) {
    const void *bufs[] = {text};
    size_t lens[] = {strlen(text)};
    return atomic_write(path, bufs, lens, 1);
}

// ---------------------------------------------------------------- trace (kept in memory, written at the end)

typedef struct {
    st_writer *w;
    void **keep;
    char **names;
    int n, cap;
} trace_buf;

static void trace_add(trace_buf *t, const char *name, dtype dt, int ndim, const int64_t *shape, const void *data,
                      size_t bytes) {
    if (!t->w) return;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->keep = realloc(t->keep, sizeof *t->keep * (size_t)t->cap);
        t->names = realloc(t->names, sizeof *t->names * (size_t)t->cap);
        if (!t->keep || !t->names) sl_die(NULL, "out of memory");
    }
    void *copy = sl_malloc(bytes ? bytes : 1);
    memcpy(copy, data, bytes);
    t->keep[t->n] = copy;
    t->names[t->n] = sl_strdup(name);
    st_writer_add(t->w, t->names[t->n], dt, ndim, shape, copy);
    t->n++;
}

static void trace_scalar(trace_buf *t, const char *name, float v) { trace_add(t, name, DT_F32, 0, NULL, &v, sizeof v); }

static void trace_free(trace_buf *t) {
    for (int i = 0; i < t->n; i++) { free(t->keep[i]); free(t->names[i]); }
    free(t->keep);
    free(t->names);
    if (t->w) st_writer_free(t->w);
    memset(t, 0, sizeof *t);
}

// ---------------------------------------------------------------- log.csv

typedef struct {
    int64_t *steps;
    float *loss, *ema;
    int n, cap;
} loss_log;

static void log_push(loss_log *l, int64_t step, float loss, float ema) {
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 256;
        l->steps = realloc(l->steps, sizeof *l->steps * (size_t)l->cap);
        l->loss = realloc(l->loss, sizeof *l->loss * (size_t)l->cap);
        l->ema = realloc(l->ema, sizeof *l->ema * (size_t)l->cap);
        if (!l->steps || !l->loss || !l->ema) sl_die(NULL, "out of memory");
    }
    l->steps[l->n] = step, l->loss[l->n] = loss, l->ema[l->n] = ema;
    l->n++;
}

// Keeps the rows of an existing log.csv up to step `upto` (a resumed run continues it); returns
// the text kept (malloc'd, header included) and fills l.
static char *log_resume(const char *path, int64_t upto, loss_log *l) {
    const char *header = "step,loss,loss_ema,lr,u,grad_norm,seconds\n";
    size_t cap = strlen(header) + 1, len = strlen(header);
    char *out = sl_malloc(cap);
    memcpy(out, header, len + 1);
    FILE *f = upto > 0 ? fopen(path, "r") : NULL;
    char line[512];
    while (f && fgets(line, sizeof line, f)) {
        long long s;
        float loss, ema;
        if (sscanf(line, "%lld,%f,%f", &s, &loss, &ema) != 3 || s > upto) continue;
        log_push(l, s, loss, ema);
        size_t n = strlen(line);
        out = realloc(out, cap = len + n + 1);
        if (!out) sl_die(path, "out of memory");
        memcpy(out + len, line, n + 1);
        len += n;
    }
    if (f) fclose(f);
    return out;
}

// ---------------------------------------------------------------- the run

// Does the instance prompt have a word the class prompt lacks (the identifier, e.g. "sks")?
static int has_word(const char *text, const char *word, size_t n) {
    for (const char *p = text; (p = strstr(p, word)); p++)
        if ((p == text || strchr(" ,.;:", p[-1])) && (!p[n] || strchr(" ,.;:", p[n]))) return 1;
    return 0;
}

static int prompt_has_own_word(const char *instance, const char *cls) {
    char a[1024];
    snprintf(a, sizeof a, "%s", instance);
    for (char *tok = strtok(a, " ,.;:"); tok; tok = strtok(NULL, " ,.;:"))
        if (!has_word(cls, tok, strlen(tok))) return 1;
    return 0;
}

typedef struct {
    const latent_cache *inst, *cls;
    const sd_model *m;
    int B, accum, prior, flips;
    uint64_t seed;
    int P, rank;   // the data-parallel split: this rank's share of each global micro-batch
} data_ctx;

// The examples of micro-batch j of step K, drawn from their streams. Arrays sized for
// nb = B·(1 + prior) examples. The global micro-batch of P ranks holds P·B instance examples
// (indices j·P·nb + 0 .. P·B − 1) then P·B class examples; rank r draws instance examples
// r·B .. r·B + B − 1 and the class examples at the same offsets, so P ranks × batch B draw the
// examples of one process × batch P·B.
typedef struct {
    int nb;
    float *latents, *noise, *context;   // (nb, C, h, w), (nb, C, h, w), (nb, L, D)
    int64_t *timesteps, *prior, *image, *flip;
} micro_buf;

static void micro_alloc(micro_buf *b, int nb, int64_t per, int64_t ctxn) {
    b->nb = nb;
    b->latents = sl_alloc_f32(nb * per);
    b->noise = sl_alloc_f32(nb * per);
    b->context = sl_alloc_f32(nb * ctxn);
    b->timesteps = sl_calloc((size_t)nb, sizeof(int64_t));
    b->prior = sl_calloc((size_t)nb, sizeof(int64_t));
    b->image = sl_calloc((size_t)nb, sizeof(int64_t));
    b->flip = sl_calloc((size_t)nb, sizeof(int64_t));
}

static void micro_free(micro_buf *b) {
    sl_free_aligned(b->latents);
    sl_free_aligned(b->noise);
    sl_free_aligned(b->context);
    free(b->timesteps);
    free(b->prior);
    free(b->image);
    free(b->flip);
}

static void draw_micro(micro_buf *b, const data_ctx *d, int64_t K, int j) {
    const latent_cache *c = d->inst;
    const int64_t per = (int64_t)c->C_lat * c->h * c->w, ctxn = (int64_t)c->L * c->D;
    float *eps = sl_alloc_f32(per);
    for (int i = 0; i < b->nb; i++) {
        const int is_cls = i >= d->B;
        const latent_cache *src = is_cls ? d->cls : d->inst;
        const int64_t PB = (int64_t)d->P * d->B;
        const int64_t g = (int64_t)j * d->P * b->nb + (is_cls ? PB + (int64_t)d->rank * d->B + (i - d->B)
                                                               : (int64_t)d->rank * d->B + i);
        sl_rng r;
        example_stream(&r, d->seed, K, g);   // index in the step's global batch
        int img = (int)sl_rng_randint(&r, (uint64_t)src->n);
        int fl = d->flips ? sl_rng_uniform_f64(&r) < 0.5 : 0;
        sl_rng_randn(&r, eps, (size_t)per);                        // the posterior sample's noise
        sl_rng_randn(&r, b->noise + i * per, (size_t)per);         // the diffusion noise
        b->timesteps[i] = (int64_t)sl_rng_randint(&r, (uint64_t)d->m->sched.T);
        b->prior[i] = is_cls, b->image[i] = img, b->flip[i] = fl;
        float *z = b->latents + i * per;
        vae_posterior(&d->m->vae->cfg, NULL, NULL, z, src->ex[img].moments[fl], eps, 1, c->h, c->w);
        for (int64_t q = 0; q < per; q++) z[q] *= d->m->vae->cfg.scaling_factor;
        memcpy(b->context + i * ctxn, src->ex[img].context, sizeof(float) * (size_t)ctxn);
    }
    sl_free_aligned(eps);
}

static int save_validation(const sd_model *m, const train_config *c, int64_t K) {
    char dir[4200], path[4300];
    snprintf(dir, sizeof dir, "%s/validation", c->output_dir);
    if (dist_is_lead() && mkdir_p(dir) != 0) return -1;
    const int R = c->resolution, n = c->num_validation_images > 0 ? c->num_validation_images : 1;
    int cols = 1;
    while (cols * cols < n) cols++;
    const int rows = (n + cols - 1) / cols, GW = cols * R, GH = rows * R;
    float *grid = sl_alloc_f32((int64_t)3 * GW * GH), *img = sl_alloc_f32((int64_t)3 * R * R);
    for (int64_t q = 0; q < (int64_t)3 * GW * GH; q++) grid[q] = -1.0f;
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {   // image k on rank k mod P, gathered on rank 0
        if (dist_owner(k) == dist_rank())
            rc = train_generate_image(m, c->validation_prompt, R, R, (c->seed + (uint64_t)k) & 0xffffffffull, 25, 7.5f, img);
        if (rc == 0 && dist_size() > 1) rc = dist_bcast(img, sizeof(float) * (size_t)3 * R * R, dist_owner(k));
        int gx = k % cols, gy = k / cols;
        for (int ch = 0; ch < 3 && rc == 0; ch++)
            for (int y = 0; y < R; y++)
                memcpy(grid + ((size_t)ch * GH + (size_t)gy * R + y) * GW + (size_t)gx * R, img + ((size_t)ch * R + y) * R,
                       sizeof(float) * (size_t)R);
    }
    snprintf(path, sizeof path, "%s/step-%lld.png", dir, (long long)K);
    if (rc == 0 && dist_is_lead()) rc = image_save_png(path, grid, 3, GH, GW);
    sl_free_aligned(grid);
    sl_free_aligned(img);
    return rc;
}

// Every rank must hold the same parameters after the same updates: rank 0's SHA-256 of the
// parameter block against each rank's own (a no-op for one process).
static int check_ranks_agree(const param_block *pb, int64_t K) {
    if (dist_size() < 2) return 0;
    uint8_t mine[32], lead[32];
    sha256_ctx h;
    sha256_init(&h);
    sha256_update(&h, pb->params, sizeof(float) * (size_t)pb->n);
    sha256_final(&h, mine);
    memcpy(lead, mine, sizeof lead);
    if (dist_bcast(lead, sizeof lead, 0) != 0) return -1;
    if (memcmp(lead, mine, sizeof lead) != 0)
        return sl_error(NULL, "train: after step %lld this rank's adapter differs from rank 0's (the ranks diverged)", (long long)K);
    return 0;
}

// The adapters' init when --init is not given. SingLoRA: normal:0.01, not the paper's Kaiming
// uniform, whose A·Aᵀ (entries ~ r/d_in) is as large as W0's and overwrites the base once the
// ramp ends: measured in docs/method_comparison.md (toy world, 5 subjects, lr 1e-3) as a drift of
// 59.8 ± 7.0 points on prompts without the subject and fidelity 0.086, against 6.7 ± 4.9 and
// 0.186 with normal:0.01 (5 subjects x 3 seeds). LoRA and DoRA: Kaiming for the down matrix (their up matrix starts at 0,
// so the init sets only the first steps' scale), as PEFT and kohya do.
static const char *default_init(int method) { return method == ADAPTER_SINGLORA ? "normal:0.01" : "kaiming"; }

int train_run(const train_config *config) {
    train_config resolved = *config;
    const train_config *c = &resolved;
    // ---- options
    if (!c->model || !c->instance_data_dir || !c->instance_prompt || !c->output_dir)
        return sl_error(NULL, "train: --model, --instance-data-dir, --instance-prompt and --output-dir are required");
    if (c->resolution <= 0 || c->resolution % 8)
        return sl_error(NULL, "train: --resolution %d is not a positive multiple of 8", c->resolution);
    if (c->train_batch_size < 1 || c->gradient_accumulation_steps < 1)
        return sl_error(NULL, "train: --train-batch-size and --gradient-accumulation-steps must be >= 1");
    int method = adapter_method_from_name(c->method);
    if (method < 0) return sl_error(NULL, "train: --method '%s' is not singlora, lora or dora", c->method);
    if (!resolved.init) resolved.init = default_init(method);
    int sched_kind = lr_schedule_from_name(c->lr_scheduler);
    if (sched_kind < 0)
        return sl_error(NULL, "train: --lr-scheduler '%s' is not constant, constant_with_warmup, linear or cosine", c->lr_scheduler);
    if (c->rank < 1) return sl_error(NULL, "train: --rank must be >= 1");
    if (c->precision && gemm_select_precision("train: --precision", c->precision) != 0) return -1;
    const int prior = c->with_prior_preservation;
    if (prior && (!c->class_data_dir || !c->class_prompt))
        return sl_error(NULL, "train: --with-prior-preservation needs --class-data-dir and --class-prompt");
    if (c->class_prompt && !prompt_has_own_word(c->instance_prompt, c->class_prompt))
        sl_warn("the instance prompt '%s' has no word the class prompt '%s' lacks: add an identifier such as 'sks'",
                c->instance_prompt, c->class_prompt);
    // several ranks (mpirun, engine/dist/): each computes its share, rank 0 alone writes in OUT
    const int P = dist_size(), rank = dist_rank(), lead = rank == 0, quiet = c->quiet || !lead;
    if (P > 1 && c->trace) return sl_error(NULL, "train: --trace records one process's tensors: run it without mpirun");
    struct stat st;
    if (stat(c->instance_data_dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return sl_error(c->instance_data_dir, "--instance-data-dir is not a folder");
    if (lead && (mkdir_p(c->output_dir) != 0 || folder_check_writable(c->output_dir) != 0)) return -1;
    char path[4300], ckpt_root[4200], cache_dir[4200];
    snprintf(ckpt_root, sizeof ckpt_root, "%s/checkpoints", c->output_dir);
    snprintf(cache_dir, sizeof cache_dir, "%s/cache", c->output_dir);
    if (lead && mkdir_p(cache_dir) != 0) return -1;

    // ---- data: instance folder first (its errors need no model)
    image_folder inst = {0}, cls = {0};
    if (image_folder_scan(&inst, c->instance_data_dir, c->caption_extension, 1) != 0) return -1;

    // bf16: the frozen base is held in bf16 as it loads (half the memory; the adapted layers get
    // their f32 W0 back from the bf16 copy when the adapters are created or attached)
    sd_load_opts lo = {.path = c->model, .config_dir = c->config_dir, .variant = c->variant,
                       .tokenizer_dir = c->tokenizer_dir, .prediction = c->prediction, .vae_parts = VAE_BOTH,
                       .hold_bf16 = gemm_active_precision() == GEMM_BF16 ? SD_HOLD_TEXT | SD_HOLD_UNET | SD_HOLD_VAE : 0};
    sd_model *m = sd_model_load(&lo);
    if (!m) { image_folder_free(&inst); return -1; }
    int rc = -1;
    adapter_set *set = NULL;
    param_block *pb = NULL;
    latent_cache ci = {0}, cc = {0};
    trace_buf tr = {0};
    loss_log log = {0};
    char *log_text = NULL;
    FILE *logf = NULL;
    micro_buf *mbs = NULL;
    train_micro *tm = NULL;
    float *losses = NULL;
    cJSON *cfg_json = NULL;
    const int fct = vae_factor(&m->vae->cfg);
    if (c->resolution % fct) { sl_error(NULL, "train: --resolution %d is not a multiple of the VAE's factor %d", c->resolution, fct); goto done; }
    if (m->unet->cfg.in_channels != m->vae->cfg.latent_channels) { sl_error(c->model, "the UNet takes %d channels but the VAE makes %d", m->unet->cfg.in_channels, m->vae->cfg.latent_channels); goto done; }
    if (clip_text_cond_layers(m->text, 1) < 0) goto done;

    if (prior) {
        if (lead && mkdir_p(c->class_data_dir) != 0) goto done;
        if (dist_barrier() != 0 || image_folder_scan(&cls, c->class_data_dir, c->caption_extension, 0) != 0) goto done;
        if (cls.n < c->num_class_images) {
            int have = cls.n;
            image_folder_free(&cls);
            if (train_generate_class_images(m, c->class_data_dir, c->class_prompt, have, c->num_class_images, c->resolution,
                                            c->seed, quiet) != 0)
                goto done;
            if (image_folder_scan(&cls, c->class_data_dir, c->caption_extension, 1) != 0) goto done;
        }
        if (cls.n == 0) { sl_error(c->class_data_dir, "no class image (set --num-class-images >= 1)"); goto done; }
    }

    // ---- steps and schedule
    const int B = c->train_batch_size, accum = c->gradient_accumulation_steps, nb = B * (prior ? 2 : 1);
    int64_t N = c->max_train_steps;
    if (N <= 0) {   // diffusers: ceil(len(dataloader) / accum) per epoch
        int64_t per_epoch = ((inst.n + B - 1) / B + accum - 1) / accum;
        N = per_epoch * (c->num_train_epochs > 0 ? c->num_train_epochs : 1);
    }
    const int64_t ramp = c->ramp_steps >= 0 ? c->ramp_steps : (N / 10 < 100 ? (N / 10 > 0 ? N / 10 : 1) : 100);
    const double alpha = c->alpha > 0 ? c->alpha : c->rank;
    char model_sha[65];
    if (model_sha256(c->model, model_sha) != 0) goto done;

    // ---- caches (latents of every image and flip, prompt embeddings)
    image_prep prep = {c->resolution, c->center_crop, 0};
    if (!quiet) fprintf(stderr, "encoding %d instance%s images%s\n", inst.n, prior ? " and class" : "", P > 1 ? " (split over the ranks)" : "");
    if (latent_cache_build(&ci, m, model_sha, &inst, c->instance_prompt, &prep, c->seed, c->random_flip, cache_dir) != 0) goto done;
    if (prior && latent_cache_build(&cc, m, model_sha, &cls, c->class_prompt, &prep, c->seed ^ 0xC1A55ull, c->random_flip,
                                    cache_dir) != 0)
        goto done;
    if (prior && cc.L != ci.L) { sl_error(c->class_data_dir, "class prompt has %d tokens, instance prompt %d", cc.L, ci.L); goto done; }

    // ---- adapter: fresh or from a checkpoint
    checkpoint_state cs = {0, c->seed, 0.0, P, P * B};
    char resume_dir[4300] = "";
    if (c->resume_from_checkpoint) {
        if (strcmp(c->resume_from_checkpoint, "latest") == 0) {
            int r = lead ? checkpoint_latest(ckpt_root, resume_dir, sizeof resume_dir) : 0;
            if (r < 0) goto done;
            if (r == 1) { sl_warn("%s: no checkpoint to resume from; starting a new run", ckpt_root); resume_dir[0] = 0; }
            if (dist_bcast(resume_dir, sizeof resume_dir, 0) != 0) goto done;   // rank 0's choice for every rank
        } else {
            snprintf(resume_dir, sizeof resume_dir, "%s", c->resume_from_checkpoint);
        }
    }
    char unet_hash[17];
    unet_model_hash(m->unet, unet_hash);
    if (resume_dir[0]) {
        snprintf(path, sizeof path, "%s/adapter.safetensors", resume_dir);
        set = adapter_set_load(path);
        if (!set) goto done;
        if (strcmp(set->base_model, unet_hash) != 0) { sl_error(path, "checkpoint adapter was trained on base model %s, this model is %s", set->base_model, unet_hash); goto done; }
        if ((int)set->method != method || set->rank != c->rank) { sl_error(path, "checkpoint is a %s rank-%d adapter, the options ask for %s rank %d", adapter_method_name(set->method), set->rank, c->method, c->rank); goto done; }
        if (unet_attach_adapters(m->unet, set, 1.0f, path) != 0) goto done;
    } else {
        adapter_new_opts ao = {(adapter_method)method, c->rank, (float)alpha, ramp, c->init, c->targets, c->seed};
        set = adapter_set_create(m->unet, &ao);
        if (!set || unet_attach_adapters(m->unet, set, 1.0f, NULL) != 0) goto done;
    }
    pb = param_block_new(set);
    if (resume_dir[0]) {
        if (checkpoint_load_optimizer(resume_dir, pb, &cs) != 0) goto done;
        if (cs.step != set->step) { sl_error(resume_dir, "adapter step %lld and optimizer step %lld differ", (long long)set->step, (long long)cs.step); goto done; }
        if (cs.global_batch > 0 && cs.global_batch != P * B) {
            sl_error(resume_dir, "checkpoint was made by %d process%s x --train-batch-size %d (global batch %d); this run is %d x %d = %d: "
                     "resume with the same global batch (the examples are then re-sharded)", cs.processes, cs.processes == 1 ? "" : "es",
                     cs.global_batch / (cs.processes > 0 ? cs.processes : 1), cs.global_batch, P, B, P * B);
            goto done;
        }
        if (cs.seed != c->seed) sl_warn("%s: checkpoint was made with --seed %llu, continuing with %llu", resume_dir, (unsigned long long)cs.seed, (unsigned long long)c->seed);
        if (!quiet) fprintf(stderr, "resuming from %s (step %lld)\n", resume_dir, (long long)cs.step);
    }
    const int64_t start = set->step;

    train_opts o = {0};
    o.prediction = m->sched.prediction;
    if (o.prediction == SL_PRED_SAMPLE) { sl_error(c->model, "prediction_type 'sample' is not supported for training"); goto done; }
    o.prior_loss_weight = c->prior_loss_weight;
    o.snr_gamma = c->snr_gamma;
    o.max_grad_norm = c->max_grad_norm;
    o.adam = (adamw_opts){c->adam_beta1, c->adam_beta2, c->adam_epsilon, c->adam_weight_decay};
    o.lr = (lr_schedule){(lr_schedule_kind)sched_kind, c->learning_rate, c->lr_warmup_steps, N};
    o.grad_checkpointing = c->gradient_checkpointing;

    // ---- config.json, trace, log
    cfg_json = config_json(c, N, set->method == ADAPTER_SINGLORA ? set->ramp_steps : 0, alpha, sl_prediction_name(o.prediction));
    char *cfg_text = cJSON_Print(cfg_json), *cfg_compact = cJSON_PrintUnformatted(cfg_json);
    snprintf(path, sizeof path, "%s/config.json", c->output_dir);
    int wrc = lead ? write_text(path, cfg_text) : 0;
    free(cfg_text);
    if (wrc != 0) { free(cfg_compact); goto done; }
    if (c->trace) {
        if (start > 0) sl_warn("--trace with a resumed run records steps %lld.. only", (long long)start + 1);
        tr.w = st_writer_new();
        st_writer_meta(tr.w, "singlora.trace", "1");
        st_writer_meta(tr.w, "config", cfg_compact);
        for (int e = 0; e < pb->n_entries; e++) {
            const param_entry *pe = &pb->entries[e];
            char name[620];
            snprintf(name, sizeof name, "init.%s", pe->name);
            trace_add(&tr, name, DT_F32, pe->ndim, pe->shape, pb->params + pe->offset, sizeof(float) * (size_t)pe->count);
        }
    }
    free(cfg_compact);
    snprintf(path, sizeof path, "%s/log.csv", c->output_dir);
    if (lead) {
        log_text = log_resume(path, start, &log);
        if (write_text(path, log_text) != 0) goto done;
        logf = fopen(path, "a");
        if (!logf) { sl_error(path, "cannot open for appending: %s", strerror(errno)); goto done; }
    }

    // ---- the loop
    const int64_t per = (int64_t)ci.C_lat * ci.h * ci.w, ctxn = (int64_t)ci.L * ci.D;
    mbs = sl_calloc((size_t)accum, sizeof *mbs);
    tm = sl_calloc((size_t)accum, sizeof *tm);
    losses = sl_calloc((size_t)accum, sizeof *losses);
    for (int j = 0; j < accum; j++) micro_alloc(&mbs[j], nb, per, ctxn);
    data_ctx dc = {&ci, prior ? &cc : NULL, m, B, accum, prior, c->random_flip, c->seed, P, rank};
    double ema = cs.loss_ema;
    progress bar;
    if (!quiet) { progress_start(&bar, "train", (int)N); bar.done = (int)start; }
    const uint64_t reduced0 = dist_bytes_reduced();
    const double t0 = now_seconds();
    for (int64_t K = start + 1; K <= N; K++) {
        for (int j = 0; j < accum; j++) {
            draw_micro(&mbs[j], &dc, K, j);
            tm[j] = (train_micro){nb, ci.h, ci.w, ci.L, mbs[j].latents, mbs[j].noise, mbs[j].timesteps, mbs[j].context,
                                  mbs[j].prior, P * B, prior ? P * B : 0};   // the MSE means of the global micro-batch
        }
        train_step_info info;
        if (train_step(m->unet, pb, &m->sched, &o, tm, accum, losses, &info) != 0) goto done;
        double loss = 0;
        for (int j = 0; j < accum; j++) loss += losses[j] / accum;
        ema = K == 1 ? loss : 0.9 * ema + 0.1 * loss;
        log_push(&log, K, (float)loss, (float)ema);
        if (logf) {
            fprintf(logf, "%lld,%.9g,%.9g,%.9g,%.9g,%.9g,%.3f\n", (long long)K, loss, ema, info.lr, (double)info.u, info.grad_norm,
                    now_seconds() - t0);
            fflush(logf);
        }
        if (tr.w) {
            for (int j = 0; j < accum; j++) {
                char name[96];
                const micro_buf *b = &mbs[j];
                int64_t s4[4] = {nb, ci.C_lat, ci.h, ci.w}, s3[3] = {nb, ci.L, ci.D}, s1[1] = {nb};
#define TN(what) snprintf(name, sizeof name, "step.%lld.%d.%s", (long long)K, j, what)
                TN("latents"); trace_add(&tr, name, DT_F32, 4, s4, b->latents, sizeof(float) * (size_t)(nb * per));
                TN("noise"); trace_add(&tr, name, DT_F32, 4, s4, b->noise, sizeof(float) * (size_t)(nb * per));
                TN("timesteps"); trace_add(&tr, name, DT_I64, 1, s1, b->timesteps, sizeof(int64_t) * (size_t)nb);
                TN("context"); trace_add(&tr, name, DT_F32, 3, s3, b->context, sizeof(float) * (size_t)(nb * ctxn));
                TN("prior"); trace_add(&tr, name, DT_I64, 1, s1, b->prior, sizeof(int64_t) * (size_t)nb);
                TN("image"); trace_add(&tr, name, DT_I64, 1, s1, b->image, sizeof(int64_t) * (size_t)nb);
                TN("flip"); trace_add(&tr, name, DT_I64, 1, s1, b->flip, sizeof(int64_t) * (size_t)nb);
                TN("loss"); trace_scalar(&tr, name, losses[j]);
#undef TN
            }
            char name[64];
            snprintf(name, sizeof name, "step.%lld.lr", (long long)K); trace_scalar(&tr, name, (float)info.lr);
            snprintf(name, sizeof name, "step.%lld.u", (long long)K); trace_scalar(&tr, name, info.u);
            snprintf(name, sizeof name, "step.%lld.grad_norm", (long long)K); trace_scalar(&tr, name, (float)info.grad_norm);
        }
        if (!quiet) {
            char extra[64];
            snprintf(extra, sizeof extra, "loss %.4f", ema);
            progress_step(&bar, extra);
        }
        if (c->checkpointing_steps > 0 && K % c->checkpointing_steps == 0 && K < N) {
            cs.step = K, cs.seed = c->seed, cs.loss_ema = ema, cs.processes = P, cs.global_batch = P * B;
            if (check_ranks_agree(pb, K) != 0) goto done;
            if (lead && checkpoint_save(ckpt_root, pb, &cs, c->checkpoints_total_limit) != 0) goto done;
        }
        if (c->validation_prompt && c->validation_steps > 0 && K % c->validation_steps == 0 && save_validation(m, c, K) != 0)
            goto done;
    }
    if (!quiet) progress_end(&bar);
    if (check_ranks_agree(pb, N) != 0) goto done;
    if (!quiet && (P > 1 || strcmp(dist_backend(), "mpi") == 0) && N > start)
        fprintf(stderr, "dist: %d rank%s, %llu bytes all-reduced per optimizer step\n", P, P > 1 ? "s" : "",
                (unsigned long long)((dist_bytes_reduced() - reduced0) / (uint64_t)(N - start)));

    // ---- outputs: rank 0 (validation images are split over the ranks, so every rank comes)
    if (!lead) {
        if (c->validation_prompt && !(c->validation_steps > 0 && N % c->validation_steps == 0) && save_validation(m, c, N) != 0) goto done;
        rc = dist_barrier();   // rank 0 has written every output (a failure there aborts the job)
        goto done;
    }
    {
        char buf[64], hash10[11] = "", started[32];
        snprintf(buf, sizeof buf, "%lld", (long long)N);
        snprintf(path, sizeof path, "%s/adapter.safetensors", c->output_dir);
        if (adapter_set_save(set, path) != 0) goto done;   // step = N: u(N) when sampling
        // the adapter file with the run's settings in its metadata
        st_file *af = st_open(path);
        if (!af) goto done;
        st_writer *aw = st_writer_new();
        for (int i = 0; i < af->n_entries; i++)
            st_writer_add(aw, af->entries[i].name, af->entries[i].dt, af->entries[i].ndim, af->entries[i].shape, af->entries[i].data);
        for (int i = 0; i < af->n_meta; i++) st_writer_meta(aw, af->meta_keys[i], af->meta_values[i]);
        char *compact = cJSON_PrintUnformatted(cfg_json);
        st_writer_meta(aw, "singlora.training", compact);
        free(compact);
        char tmp_path[4400];
        snprintf(tmp_path, sizeof tmp_path, "%s/.adapter-meta.safetensors", c->output_dir);
        int arc = st_writer_save(aw, tmp_path);
        st_writer_free(aw);
        st_close(af);
        if (arc != 0 || rename(tmp_path, path) != 0) { if (!arc) sl_error(path, "cannot rename: %s", strerror(errno)); goto done; }
        memcpy(hash10, model_sha, 10);
        time_t now = time(NULL);
        snprintf(started, sizeof started, "%lld", (long long)now);
        char res[32], lr_s[32], nimg[16], nreg[16], seed_s[32], dim[16], alpha_s[32];
        snprintf(res, sizeof res, "(%d, %d)", c->resolution, c->resolution);
        snprintf(lr_s, sizeof lr_s, "%g", c->learning_rate);
        snprintf(nimg, sizeof nimg, "%d", inst.n);
        snprintf(nreg, sizeof nreg, "%d", prior ? cls.n : 0);
        snprintf(seed_s, sizeof seed_s, "%llu", (unsigned long long)c->seed);
        snprintf(dim, sizeof dim, "%d", set->rank);
        snprintf(alpha_s, sizeof alpha_s, "%.9g", set->method == ADAPTER_SINGLORA ? (double)set->rank : alpha);
        const char *base_ver = m->unet->cfg.cross_attention_dim == 1024 ? (o.prediction == SL_PRED_V ? "sd_v2_768_v" : "sd_v2") : "sd_v1";
        const char *keys[] = {"ss_network_dim", "ss_network_alpha", "ss_base_model_version", "ss_resolution",
                              "ss_learning_rate", "ss_max_train_steps", "ss_num_train_images", "ss_num_reg_images", "ss_seed",
                              "ss_output_name", "ss_training_started_at", "ss_sd_model_hash", "ss_new_sd_model_hash",
                              "ss_sd_model_name", "ss_lr_scheduler", "ss_steps"};
        const char *vals[] = {dim, alpha_s, base_ver, res, lr_s, buf, nimg, nreg, seed_s, "lora", started, hash10, model_sha,
                              c->model, c->lr_scheduler, buf};
        snprintf(path, sizeof path, "%s/lora.safetensors", c->output_dir);
        if (lora_export_meta(set, LORA_FORMAT_KOHYA, path, keys, vals, (int)(sizeof keys / sizeof *keys)) != 0) goto done;
        snprintf(path, sizeof path, "%s/loss.png", c->output_dir);
        if (loss_plot_write(path, log.steps, log.loss, log.ema, log.n) != 0) goto done;
        if (c->validation_prompt && !(c->validation_steps > 0 && N % c->validation_steps == 0) && save_validation(m, c, N) != 0) goto done;
        if (tr.w && st_writer_save(tr.w, c->trace) != 0) goto done;
        if (!c->quiet) fprintf(stderr, "wrote %s/adapter.safetensors and lora.safetensors (%lld steps)\n", c->output_dir, (long long)N);
    }
    rc = dist_barrier();
done:
    if (logf) fclose(logf);
    free(log_text);
    free(log.steps); free(log.loss); free(log.ema);
    for (int j = 0; mbs && j < accum; j++) micro_free(&mbs[j]);
    free(mbs); free(tm); free(losses);
    trace_free(&tr);
    if (cfg_json) cJSON_Delete(cfg_json);
    if (pb) param_block_free(pb);
    if (m->unet) unet_attach_adapters(m->unet, NULL, 1.0f, NULL);
    adapter_set_free(set);
    latent_cache_free(&ci);
    latent_cache_free(&cc);
    image_folder_free(&inst);
    image_folder_free(&cls);
    sd_model_free(m);
    return rc;
}
