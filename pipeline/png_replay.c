#include "pipeline/png_replay.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/png.h"
#include "engine/core/error.h"
#include "engine/diffusion/sampler_names.h"

static int number(const char *png, const char *key, const char *v, double *out) {
    char *end;
    errno = 0;
    *out = strtod(v, &end);
    if (errno || end == v || *end) return sl_error(png, "parameters: '%s: %s' is not a number", key, v);
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
        double x;
        if (!strcmp(k, "Steps")) {
            if (number(png, k, v, &x)) return -1;
            d->sampler.steps = (int)x;
        } else if (!strcmp(k, "Sampler")) {
            if (sl_sampler_lookup(v, &d->sampler.kind, &sampler_karras)) return sl_error(png, "parameters: sampler '%s' is not one singlora has", v);
        } else if (!strcmp(k, "Schedule type")) {
            if (sl_sigmas_lookup(v, &d->sampler.sigmas)) return sl_error(png, "parameters: schedule type '%s' is not one singlora has (Automatic, Uniform, Karras)", v);
        } else if (!strcmp(k, "CFG scale")) {
            if (number(png, k, v, &x)) return -1;
            d->cfg = (float)x;
        } else if (!strcmp(k, "Seed")) {
            if (number(png, k, v, &x)) return -1;
            r->seed = (long long)x;
        } else if (!strcmp(k, "Size")) {
            int w, h;
            char tail;
            if (sscanf(v, "%dx%d%c", &w, &h, &tail) != 2) return sl_error(png, "parameters: 'Size: %s' is not WxH", v);
            r->gen.width = w, r->gen.height = h;
        } else if (!strcmp(k, "Denoising strength")) {
            if (number(png, k, v, &x)) return -1;
            d->strength = (float)x;
            r->img2img = 1;
        } else if (!strcmp(k, "Clip skip")) {
            if (number(png, k, v, &x)) return -1;
            r->clip_skip = (int)x;
        } else if (!strcmp(k, "Eta")) {
            if (number(png, k, v, &x)) return -1;
            d->sampler.eta = (float)x;
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
