// Samplers. See sampler.h. Timesteps and sigmas are built the way diffusers builds them with
// numpy (float64, then float32); the per-step arithmetic is torch's f32 arithmetic on 0-dim
// tensors and elementwise ops, operation by operation (this file is ISO C: no FMA contraction).
#include "engine/diffusion/sampler.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/tensor.h"

static const char *NAMES[SL_SAMPLER_N_KINDS] = {"ddim", "euler", "euler_a", "dpmpp_2m", "heun"};

void sl_sampler_opts_default(sl_sampler_opts *o) {
    memset(o, 0, sizeof *o);
    o->kind = SL_SAMPLER_DDIM;
    o->sigmas = SL_SIGMAS_NORMAL;
    o->steps = 50;
    o->eta = 0.0f;
    o->spacing = SL_SPACING_DEFAULT;
    o->final_sigma = -1;
}

int sl_sampler_parse(const char *name, sl_sampler_kind *out) {
    for (int k = 0; k < SL_SAMPLER_N_KINDS; k++)
        if (strcmp(name, NAMES[k]) == 0) { *out = (sl_sampler_kind)k; return 0; }
    return sl_error(NULL, "unknown sampler '%s' (ddim, euler, euler_a, dpmpp_2m, heun)", name);
}

int sl_sigmas_parse(const char *name, sl_sigmas_kind *out) {
    if (strcmp(name, "normal") == 0) *out = SL_SIGMAS_NORMAL;
    else if (strcmp(name, "karras") == 0) *out = SL_SIGMAS_KARRAS;
    else return sl_error(NULL, "unknown sigma schedule '%s' (normal, karras)", name);
    return 0;
}

const char *sl_sampler_name(sl_sampler_kind k) { return (unsigned)k < SL_SAMPLER_N_KINDS ? NAMES[k] : "?"; }
const char *sl_sigmas_name(sl_sigmas_kind k) { return k == SL_SIGMAS_KARRAS ? "karras" : "normal"; }

sl_spacing sl_sampler_spacing(const sl_schedule *s, const sl_sampler_opts *o) {
    return o->spacing != SL_SPACING_DEFAULT ? o->spacing
           : s->spacing != SL_SPACING_DEFAULT ? s->spacing
           : o->kind == SL_SAMPLER_DDIM ? SL_SPACING_LEADING : SL_SPACING_LINSPACE;
}

// ---- numpy helpers (float64) ----

// np.linspace(start, stop, num)[i]
static double np_linspace(double start, double stop, int num, int i) {
    if (num == 1) return start;
    if (i == num - 1) return stop;
    double step = (stop - start) / (double)(num - 1);
    return (double)i * step + start;
}

// np.arange(start, 0, -step) for start > 0: its length and values (start + i*delta with the delta
// numpy re-derives from the first two values). Returns the length; out gets min(len, cap) values.
static int np_arange_down(double start, double step, double *out, int cap) {
    int len = (int)ceil((0.0 - start) / -step);
    if (len < 0) len = 0;
    double d1 = start + -step, delta = d1 - start;
    for (int i = 0; i < len && i < cap; i++) out[i] = i == 0 ? start : i == 1 ? d1 : start + (double)i * delta;
    return len;
}

// np.interp(x, arange(T), fp) for fp given as f32 values
static double np_interp(double x, const float *fp, int T) {
    if (x <= 0.0) return fp[0];
    if (x >= (double)(T - 1)) return fp[T - 1];
    int j = (int)floor(x);
    if ((double)j == x) return fp[j];
    double slope = ((double)fp[j + 1] - (double)fp[j]) / 1.0;
    return slope * (x - (double)j) + (double)fp[j];
}

// diffusers' _sigma_to_t: fractional timestep of sigma on the log-sigma table (f32 values)
static double sigma_to_t(double sigma, const float *log_sigmas, int T) {
    double ls = log(sigma > 1e-10 ? sigma : 1e-10);
    int low = 0;
    for (int i = 0; i < T; i++)
        if (ls - (double)log_sigmas[i] >= 0) low = i;
    if (low > T - 2) low = T - 2;
    int high = low + 1;
    float lo = log_sigmas[low], hi = log_sigmas[high];
    double w = ((double)lo - ls) / (double)(lo - hi);
    if (w < 0) w = 0;
    if (w > 1) w = 1;
    return (1.0 - w) * low + w * high;
}

