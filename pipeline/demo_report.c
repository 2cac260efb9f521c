#include "pipeline/demo_report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image.h"
#include "data/image_grid.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/io/atomic_file.h"
#include "engine/kernels/gemm.h"

// A grid of n interleaved 8-bit images (n, S, S, 3) as OUT/name.
static int write_grid(const char *out, const char *name, const uint8_t *rgb, int n, int S) {
    image_grid g;
    image_grid_init(&g, n, 3, S, S);
    float *cell = sl_alloc_f32((int64_t)3 * S * S);
    for (int k = 0; k < n; k++) {
        image_from_u8(cell, rgb + (size_t)k * S * S * 3, 3, S, S);
        image_grid_put(&g, k, cell);
    }
    char path[4300];
    snprintf(path, sizeof path, "%s/%s", out, name);
    int rc = image_grid_save(&g, path);
    sl_free_aligned(cell);
    image_grid_free(&g);
    return rc;
}

static const char *mark(int ok) { return ok ? "✓" : "✗"; }

static void metric_row(FILE *t, const char *name, double base, double adapter, int pct) {
    if (isnan(base) && isnan(adapter)) return;
    if (pct) fprintf(t, "| %s | %.1f %% | %.1f %% |", name, base, adapter);
    else fprintf(t, "| %s | %.3f | %.3f |", name, base, adapter);
}

static cJSON *scores_json(const demo_scores *s) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddNumberToObject(j, "subject_fidelity", s->fidelity);
    cJSON_AddNumberToObject(j, "prompt_accuracy_pct", s->prompt_pct);
    cJSON_AddNumberToObject(j, "no_subject_accuracy_pct", s->drift_pct);
    const char *names[] = {"dino", "clip_i", "clip_t"};
    const double v[] = {s->dino, s->clip_i, s->clip_t};
    for (int k = 0; k < 3; k++)
        if (isnan(v[k])) cJSON_AddNullToObject(j, names[k]);
        else cJSON_AddNumberToObject(j, names[k], v[k]);
    return j;
}

// OUT/result.json: the run's settings and every number of the table.
static int write_result_json(const demo_report_data *d) {
    const demo_opts *o = d->o;
    const demo_result *r = d->r;
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "subject", d->spec);
    cJSON_AddStringToObject(j, "model", o->model);
    cJSON_AddStringToObject(j, "recipe", o->recipe);
    cJSON_AddStringToObject(j, "method", r->method);
    cJSON_AddNumberToObject(j, "rank", r->rank);
    cJSON_AddNumberToObject(j, "trainable_params", (double)r->trainable_params);
    cJSON_AddNumberToObject(j, "train_steps", (double)r->train_steps);
    cJSON_AddNumberToObject(j, "seed", (double)o->seed);
    cJSON_AddStringToObject(j, "precision", gemm_precision_name(gemm_active_precision()));
    cJSON *opts = cJSON_AddArrayToObject(j, "train_options");
    for (int k = 0; k < o->n_train_set; k++) cJSON_AddItemToArray(opts, cJSON_CreateString(o->train_set[k]));
    cJSON_AddNumberToObject(j, "train_seconds", r->train_seconds);
    cJSON_AddNumberToObject(j, "total_seconds", r->total_seconds);
    cJSON_AddItemToObject(j, "base", scores_json(&r->base));
    cJSON_AddItemToObject(j, "adapter", scores_json(&r->adapter));
    cJSON_AddNumberToObject(j, "drift_points", r->base.drift_pct - r->adapter.drift_pct);
    char *text = cJSON_Print(j);
    cJSON_Delete(j);
    char path[4300];
    snprintf(path, sizeof path, "%s/result.json", o->out);
    const void *bufs[] = {text, "\n"};
    size_t lens[] = {strlen(text), 1};
    int rc = atomic_write(path, bufs, lens, 2);
    free(text);
    return rc;
}

