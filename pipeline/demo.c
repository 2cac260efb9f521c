// `singlora demo` (demo.h): world renders -> DreamBooth training -> samples -> scores -> report.
#include "pipeline/demo.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/world/dataset.h"
#include "data/world/heldout.h"
#include "data/world/palette.h"
#include "data/world/score_folder.h"
#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "engine/core/rng.h"
#include "engine/io/folders.h"
#include "engine/train/train_options.h"
#include "eval/evaluate.h"
#include "pipeline/caption_samples.h"
#include "pipeline/demo_report.h"

#define WORLD_SIZE 64   // the toy world's image side

demo_opts demo_defaults(void) {
    demo_opts o = {0};
    o.model = "models/toyworld";
    o.recipe = "configs/train/toyworld.json";
    o.subject = "zebra-star";
    o.token = "sks";
    o.out = "demo";
    o.n_photos = 5;
    o.n_class = 50;
    o.n_prompts = 20;
    o.n_drift = 20;
    o.sample_steps = 25;
    o.cfg = 5.0f;
    return o;
}

static void note(const demo_opts *o, const char *fmt, const char *arg) {
    if (!o->quiet) fprintf(stderr, fmt, arg), fputc('\n', stderr);
}

// ---------------------------------------------------------------- the data: photos and class images

// photos (n_photos, 64, 64, 3) receives their pixels (for the report's grid).
static int render_photos(const demo_opts *o, const world_subject *sub, const char *dir, int *used_bg, uint8_t *photos) {
    if (mkdir_p(dir) != 0) return -1;
    char caption[CAPTION_MAX];
    int rc = 0;
    for (int k = 0; k < o->n_photos && rc == 0; k++) {
        uint8_t *rgb = photos + (size_t)k * WORLD_SIZE * WORLD_SIZE * 3;
        world_scene s;
        world_subject_example(sub, o->token, o->seed, (uint64_t)k, WORLD_SIZE, rgb, caption, &s);
        used_bg[s.background] = 1;
        rc = world_write_example(dir, k, rgb, WORLD_SIZE, caption);
    }
    return rc;
}

// Class images: a plain shape of the subject's class, any colour, on any other background, every
// other one beside a second plain object (so prior preservation keeps two-object scenes too),
// captioned as the world captions them ("a red star and a blue circle on a green background").
static int render_class(const demo_opts *o, const world_subject *sub, const char *dir) {
    if (mkdir_p(dir) != 0) return -1;
    uint8_t *rgb = sl_malloc((size_t)WORLD_SIZE * WORLD_SIZE * 3);
    char caption[CAPTION_MAX];
    int rc = 0;
    for (int k = 0; k < o->n_class && rc == 0; k++) {
        sl_rng r;
        world_rng(&r, o->seed ^ 0xC1A55ull, (uint64_t)k, WORLD_STREAM_CAPTION);
        world_scene s = {0};
        s.n_objects = 1 + (k % 2);   // every other one beside a second, plain object
        s.background = (int)sl_rng_randint(&r, N_COLOURS);
        for (int i = 0; i < s.n_objects; i++) {
            int c = (int)sl_rng_randint(&r, N_COLOURS - 1);
            s.obj[i].shape = i == 0 ? sub->shape : (int)sl_rng_randint(&r, N_SHAPES);
            s.obj[i].colour = c >= s.background ? c + 1 : c;
        }
        scene_place(&s, &r);
        scene_render(&s, WORLD_SIZE, rgb);
        caption_write(&s, NULL, caption, sizeof caption);
        rc = world_write_example(dir, k, rgb, WORLD_SIZE, caption);
    }
    free(rgb);
    return rc;
}

// ---------------------------------------------------------------- the prompts

// Subject prompts in new contexts: backgrounds none of the photos show (and none of the
// subject's colours), every other one with a second, plain object.
static void subject_prompts(const demo_opts *o, const world_subject *sub, const int *used_bg,
                            char (*caps)[CAPTION_MAX]) {
    int bg[N_COLOURS], n_bg = 0;
    for (int c = 0; c < N_COLOURS; c++)
        if (!subject_uses_colour(sub, c) && !used_bg[c]) bg[n_bg++] = c;
    if (n_bg == 0)   // every allowed background was photographed: any the subject allows
        for (int c = 0; c < N_COLOURS; c++)
            if (!subject_uses_colour(sub, c)) bg[n_bg++] = c;
    sl_rng r;
    world_rng(&r, o->seed ^ 0x9E3779B9ull, 0, WORLD_STREAM_CAPTION);
    for (int k = 0; k < o->n_prompts; k++) {
        world_scene s = {0};
        s.has_subject = 1;
        s.subject = *sub;
        s.background = bg[k % n_bg];
        s.n_objects = 1 + (k % 2);
        s.obj[0].shape = sub->shape;
        s.obj[0].colour = -1;
        s.obj[0].is_subject = 1;
        if (s.n_objects == 2) {
            int c;
            do c = (int)sl_rng_randint(&r, N_COLOURS);
            while (c == s.background || subject_uses_colour(sub, c));
            s.obj[1].shape = (int)sl_rng_randint(&r, N_SHAPES);
            s.obj[1].colour = c;
        }
        caption_write(&s, o->token, caps[k], CAPTION_MAX);
    }
}

