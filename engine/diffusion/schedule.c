// Noise schedules. See schedule.h. Every number is computed in the order and precision
// torch/diffusers use, so alphas_cumprod matches diffusers' f32 tensor bit for bit.
#include "engine/diffusion/schedule.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/config.h"
#include "engine/core/error.h"
#include "engine/io/model_files.h"

// torch.linspace(start, end, n, dtype=float32) on the CPU: the kernel makes 8-wide vectors whose
// first value is start + step*i (end - step*(n-1-i) past the middle), computed with one FMA, then
// adds k*step for the other lanes; the tail that does not fill two vectors is done one by one.
static void torch_linspace_f32(float *out, int n, float start, float end) {
    if (n == 1) { out[0] = start; return; }
    const float step = (end - start) / (float)(n - 1);
    const int halfway = n / 2;
    int i = 0;
    for (; i + 16 <= n; i += 8) {
        float base = i < halfway ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - i - 1), end);
        for (int k = 0; k < 8; k++) out[i + k] = fmaf((float)k, step, base);
    }
    for (; i < n; i++) out[i] = i < halfway ? fmaf(step, (float)i, start) : fmaf(-step, (float)(n - i - 1), end);
}

// alphas_cumprod from betas: torch.cumprod on the CPU accumulates floats in double.
static void cumprod_alphas(sl_schedule *s) {
    double acc = 1.0;
    for (int i = 0; i < s->T; i++) {
        acc *= (double)(1.0f - s->betas[i]);
        s->alphas_cumprod[i] = (float)acc;
    }
}

static void set_defaults(sl_schedule *s) {
    s->prediction = SL_PRED_EPSILON;
    s->spacing = SL_SPACING_DEFAULT;
    s->steps_offset = 1;
    s->set_alpha_to_one = 0;
    s->clip_sample = 0;
    s->clip_sample_range = 1.0f;
    s->lambda_min_clipped = -INFINITY;
    s->final_sigmas_type = -1;
}

int sl_schedule_init(sl_schedule *s, const char *beta_schedule, int T, double beta_start, double beta_end) {
    memset(s, 0, sizeof *s);
    if (T < 2 || T > 100000) return sl_error(NULL, "num_train_timesteps %d is out of range (2..100000)", T);
    int cosine = strcmp(beta_schedule, "squaredcos_cap_v2") == 0;
    int lin = strcmp(beta_schedule, "linear") == 0;
    int slin = strcmp(beta_schedule, "scaled_linear") == 0;
    if (!cosine && !lin && !slin)
        return sl_error(NULL, "beta_schedule '%s' is not supported (linear, scaled_linear, squaredcos_cap_v2)", beta_schedule);
    if (!cosine && !(beta_start > 0 && beta_start < 1 && beta_end > 0 && beta_end < 1))
        return sl_error(NULL, "beta_start %g / beta_end %g must lie in (0, 1)", beta_start, beta_end);
    s->T = T;
    s->betas = sl_malloc((size_t)T * sizeof(float));
    s->alphas_cumprod = sl_malloc((size_t)T * sizeof(float));
    if (lin) {
        torch_linspace_f32(s->betas, T, (float)beta_start, (float)beta_end);
    } else if (slin) {
        // linspace(sqrt(b0), sqrt(b1))**2: the square roots are Python doubles, then f32
        torch_linspace_f32(s->betas, T, (float)sqrt(beta_start), (float)sqrt(beta_end));
        for (int i = 0; i < T; i++) s->betas[i] = s->betas[i] * s->betas[i];
    } else {
        // Glide cosine: betas_for_alpha_bar in Python doubles, then a float32 tensor
        for (int i = 0; i < T; i++) {
            double t1 = (double)i / T, t2 = (double)(i + 1) / T;
            double a1 = cos((t1 + 0.008) / 1.008 * M_PI / 2), a2 = cos((t2 + 0.008) / 1.008 * M_PI / 2);
            double b = 1.0 - (a2 * a2) / (a1 * a1);
            s->betas[i] = (float)(b < 0.999 ? b : 0.999);
        }
    }
    cumprod_alphas(s);
    set_defaults(s);
    return 0;
}