int demo_write_report(const demo_report_data *d) {
    if (write_result_json(d) != 0) return -1;
    const demo_opts *o = d->o;
    const demo_result *r = d->r;
    if (write_grid(o->out, "grid-photos.png", d->photos, o->n_photos, d->size) != 0 || write_grid(o->out, "grid-base.png", d->rgb[0], o->n_prompts, d->size) != 0 ||
        write_grid(o->out, "grid-adapter.png", d->rgb[2], o->n_prompts, d->size) != 0 ||
        write_grid(o->out, "grid-drift-base.png", d->rgb[1], o->n_drift, d->size) != 0 ||
        write_grid(o->out, "grid-drift-adapter.png", d->rgb[3], o->n_drift, d->size) != 0)
        return -1;
    const demo_scores *b = &r->base, *a = &r->adapter;
    const double drift = b->drift_pct - a->drift_pct;
    char *buf = NULL;
    size_t len = 0;
    FILE *t = open_memstream(&buf, &len);   // the report in memory, then one atomic write
    if (!t) return sl_error(o->out, "cannot build the report: out of memory");
    fprintf(t, "# singlora demo: `%s`\n\n", d->spec);
    fprintf(t, "Base model `%s`; %s adapter, rank %d, %lld trainable parameters, trained %lld steps with `%s` "
            "(%.0f s, %s GEMMs); the whole demo took %.0f s.\n\n",
        o->model, r->method, r->rank, (long long)r->trainable_params, (long long)r->train_steps, o->recipe,
        r->train_seconds, gemm_precision_name(gemm_active_precision()), r->total_seconds);
    fprintf(t, "Every image is scored by `singlora world score` against its prompt (the same prompts and seeds "
            "for the base and the adapter, DDIM %d steps, guidance %g).\n\n", o->sample_steps, (double)o->cfg);
    fprintf(t, "| | base | with the adapter | target | |\n|---|---|---|---|---|\n");
    metric_row(t, "subject fidelity (0-1)", b->fidelity, a->fidelity, 0);
    fprintf(t, " adapter >= 0.8, base <= 0.2 | %s |\n", mark(a->fidelity >= 0.8 && b->fidelity <= 0.2));
    metric_row(t, "prompt accuracy, subject in new contexts", b->prompt_pct, a->prompt_pct, 1);
    fprintf(t, " adapter >= 85 %% | %s |\n", mark(a->prompt_pct >= 85.0));
    metric_row(t, "accuracy on prompts without the subject", b->drift_pct, a->drift_pct, 1);
    fprintf(t, " drift <= 5 points (here %.1f) | %s |\n", drift, mark(drift <= 5.0));
    if (!isnan(a->dino)) metric_row(t, "DINO vs the photos", b->dino, a->dino, 0), fprintf(t, " | |\n");
    if (!isnan(a->clip_i)) metric_row(t, "CLIP-I vs the photos", b->clip_i, a->clip_i, 0), fprintf(t, " | |\n");
    if (!isnan(a->clip_t)) metric_row(t, "CLIP-T (prompt, identifier removed)", b->clip_t, a->clip_t, 0), fprintf(t, " | |\n");
    fprintf(t, "\nPrompt accuracy is the share of the prompt's facts an image gets right: its background colour, "
            "each object's shape and each plain object's colour. Subject fidelity: the subject's colours, "
            "pattern, accent and shape against its own renders (data/world/fidelity.h).\n\n");
    fprintf(t, "## The photos (`photos/`)\n\n![photos](grid-photos.png)\n\n");
    fprintf(t, "## The subject in new contexts\n\nBase (`base/subject/`):\n\n![base](grid-base.png)\n\n"
            "With the adapter (`adapter/subject/`):\n\n![adapter](grid-adapter.png)\n\nPrompts, in grid order:\n\n");
    for (int k = 0; k < o->n_prompts; k++) fprintf(t, "%d. %s\n", k + 1, d->subject_caps[k]);
    fprintf(t, "\n## Prompts without the subject (drift)\n\nBase:\n\n![drift base](grid-drift-base.png)\n\n"
            "With the adapter:\n\n![drift adapter](grid-drift-adapter.png)\n\nPrompts:\n\n");
    for (int k = 0; k < o->n_drift; k++) fprintf(t, "%d. %s\n", k + 1, d->plain_caps[k]);
    fprintf(t, "\n## Training loss (`train/loss.png`)\n\n![loss](train/loss.png)\n\n"
            "Reproduce the training alone: `singlora train --config %s --model %s --instance-data-dir %s/photos "
            "--caption-extension .txt --instance-prompt \"a photo of %s ...\" --class-data-dir %s/class "
            "--class-prompt \"a photo of a ...\" --output-dir OUT`.\n", o->recipe, o->model, o->out, o->token, o->out);
    char path[4300];
    snprintf(path, sizeof path, "%s/report.md", o->out);
    fclose(t);
    const void *bufs[] = {buf};
    size_t lens[] = {len};
    int rc = atomic_write(path, bufs, lens, 1);
    free(buf);
    return rc;
}