// _convert_to_karras: n sigmas from in_max down to in_min, rho = 7
static void karras(double *out, int n, double sigma_min, double sigma_max) {
    const double rho = 7.0;
    double min_inv = pow(sigma_min, 1.0 / rho), max_inv = pow(sigma_max, 1.0 / rho);
    for (int i = 0; i < n; i++) {
        double ramp = np_linspace(0.0, 1.0, n, i);
        out[i] = pow(max_inv + ramp * (min_inv - max_inv), rho);
    }
}

// ---- construction ----

// The timesteps of a spacing, as the float64 values numpy produces before the final cast.
// Euler family (n entries): linspace(0, T-1, n); leading arange(n)*(T//n) + offset; trailing
// round(arange(T, 0, -T/n)) - 1. ddim: the same with round() on linspace. dpm: n+1 points, the
// last dropped. Returns the count (trailing can differ from n by numpy's arange rounding).
// ts has room for cap values (cap > n).
static int make_timesteps(sl_sampler_kind kind, sl_spacing sp, int T, int n, int offset, double lambda_last_t,
                          double *ts, int cap) {
    if (kind == SL_SAMPLER_DPMPP_2M) {
        int last_t = (int)lambda_last_t;
        if (sp == SL_SPACING_LINSPACE) {
            for (int i = 0; i < n; i++) ts[i] = rint(np_linspace(0, last_t - 1, n + 1, n - i));
            return n;
        }
        if (sp == SL_SPACING_LEADING) {
            int ratio = last_t / (n + 1);
            for (int i = 0; i < n; i++) ts[i] = (double)((n - i) * ratio + offset);
            return n;
        }
        int len = np_arange_down((double)last_t, (double)T / n, ts, cap);
        for (int i = 0; i < len && i < cap; i++) ts[i] = rint(ts[i]) - 1;
        return len;
    }
    if (sp == SL_SPACING_LINSPACE) {
        for (int i = 0; i < n; i++) {
            double v = np_linspace(0, T - 1, n, n - 1 - i);
            ts[i] = kind == SL_SAMPLER_DDIM ? rint(v) : v;
        }
        return n;
    }
    if (sp == SL_SPACING_LEADING) {
        int ratio = T / n;
        for (int i = 0; i < n; i++) ts[i] = (double)((n - 1 - i) * ratio + offset);
        return n;
    }
    int len = np_arange_down((double)T, (double)T / n, ts, cap);
    for (int i = 0; i < len && i < cap; i++) ts[i] = rint(ts[i]) - 1;
    return len;
}

// One model evaluation per timestep: timesteps (m) and sigmas (m + 1) as float32, sigmas[m] = last.
static void set_evals(sl_sampler *sm, const double *ts, const double *sd, int m, float last) {
    sm->n_evals = m;
    sm->timesteps = sl_malloc((size_t)m * sizeof(float));
    sm->sigmas = sl_malloc((size_t)(m + 1) * sizeof(float));
    for (int i = 0; i < m; i++) {
        sm->timesteps[i] = (float)ts[i];
        sm->sigmas[i] = (float)sd[i];
    }
    sm->sigmas[m] = last;
}

