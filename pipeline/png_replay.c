#include "pipeline/png_replay.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/png.h"
#include "engine/core/error.h"
#include "engine/core/parse_num.h"
#include "engine/diffusion/sampler_names.h"

// "<png>: parameters: <key>", the subject of a value's error
static const char *subject(const char *png, const char *key, char *buf, size_t n) {
    snprintf(buf, n, "%s: parameters: %s", png, key);
    return buf;
}

static int number(const char *png, const char *key, const char *v, double lo, double hi, float *out) {
    char what[4200];
    double x;
    if (parse_double(subject(png, key, what, sizeof what), v, lo, hi, &x) != 0) return -1;
    *out = (float)x;
    return 0;
}

static int integer(const char *png, const char *key, const char *v, long long lo, long long hi, long long *out) {
    char what[4200];
    return parse_int(subject(png, key, what, sizeof what), v, lo, hi, out);
}

// "WxH", each side in 1..SD_MAX_SIDE
static int size(const char *png, const char *v, int *w, int *h) {
    const char *x = strchr(v, 'x');
    char ws[32];
    long long a, b;
    if (!x || x - v >= (long)sizeof ws) return sl_error(png, "parameters: 'Size: %s' is not WxH", v);
    snprintf(ws, sizeof ws, "%.*s", (int)(x - v), v);
    if (integer(png, "Size", ws, 1, SD_MAX_SIDE, &a) || integer(png, "Size", x + 1, 1, SD_MAX_SIDE, &b)) return -1;
    *w = (int)a, *h = (int)b;
    return 0;
}

int sd_png_replay_load(const char *png, sd_png_replay *r) {
    sl_error_clear();
    char *text = png_read_text(png, "parameters");
    if (!text) {
        if (!sl_error_msg()[0]) sl_error(png, "has no A1111 `parameters` text chunk");
        return -1;
    }
    sl_error_clear();
    a1111_params *p = &r->params;
    a1111_params_parse(text, p);
    free(text);
    if (!a1111_params_get(p, "Steps")) return sl_error(png, "parameters: no 'Steps: N, Sampler: ...' line");
    r->gen.prompt = p->prompt;
    r->gen.negative = p->negative;
    sd_denoise_opts *d = &r->gen.denoise;
    int sampler_karras = 0;
    for (int i = 0; i < p->n; i++) {
        const char *k = p->keys[i], *v = p->values[i];
        long long n;
        if (!strcmp(k, "Steps")) {
            if (integer(png, k, v, 1, SD_MAX_STEPS, &n)) return -1;
            d->sampler.steps = (int)n;
        } else if (!strcmp(k, "Sampler")) {
            if (sl_sampler_lookup(v, &d->sampler.kind, &sampler_karras)) return sl_error(png, "parameters: sampler '%s' is not one singlora has", v);
        } else if (!strcmp(k, "Schedule type")) {
            if (sl_sigmas_lookup(v, &d->sampler.sigmas)) return sl_error(png, "parameters: schedule type '%s' is not one singlora has (Automatic, Uniform, Karras)", v);
        } else if (!strcmp(k, "CFG scale")) {
            if (number(png, k, v, 0, SD_MAX_CFG, &d->cfg)) return -1;
        } else if (!strcmp(k, "Seed")) {
            if (integer(png, k, v, 0, INT64_MAX, &r->seed)) return -1;
        } else if (!strcmp(k, "Size")) {
            if (size(png, v, &r->gen.width, &r->gen.height)) return -1;
        } else if (!strcmp(k, "Denoising strength")) {
            if (number(png, k, v, 0, 1, &d->strength)) return -1;
            r->img2img = 1;
        } else if (!strcmp(k, "Clip skip")) {
            if (integer(png, k, v, 1, SD_MAX_CLIP_SKIP, &n)) return -1;
            r->clip_skip = (int)n;
        } else if (!strcmp(k, "Eta")) {
            if (number(png, k, v, 0, SD_MAX_ETA, &d->sampler.eta)) return -1;
        } else if (!strcmp(k, "Emphasis")) {
            if (!strcmp(v, "None")) r->gen.no_emphasis = 1;
            else if (!strcmp(v, "Original")) r->gen.no_emphasis = 0;
            else return sl_error(png, "parameters: emphasis '%s' is not one singlora has (Original, None)", v);
        } else if (!strcmp(k, "Timestep spacing")) {
            if (sl_spacing_parse(v, &d->sampler.spacing)) return sl_error(png, "parameters: timestep spacing '%s' is unknown", v);
        } else if (!strcmp(k, "Long prompts")) {
            r->gen.long_prompts = !strcmp(v, "True");
        } else if (!strcmp(k, "Model hash")) {
            r->model_hash = v;
        } else if (!strcmp(k, "Adapter")) {
            r->adapter = v;
        } else if (!strcmp(k, "Lora")) {
            r->loras = v;
        }
    }
    // "DPM++ 2M Karras" (A1111 before 1.9) carries the schedule in the sampler's name
    if (sampler_karras) d->sampler.sigmas = SL_SIGMAS_KARRAS;
    return 0;
}

void sd_png_replay_free(sd_png_replay *r) { a1111_params_free(&r->params); }