// ---------------------------------------------------------------- scoring

static double facts_pct(const score_totals *t) {
    return score_pct(t->background_right + t->colour_right + t->shape_right, t->images + t->plain_objects + t->objects);
}

static int score_set(const char *dir, const world_subject *sub, const char *token, score_totals *t) {
    char json[4300];
    snprintf(json, sizeof json, "%s/scores.json", dir);
    return score_folder(dir, sub, token, json, t);
}

// DINO / CLIP of the subject images against the photos (only what was asked for).
static int eval_set(const demo_opts *o, const char *photos, const char *gen, demo_scores *s, const char *report_json) {
    s->dino = s->clip_i = s->clip_t = NAN;
    if (!o->dino && !o->clip) return 0;
    eval_options eo = {.real_dir = photos, .generated_dir = gen, .dino = o->dino, .clip = o->clip, .identifier = o->token};
    eval_report er;
    if (eval_run(&eo, &er) != 0) return -1;
    s->dino = er.dino, s->clip_i = er.clip_i, s->clip_t = er.clip_t;
    int rc = eval_write_json(&er, report_json);
    eval_report_free(&er);
    return rc;
}

// The model's samples of both prompt sets into ROOT/subject and ROOT/plain, scored.
// name labels the progress bars ("base", "adapter").
static int sample_and_score(const demo_opts *o, const sd_model *m, const world_subject *sub, const char *root, const char *name,
                            const char (*subject_caps)[CAPTION_MAX], const char (*plain_caps)[CAPTION_MAX],
                            const char *photos, demo_scores *s, uint8_t *rgb_subject, uint8_t *rgb_plain) {
    char dir[4200], label[64], json[4300];
    caption_sample_opts so = {WORLD_SIZE, o->sample_steps, o->cfg, o->seed + 1000, o->quiet ? NULL : label};
    score_totals t;
    snprintf(dir, sizeof dir, "%s/subject", root);
    snprintf(label, sizeof label, "%s: subject", name);
    if (sample_captions(m, subject_caps, o->n_prompts, &so, dir, rgb_subject) != 0) return -1;
    if (score_set(dir, sub, o->token, &t) != 0) return -1;
    s->fidelity = t.subject_objects ? t.fidelity_sum / t.subject_objects : 0.0;
    s->prompt_pct = facts_pct(&t);
    snprintf(json, sizeof json, "%s/eval.json", dir);
    if (eval_set(o, photos, dir, s, json) != 0) return -1;
    snprintf(dir, sizeof dir, "%s/plain", root);
    snprintf(label, sizeof label, "%s: no subject", name);
    so.seed = o->seed + 2000;
    if (sample_captions(m, plain_caps, o->n_drift, &so, dir, rgb_plain) != 0) return -1;
    if (score_set(dir, NULL, NULL, &t) != 0) return -1;
    s->drift_pct = facts_pct(&t);
    return 0;
}

// ---------------------------------------------------------------- the run

static int train_adapter(const demo_opts *o, const world_subject *sub, const char *photos, const char *cls,
                         const char *train_dir) {
    train_config c;
    train_config_defaults(&c);
    void *keep = NULL;
    if (train_recipe_load(&c, o->recipe, &keep) != 0) return -1;
    char instance_prompt[128], class_prompt[128];
    snprintf(instance_prompt, sizeof instance_prompt, "a photo of %s %s", o->token, shape_name(sub->shape));
    snprintf(class_prompt, sizeof class_prompt, "a photo of a %s", shape_name(sub->shape));
    c.model = o->model;
    c.instance_data_dir = photos;
    c.instance_prompt = instance_prompt;
    c.caption_extension = ".txt";
    c.class_data_dir = cls;
    c.class_prompt = class_prompt;
    c.num_class_images = o->n_class;   // all rendered: nothing to generate
    c.output_dir = train_dir;
    c.resolution = WORLD_SIZE;
    if (o->method) c.method = o->method;
    for (int k = 0; k < o->n_train_set; k++) {
        const char *eq = strchr(o->train_set[k], '=');
        char name[128];
        if (!eq || eq == o->train_set[k] || (size_t)(eq - o->train_set[k]) >= sizeof name) {
            train_recipe_free(keep);
            return sl_error(NULL, "--train-option '%s': expected OPTION=VALUE (singlora train's option names)", o->train_set[k]);
        }
        snprintf(name, sizeof name, "%.*s", (int)(eq - o->train_set[k]), o->train_set[k]);
        char what[160];
        snprintf(what, sizeof what, "--train-option %s", name);
        if (train_option_set(&c, name, eq + 1, what) != 0) { train_recipe_free(keep); return -1; }
    }
    if (o->max_train_steps > 0) c.max_train_steps = o->max_train_steps;
    c.seed = o->seed;
    c.quiet = o->quiet;
    c.command_line = "singlora demo";
    if (o->threads > 0) c.threads = o->threads;
    int rc = train_run(&c);
    train_recipe_free(keep);
    return rc;
}