sl_sampler *sl_sampler_new(const sl_schedule *s, const sl_sampler_opts *o, int64_t n) {
    const int T = s->T;
    if ((unsigned)o->kind > SL_SAMPLER_HEUN) { sl_error(NULL, "unknown sampler kind %d", (int)o->kind); return NULL; }
    const char *name = NAMES[o->kind];
    if (o->steps < 1 || o->steps > T) {
        sl_error(NULL, "%s: %d steps is out of range (1..%d, the model's train timesteps)", name, o->steps, T);
        return NULL;
    }
    if (n < 1) { sl_error(NULL, "%s: empty latent tensor", name); return NULL; }
    if (o->kind == SL_SAMPLER_DDIM && o->sigmas == SL_SIGMAS_KARRAS) {
        sl_error(NULL, "ddim has no sigma schedule: karras applies to euler, euler_a, dpmpp_2m and heun");
        return NULL;
    }
    if (o->kind == SL_SAMPLER_DDIM && !(o->eta >= 0.0f && o->eta <= 10.0f)) {
        sl_error(NULL, "ddim: eta %g must be >= 0", (double)o->eta);
        return NULL;
    }
    if (o->kind != SL_SAMPLER_DDIM && o->eta != 0.0f) {
        sl_error(NULL, "eta applies to ddim only (%s was chosen)", name);
        return NULL;
    }

    sl_sampler *sm = sl_calloc(1, sizeof *sm);
    sm->kind = o->kind;
    sm->sigmas_kind = o->sigmas;
    sm->prediction = s->prediction;
    sm->steps = o->steps;
    sm->n = n;
    sm->acp = s->alphas_cumprod;
    sm->T = T;
    sm->eta = o->eta;
    sm->clip = s->clip_sample;
    sm->clip_range = s->clip_sample_range;
    sm->next = -1;
    sm->heun_dt = NAN;
    sm->spacing = sl_sampler_spacing(s, o);
    int fst = o->final_sigma >= 0 ? o->final_sigma : s->final_sigmas_type >= 0 ? s->final_sigmas_type : 1;
    sm->final_sigma_zero = fst;

    // sigma(t) = sqrt((1 - acp) / acp) in f32, and its f32 log (numpy float32 log)
    float *sig = sl_malloc((size_t)T * sizeof(float)), *logsig = sl_malloc((size_t)T * sizeof(float));
    for (int t = 0; t < T; t++) {
        float a = s->alphas_cumprod[t];
        sig[t] = sqrtf((1.0f - a) / a);
        logsig[t] = logf(sig[t]);
    }

    double last_t = T;
    if (o->kind == SL_SAMPLER_DPMPP_2M && s->lambda_min_clipped > -INFINITY) {
        // searchsorted(flip(lambda_t), lambda_min_clipped): lambda_t = log(sqrt(acp)) - log(sqrt(1 - acp))
        int clipped = 0;
        for (int t = T - 1; t >= 0; t--) {
            float a = s->alphas_cumprod[t];
            float lam = logf(sqrtf(a)) - logf(sqrtf(1.0f - a));
            if ((double)lam < s->lambda_min_clipped) clipped++;
            else break;
        }
        last_t = T - clipped;
    }

    double *ts = sl_malloc((size_t)(T + 2) * sizeof(double));
    int m = make_timesteps(o->kind, sm->spacing, T, o->steps, s->steps_offset, last_t, ts, T + 2);
    if (m < 1 || m > T + 1) {
        sl_error(NULL, "%s: %d steps give %d timesteps", name, o->steps, m);
        goto fail;
    }
    for (int i = 0; i < m; i++)
        if (!(ts[i] >= 0 && ts[i] <= T - 1) && o->kind != SL_SAMPLER_DDIM) {
            sl_error(NULL, "%s: timestep %g is outside [0, %d) (steps_offset %d too large for %d steps?)", name, ts[i],
                     T, s->steps_offset, o->steps);
            goto fail;
        }

    if (o->kind == SL_SAMPLER_DDIM) {
        sm->n_evals = m;
        sm->timesteps = sl_malloc((size_t)m * sizeof(float));
        for (int i = 0; i < m; i++) {
            if (!(ts[i] >= 0 && ts[i] < T)) {
                sl_error(NULL, "ddim: timestep %g is outside [0, %d) (steps_offset %d too large for %d steps?)", ts[i], T,
                         s->steps_offset, o->steps);
                goto fail;
            }
            sm->timesteps[i] = (float)ts[i];
        }
        sm->ddim_stride = T / o->steps;
        sm->final_alpha_cumprod = s->set_alpha_to_one ? 1.0f : s->alphas_cumprod[0];
        sm->init_noise_sigma = 1.0f;
    } else if (o->kind == SL_SAMPLER_DPMPP_2M) {
        double *sd = sl_malloc((size_t)(m + 1) * sizeof(double));
        if (o->sigmas == SL_SIGMAS_KARRAS) {
            // from the whole training range: sigma(T-1) down to sigma(0); timesteps rounded
            karras(sd, m, sig[0], sig[T - 1]);
            for (int i = 0; i < m; i++) ts[i] = rint(sigma_to_t(sd[i], logsig, T));
        } else {
            for (int i = 0; i < m; i++) sd[i] = np_interp(ts[i], sig, T);
        }
        set_evals(sm, ts, sd, m, fst ? 0.0f : sig[0]);
        free(sd);
        sm->init_noise_sigma = 1.0f;
    } else {
        // euler family: timesteps as float32, sigmas interpolated at them (or karras), final 0
        double *sd = sl_malloc((size_t)m * sizeof(double));
        for (int i = 0; i < m; i++) {
            ts[i] = (double)(float)ts[i];
            sd[i] = np_interp(ts[i], sig, T);
        }
        if (o->sigmas == SL_SIGMAS_KARRAS) {
            karras(sd, m, sd[m - 1], sd[0]);
            for (int i = 0; i < m; i++) ts[i] = sigma_to_t(sd[i], logsig, T);
        }
        if (o->kind == SL_SAMPLER_HEUN) {
            // [t0, t1, t1, t2, t2, ...] and [s0, s1, s1, ..., s_{m-1}, s_{m-1}, 0]
            sm->n_evals = 2 * m - 1;
            sm->timesteps = sl_malloc((size_t)sm->n_evals * sizeof(float));
            sm->sigmas = sl_malloc((size_t)(sm->n_evals + 1) * sizeof(float));
            for (int i = 0; i < sm->n_evals; i++) {
                int k = (i + 1) / 2;
                sm->timesteps[i] = (float)ts[k];
                sm->sigmas[i] = (float)sd[k];
            }
            sm->sigmas[sm->n_evals] = 0.0f;
        } else {
            set_evals(sm, ts, sd, m, 0.0f);
        }
        free(sd);
        float mx = 0.0f;
        for (int i = 0; i <= sm->n_evals; i++) mx = fmaxf(mx, sm->sigmas[i]);
        sm->init_noise_sigma = sm->spacing == SL_SPACING_LEADING ? sqrtf(mx * mx + 1.0f) : mx;
    }
    free(ts);
    free(sig);
    free(logsig);
    if (o->kind == SL_SAMPLER_DPMPP_2M || o->kind == SL_SAMPLER_HEUN) {
        sm->buf0 = sl_alloc_f32(n);
        sm->buf1 = sl_alloc_f32(n);
    }
    if (o->kind == SL_SAMPLER_EULER || o->kind == SL_SAMPLER_EULER_A || (o->kind == SL_SAMPLER_DDIM && o->eta > 0))
        sm->noise = sl_alloc_f32(n);
    return sm;
fail:
    free(ts);
    free(sig);
    free(logsig);
    sl_sampler_free(sm);
    return NULL;
}