int sl_schedule_init_betas(sl_schedule *s, const double *betas, int n) {
    memset(s, 0, sizeof *s);
    if (n < 2 || n > 100000) return sl_error(NULL, "trained_betas has %d entries (2..100000 expected)", n);
    for (int i = 0; i < n; i++)
        if (!(betas[i] > 0 && betas[i] < 1)) return sl_error(NULL, "trained_betas[%d] = %g is not in (0, 1)", i, betas[i]);
    s->T = n;
    s->betas = sl_malloc((size_t)n * sizeof(float));
    s->alphas_cumprod = sl_malloc((size_t)n * sizeof(float));
    for (int i = 0; i < n; i++) s->betas[i] = (float)betas[i];
    cumprod_alphas(s);
    set_defaults(s);
    return 0;
}

void sl_schedule_free(sl_schedule *s) {
    if (!s) return;
    free(s->betas);
    free(s->alphas_cumprod);
    s->betas = s->alphas_cumprod = NULL;
}

const char *sl_prediction_name(sl_prediction p) {
    return p == SL_PRED_V ? "v_prediction" : p == SL_PRED_SAMPLE ? "sample" : "epsilon";
}

const char *sl_spacing_name(sl_spacing sp) {
    switch (sp) {
    case SL_SPACING_LEADING: return "leading";
    case SL_SPACING_TRAILING: return "trailing";
    case SL_SPACING_LINSPACE: return "linspace";
    default: return "default";
    }
}

int sl_spacing_parse(const char *name, sl_spacing *out) {
    if (strcmp(name, "leading") == 0) *out = SL_SPACING_LEADING;
    else if (strcmp(name, "trailing") == 0) *out = SL_SPACING_TRAILING;
    else if (strcmp(name, "linspace") == 0) *out = SL_SPACING_LINSPACE;
    else return sl_error(NULL, "timestep spacing '%s' is not one of leading, trailing, linspace", name);
    return 0;
}

// path -> the scheduler_config.json it means (malloc'd), or NULL with sl_error.
static char *find_config(const char *path) {
    if (!path_is_dir(path)) {
        if (!path_exists(path)) { sl_error(path, "no such file or folder"); return NULL; }
        return sl_strdup(path);
    }
    static const char *tries[] = {"scheduler_config.json", "scheduler/scheduler_config.json"};
    for (int i = 0; i < 2; i++) {
        size_t n = strlen(path) + strlen(tries[i]) + 2;
        char *p = sl_malloc(n);
        snprintf(p, n, "%s/%s", path, tries[i]);
        if (path_exists(p)) return p;
        free(p);
    }
    sl_error(path, "no scheduler_config.json here or in scheduler/");
    return NULL;
}

// Re-records the current error (recorded without a file) under `file`, with a prefix.
static int rethrow(const char *file, const char *prefix) {
    char msg[512];
    snprintf(msg, sizeof msg, "%s", sl_error_msg());
    return sl_error(file, "%s%s", prefix, msg);
}

static int load_from(sl_schedule *s, json_config *c) {
    const char *file = c->path;
    int T;
    double b0, b1;
    const char *bs, *pred, *spacing, *fst;
    int thresholding, rescale;
    if (config_int_or(c, "num_train_timesteps", 1000, &T) || config_float_or(c, "beta_start", 0.0001, &b0) ||
        config_float_or(c, "beta_end", 0.02, &b1) || config_string_or(c, "beta_schedule", "linear", &bs) ||
        config_string_or(c, "prediction_type", "epsilon", &pred) || config_bool_or(c, "thresholding", 0, &thresholding) ||
        config_bool_or(c, "rescale_betas_zero_snr", 0, &rescale))
        return -1;
    if (thresholding) return sl_error(file, "key 'thresholding': dynamic thresholding is not supported (it is meant for pixel-space models)");
    if (rescale) return sl_error(file, "key 'rescale_betas_zero_snr': zero-terminal-SNR schedules are not supported");
    if (config_has(c, "trained_betas")) {
        const cJSON *a = cJSON_GetObjectItemCaseSensitive(c->root, "trained_betas");
        if (!cJSON_IsArray(a)) return sl_error(file, "key 'trained_betas': expected a list of numbers or null");
        int n = cJSON_GetArraySize(a);
        double *v = sl_malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
        for (int i = 0; i < n; i++) {
            const cJSON *e = cJSON_GetArrayItem(a, i);
            if (!cJSON_IsNumber(e)) { free(v); return sl_error(file, "key 'trained_betas': entry %d is not a number", i); }
            v[i] = e->valuedouble;
        }
        int rc = sl_schedule_init_betas(s, v, n);
        free(v);
        if (rc) return rethrow(file, "key 'trained_betas': ");
    } else if (sl_schedule_init(s, bs, T, b0, b1) != 0) {
        return rethrow(file, "");
    }
    if (strcmp(pred, "epsilon") == 0) s->prediction = SL_PRED_EPSILON;
    else if (strcmp(pred, "v_prediction") == 0) s->prediction = SL_PRED_V;
    else if (strcmp(pred, "sample") == 0) s->prediction = SL_PRED_SAMPLE;
    else return sl_error(file, "key 'prediction_type': '%s' is not one of epsilon, v_prediction, sample", pred);
    if (config_has(c, "timestep_spacing")) {
        if (config_string_or(c, "timestep_spacing", NULL, &spacing)) return -1;
        if (sl_spacing_parse(spacing, &s->spacing)) return rethrow(file, "key 'timestep_spacing': ");
    }
    double range;
    if (config_int_or(c, "steps_offset", 0, &s->steps_offset) || config_bool_or(c, "set_alpha_to_one", 1, &s->set_alpha_to_one) ||
        config_bool_or(c, "clip_sample", 0, &s->clip_sample) || config_float_or(c, "clip_sample_range", 1.0, &range) ||
        config_float_or(c, "lambda_min_clipped", -INFINITY, &s->lambda_min_clipped))
        return -1;
    s->clip_sample_range = (float)range;
    if (s->steps_offset < 0 || s->steps_offset >= s->T)
        return sl_error(file, "key 'steps_offset': %d is out of range for %d train timesteps", s->steps_offset, s->T);
    if (config_has(c, "final_sigmas_type")) {
        if (config_string_or(c, "final_sigmas_type", NULL, &fst)) return -1;
        if (strcmp(fst, "zero") == 0) s->final_sigmas_type = 1;
        else if (strcmp(fst, "sigma_min") == 0) s->final_sigmas_type = 0;
        else return sl_error(file, "key 'final_sigmas_type': '%s' is not zero or sigma_min", fst);
    }
    return 0;
}