int demo_run(const demo_opts *o, demo_result *r) {
    memset(r, 0, sizeof *r);
    const double t0 = now_seconds();
    world_subject sub;
    if (subject_parse(o->subject, &sub, "--subject") != 0) return -1;
    if (o->n_photos < 1 || o->n_class < 1 || o->n_prompts < 1 || o->n_drift < 1)
        return sl_error(NULL, "demo: photo, class image and prompt counts must be >= 1");
    if (mkdir_p(o->out) != 0 || folder_check_writable(o->out) != 0) return -1;
    char photos[4200], cls[4200], train_dir[4200], base_root[4200], adapter_root[4200], path[4300];
    snprintf(photos, sizeof photos, "%s/photos", o->out);
    snprintf(cls, sizeof cls, "%s/class", o->out);
    snprintf(train_dir, sizeof train_dir, "%s/train", o->out);
    snprintf(base_root, sizeof base_root, "%s/base", o->out);
    snprintf(adapter_root, sizeof adapter_root, "%s/adapter", o->out);

    // 1. data
    int used_bg[N_COLOURS] = {0};
    char spec[128];
    subject_format(&sub, spec, sizeof spec);
    note(o, "demo: rendering the photos of %s and class images", spec);
    const size_t img = (size_t)WORLD_SIZE * WORLD_SIZE * 3;
    uint8_t *photo_rgb = sl_malloc(img * (size_t)o->n_photos);
    if (render_photos(o, &sub, photos, used_bg, photo_rgb) != 0 || render_class(o, &sub, cls) != 0) {
        free(photo_rgb);
        return -1;
    }

    // 2. training
    note(o, "demo: training the adapter into %s", train_dir);
    const double t_train = now_seconds();
    if (train_adapter(o, &sub, photos, cls, train_dir) != 0) {
        free(photo_rgb);
        return -1;
    }
    r->train_seconds = now_seconds() - t_train;

    // 3. samples, scores: the base, then the base with the adapter
    char (*subject_caps)[CAPTION_MAX] = sl_calloc((size_t)o->n_prompts, CAPTION_MAX);
    char (*plain_caps)[CAPTION_MAX] = sl_calloc((size_t)o->n_drift, CAPTION_MAX);
    subject_prompts(o, &sub, used_bg, subject_caps);
    world_heldout_captions(0, 0, o->seed + 77, o->n_drift, plain_caps, NULL);
    uint8_t *rgb[4];
    for (int k = 0; k < 4; k++) rgb[k] = sl_malloc(img * (size_t)(k % 2 ? o->n_drift : o->n_prompts));
    int rc = -1;
    adapter_set *set = NULL;
    sd_load_opts lo = {.path = o->model, .vae_parts = VAE_DECODER};
    sd_model *m = sd_model_load(&lo);
    if (!m) goto done;
    note(o, "demo: sampling the base model into %s", base_root);
    if (sample_and_score(o, m, &sub, base_root, "base", (const char(*)[CAPTION_MAX])subject_caps,
                         (const char(*)[CAPTION_MAX])plain_caps, photos, &r->base, rgb[0], rgb[1]) != 0)
        goto done;
    snprintf(path, sizeof path, "%s/adapter.safetensors", train_dir);
    if (!(set = adapter_set_load(path)) || unet_attach_adapters(m->unet, set, 1.0f, path) != 0) goto done;
    r->trainable_params = adapter_set_param_count(set);
    r->train_steps = set->step;
    r->rank = set->rank;
    snprintf(r->method, sizeof r->method, "%s", adapter_method_name(set->method));
    note(o, "demo: sampling with the adapter into %s", adapter_root);
    if (sample_and_score(o, m, &sub, adapter_root, "adapter", (const char(*)[CAPTION_MAX])subject_caps,
                         (const char(*)[CAPTION_MAX])plain_caps, photos, &r->adapter, rgb[2], rgb[3]) != 0)
        goto done;
    r->total_seconds = now_seconds() - t0;

    // 4. the report
    demo_report_data d = {o, r, spec, (const char(*)[CAPTION_MAX])subject_caps, (const char(*)[CAPTION_MAX])plain_caps,
                          photo_rgb, {rgb[0], rgb[1], rgb[2], rgb[3]}, WORLD_SIZE};
    rc = demo_write_report(&d);
done:
    if (m) unet_attach_adapters(m->unet, NULL, 1.0f, NULL);
    adapter_set_free(set);
    sd_model_free(m);
    for (int k = 0; k < 4; k++) free(rgb[k]);
    free(photo_rgb);
    free(subject_caps);
    free(plain_caps);
    return rc;
}