void sl_sampler_free(sl_sampler *sm) {
    if (!sm) return;
    free(sm->timesteps);
    free(sm->sigmas);
    sl_free_aligned(sm->buf0);
    sl_free_aligned(sm->buf1);
    sl_free_aligned(sm->noise);
    free(sm);
}

void sl_sampler_init_noise(const sl_sampler *sm, sl_rng *rng, float *x) {
    sl_rng_randn(rng, x, (size_t)sm->n);
    const float s = sm->init_noise_sigma;
    for (int64_t j = 0; j < sm->n; j++) x[j] = x[j] * s;
}

static int uses_sigma_scaling(const sl_sampler *sm) {
    return sm->kind == SL_SAMPLER_EULER || sm->kind == SL_SAMPLER_EULER_A || sm->kind == SL_SAMPLER_HEUN;
}

void sl_sampler_scale_model_input(const sl_sampler *sm, int i, float *out, const float *x) {
    if (!uses_sigma_scaling(sm) || i < 0 || i >= sm->n_evals) {
        if (out != x) memcpy(out, x, (size_t)sm->n * sizeof(float));
        return;
    }
    const float sigma = sm->sigmas[i];
    const float d = sqrtf(sigma * sigma + 1.0f);
    for (int64_t j = 0; j < sm->n; j++) out[j] = x[j] / d;
}