int sl_schedule_load(sl_schedule *s, const char *path) {
    memset(s, 0, sizeof *s);
    char *file = find_config(path);
    if (!file) return -1;
    json_config *c = config_load(file);
    free(file);
    if (!c) return -1;
    // diffusers' own defaults for keys a config leaves out (DDIM/PNDM configs of SD models
    // written by old diffusers lack several): set_alpha_to_one true, steps_offset 0, linear betas
    int rc = load_from(s, c);
    config_free(c);
    if (rc) sl_schedule_free(s);
    return rc;
}

// ---- training helpers ----

static int check_t(const sl_schedule *s, const int64_t *t, int B) {
    for (int b = 0; b < B; b++)
        if (t[b] < 0 || t[b] >= s->T) return sl_error(NULL, "timestep %lld is outside [0, %d)", (long long)t[b], s->T);
    return 0;
}

// out = a*x + b*y with a = sqrt(acp), b = +-sqrt(1 - acp), each product rounded to f32 as
// torch does (two multiplications and an addition, no FMA)
static int combine(const sl_schedule *s, float *out, const float *x, const float *y, float sign_b,
                   const int64_t *t, int B, int64_t per) {
    if (check_t(s, t, B)) return -1;
    for (int b = 0; b < B; b++) {
        float acp = s->alphas_cumprod[t[b]];
        float sa = sqrtf(acp), sb = sqrtf(1.0f - acp);
        const float *xb = x + (int64_t)b * per, *yb = y + (int64_t)b * per;
        float *ob = out + (int64_t)b * per;
        for (int64_t i = 0; i < per; i++) {
            float p = sa * xb[i], q = sb * yb[i];
            ob[i] = sign_b > 0 ? p + q : p - q;
        }
    }
    return 0;
}

int sl_schedule_add_noise(const sl_schedule *s, float *out, const float *x0, const float *noise,
                          const int64_t *t, int B, int64_t per) {
    return combine(s, out, x0, noise, 1.0f, t, B, per);
}

int sl_schedule_velocity(const sl_schedule *s, float *out, const float *x0, const float *noise,
                         const int64_t *t, int B, int64_t per) {
    return combine(s, out, noise, x0, -1.0f, t, B, per);
}

int sl_schedule_target(const sl_schedule *s, float *out, const float *x0, const float *noise,
                       const int64_t *t, int B, int64_t per) {
    if (s->prediction == SL_PRED_V) return sl_schedule_velocity(s, out, x0, noise, t, B, per);
    if (check_t(s, t, B)) return -1;
    memcpy(out, s->prediction == SL_PRED_SAMPLE ? x0 : noise, (size_t)(B * per) * sizeof(float));
    return 0;
}