void sl_sampler_add_noise(const sl_sampler *sm, int i, float *out, const float *x0, const float *noise) {
    if (i < 0) i = 0;
    if (i >= sm->n_evals) i = sm->n_evals - 1;
    float a = 1.0f, b;
    int scale_x0 = 1;
    if (sm->kind == SL_SAMPLER_DDIM) {
        float acp = sm->acp[(int)sm->timesteps[i]];
        a = sqrtf(acp);
        b = sqrtf(1.0f - acp);
    } else if (sm->kind == SL_SAMPLER_DPMPP_2M) {
        float sg = sm->sigmas[i];
        a = 1.0f / sqrtf(sg * sg + 1.0f);
        b = sg * a;
    } else {
        scale_x0 = 0;   // euler family: x0 + noise * sigma
        b = sm->sigmas[i];
    }
    for (int64_t j = 0; j < sm->n; j++) out[j] = (scale_x0 ? a * x0[j] : x0[j]) + noise[j] * b;
}

// x0 from the model output at noise level sigma (euler family; k-diffusion's c_skip/c_out)
static void x0_from_sigma(const sl_sampler *sm, float sigma, const float *m, const float *x, float *x0) {
    const int64_t n = sm->n;
    if (sm->prediction == SL_PRED_EPSILON) {
        for (int64_t j = 0; j < n; j++) x0[j] = x[j] - sigma * m[j];
    } else if (sm->prediction == SL_PRED_V) {
        const float s2p1 = sigma * sigma + 1.0f;
        const float c_out = -sigma / sqrtf(s2p1);
        for (int64_t j = 0; j < n; j++) x0[j] = m[j] * c_out + x[j] / s2p1;
    } else {
        memcpy(x0, m, (size_t)n * sizeof(float));
    }
}

// DPM-Solver's alpha_t, sigma_t of a k-diffusion sigma
static void alpha_sigma(float sigma, float *alpha_t, float *sigma_t) {
    *alpha_t = 1.0f / sqrtf(sigma * sigma + 1.0f);
    *sigma_t = sigma * *alpha_t;
}

static int step_ddim(sl_sampler *sm, int i, const float *m, float *x, float *px0, sl_rng *rng) {
    const int t = (int)sm->timesteps[i], prev_t = t - sm->ddim_stride;
    const float a_t = sm->acp[t];
    const float a_prev = prev_t >= 0 ? sm->acp[prev_t] : sm->final_alpha_cumprod;
    const float beta_t = 1.0f - a_t;
    const float sa = sqrtf(a_t), sb = sqrtf(beta_t);
    // variance (16) of the DDIM paper, used when eta > 0
    const float beta_prev = 1.0f - a_prev;
    const float variance = (beta_prev / beta_t) * (1.0f - a_t / a_prev);
    const float std_dev = sm->eta * sqrtf(variance);
    const float dir_coef = sqrtf((1.0f - a_prev) - std_dev * std_dev);
    const float sa_prev = sqrtf(a_prev);
    if (sm->eta > 0) sl_rng_randn(rng, sm->noise, (size_t)sm->n);
    const int64_t n = sm->n;
    for (int64_t j = 0; j < n; j++) {
        float x0, eps;
        if (sm->prediction == SL_PRED_EPSILON) {
            x0 = (x[j] - sb * m[j]) / sa;
            eps = m[j];
        } else if (sm->prediction == SL_PRED_V) {
            x0 = sa * x[j] - sb * m[j];
            eps = sa * m[j] + sb * x[j];
        } else {
            x0 = m[j];
            eps = (x[j] - sa * x0) / sb;
        }
        if (sm->clip) x0 = fminf(fmaxf(x0, -sm->clip_range), sm->clip_range);
        if (px0) px0[j] = x0;
        float dir = dir_coef * eps;
        float prev = sa_prev * x0 + dir;
        if (sm->eta > 0) prev = prev + std_dev * sm->noise[j];
        x[j] = prev;
    }
    return 0;
}

static int step_euler(sl_sampler *sm, int i, const float *m, float *x, float *px0, sl_rng *rng) {
    const float sigma = sm->sigmas[i];
    const float sigma_hat = sigma;   // s_churn = 0: gamma = 0
    // diffusers draws this noise every step (used only when s_churn > 0); drawing it keeps the
    // generator where the pipeline leaves it
    if (rng) sl_rng_randn(rng, sm->noise, (size_t)sm->n);
    float *x0 = px0 ? px0 : sm->noise;
    x0_from_sigma(sm, sigma_hat, m, x, x0);
    const float dt = sm->sigmas[i + 1] - sigma_hat;
    for (int64_t j = 0; j < sm->n; j++) {
        float d = (x[j] - x0[j]) / sigma_hat;
        x[j] = x[j] + d * dt;
    }
    return 0;
}

static int step_euler_a(sl_sampler *sm, int i, const float *m, float *x, float *px0, sl_rng *rng) {
    const float sigma = sm->sigmas[i], sigma_to = sm->sigmas[i + 1];
    const float sf2 = sigma * sigma, st2 = sigma_to * sigma_to;
    const float sigma_up = sqrtf(st2 * (sf2 - st2) / sf2);
    const float sigma_down = sqrtf(st2 - sigma_up * sigma_up);
    const float dt = sigma_down - sigma;
    float *x0 = px0 ? px0 : sm->noise;
    x0_from_sigma(sm, sigma, m, x, x0);
    for (int64_t j = 0; j < sm->n; j++) {
        float d = (x[j] - x0[j]) / sigma;
        x[j] = x[j] + d * dt;
    }
    sl_rng_randn(rng, sm->noise, (size_t)sm->n);
    for (int64_t j = 0; j < sm->n; j++) x[j] = x[j] + sm->noise[j] * sigma_up;
    return 0;
}

static int step_heun(sl_sampler *sm, int i, const float *m, float *x, float *px0) {
    const int first = isnan(sm->heun_dt);
    if (first != (i % 2 == 0))
        return sl_error(NULL, "heun: evaluation %d is a %s-order step but the sampler expects the other", i,
                        i % 2 == 0 ? "first" : "second");
    const float sigma = first ? sm->sigmas[i] : sm->sigmas[i - 1];
    const float sigma_next = first ? sm->sigmas[i + 1] : sm->sigmas[i];
    const float sigma_input = first ? sigma : sigma_next;
    float *deriv = sm->buf0, *saved = sm->buf1;
    const int64_t n = sm->n;
    // x0 goes to px0, or temporarily into the output x after each element is read
    for (int64_t j = 0; j < n; j++) {
        float x0;
        if (sm->prediction == SL_PRED_EPSILON) x0 = x[j] - sigma_input * m[j];
        else if (sm->prediction == SL_PRED_V) {
            const float s2p1 = sigma_input * sigma_input + 1.0f;
            x0 = m[j] * (-sigma_input / sqrtf(s2p1)) + x[j] / s2p1;
        } else x0 = m[j];
        if (px0) px0[j] = x0;
        if (first) {
            float d = (x[j] - x0) / sigma;
            deriv[j] = d;
            saved[j] = x[j];
            x[j] = x[j] + d * (sigma_next - sigma);
        } else {
            float d = (x[j] - x0) / sigma_next;
            d = (deriv[j] + d) / 2.0f;
            x[j] = saved[j] + d * sm->heun_dt;
        }
    }
    sm->heun_dt = first ? sigma_next - sigma : NAN;
    return 0;
}

static int step_dpmpp_2m(sl_sampler *sm, int i, const float *m, float *x, float *px0) {
    const int64_t n = sm->n;
    const int last = i == sm->n_evals - 1;
    const int lower_order_final = last && ((sm->n_evals < 15) || sm->final_sigma_zero);
    // the model output as an x0 prediction, pushed onto the two-entry history (buf1 newest)
    float *tmp = sm->buf0;
    sm->buf0 = sm->buf1;
    sm->buf1 = tmp;
    float *m0 = sm->buf1, *m1 = sm->buf0;
    float a_s0, s_s0;
    alpha_sigma(sm->sigmas[i], &a_s0, &s_s0);
    if (sm->prediction == SL_PRED_EPSILON) {
        for (int64_t j = 0; j < n; j++) m0[j] = (x[j] - s_s0 * m[j]) / a_s0;
    } else if (sm->prediction == SL_PRED_V) {
        for (int64_t j = 0; j < n; j++) m0[j] = a_s0 * x[j] - s_s0 * m[j];
    } else {
        memcpy(m0, m, (size_t)n * sizeof(float));
    }
    if (px0) memcpy(px0, m0, (size_t)n * sizeof(float));
    float a_t, s_t;
    alpha_sigma(sm->sigmas[i + 1], &a_t, &s_t);
    const float lambda_t = logf(a_t) - logf(s_t);
    const float lambda_s0 = logf(a_s0) - logf(s_s0);
    const float h = lambda_t - lambda_s0;
    const float c_x = s_t / s_s0;
    const float c_d = a_t * (expf(-h) - 1.0f);
    if (sm->lower_order_nums < 1 || lower_order_final) {
        // first order (DDIM-like in x0 form)
        for (int64_t j = 0; j < n; j++) x[j] = c_x * x[j] - c_d * m0[j];
    } else {
        // second order, midpoint: D1 = (m0 - m1) / r0, r0 = h_0 / h
        float a_s1, s_s1;
        alpha_sigma(sm->sigmas[i - 1], &a_s1, &s_s1);
        const float lambda_s1 = logf(a_s1) - logf(s_s1);
        const float h_0 = lambda_s0 - lambda_s1;
        const float r0 = h_0 / h;
        const float inv_r0 = 1.0f / r0;
        const float c_d1 = 0.5f * c_d;
        for (int64_t j = 0; j < n; j++) {
            float d1 = inv_r0 * (m0[j] - m1[j]);
            x[j] = (c_x * x[j] - c_d * m0[j]) - c_d1 * d1;
        }
    }
    if (sm->lower_order_nums < 2) sm->lower_order_nums++;
    return 0;
}

int sl_sampler_step(sl_sampler *sm, int i, const float *model_output, float *x, float *pred_x0, sl_rng *rng) {
    const char *name = NAMES[sm->kind];
    if (i < 0 || i >= sm->n_evals) return sl_error(NULL, "%s: step %d is outside 0..%d", name, i, sm->n_evals - 1);
    if (sm->next >= 0 && i != sm->next)
        return sl_error(NULL, "%s: step %d was called where step %d comes next", name, i, sm->next);
    int needs_rng = sm->kind == SL_SAMPLER_EULER_A || (sm->kind == SL_SAMPLER_DDIM && sm->eta > 0);
    if (needs_rng && !rng) return sl_error(NULL, "%s: this step draws noise but no generator was given", name);
    int rc;
    switch (sm->kind) {
    case SL_SAMPLER_DDIM: rc = step_ddim(sm, i, model_output, x, pred_x0, rng); break;
    case SL_SAMPLER_EULER: rc = step_euler(sm, i, model_output, x, pred_x0, rng); break;
    case SL_SAMPLER_EULER_A: rc = step_euler_a(sm, i, model_output, x, pred_x0, rng); break;
    case SL_SAMPLER_HEUN: rc = step_heun(sm, i, model_output, x, pred_x0); break;
    default: rc = step_dpmpp_2m(sm, i, model_output, x, pred_x0); break;
    }
    if (rc == 0) sm->next = i + 1;
    return rc;
}
