// Noise schedules of discrete-time diffusion models, from a diffusers scheduler_config.json:
// betas, alphas_cumprod (f32, computed as diffusers does with torch on the CPU), the prediction
// type, and the timestep-spacing settings the samplers use; plus the training-side helpers
// add_noise and the v-target.
#pragma once
#include <stdint.h>

typedef enum { SL_PRED_EPSILON, SL_PRED_V, SL_PRED_SAMPLE } sl_prediction;
// SL_SPACING_DEFAULT: the config does not say; each sampler then uses its diffusers class
// default (DDIM: leading; Euler, Euler-a, Heun, DPM-Solver: linspace).
typedef enum { SL_SPACING_DEFAULT, SL_SPACING_LEADING, SL_SPACING_TRAILING, SL_SPACING_LINSPACE } sl_spacing;

typedef struct {
    int T;                    // num_train_timesteps
    float *betas;             // [T]
    float *alphas_cumprod;    // [T] torch.cumprod(1 - betas) (accumulated in double, stored f32)
    sl_prediction prediction; // prediction_type
    sl_spacing spacing;       // timestep_spacing
    int steps_offset;
    int set_alpha_to_one;     // DDIM: alpha before t=0 is 1 instead of alphas_cumprod[0]
    int clip_sample;          // DDIM: clamp the predicted x0 to +-clip_sample_range
    float clip_sample_range;
    double lambda_min_clipped;// DPM-Solver (-inf unless the config sets it)
    int final_sigmas_type;    // DPM-Solver: -1 not in config, 0 "sigma_min", 1 "zero"
} sl_schedule;

// Reads a diffusers scheduler config: a scheduler_config.json file, a scheduler/ folder holding
// one, or a model folder with scheduler/scheduler_config.json. 0, or -1 with sl_error naming the
// file and key. Unsupported settings (thresholding, rescale_betas_zero_snr, unknown
// beta_schedule / prediction_type / timestep_spacing) are refused with a clear message.
int sl_schedule_load(sl_schedule *s, const char *path);
// The same from explicit values: beta_schedule is "linear", "scaled_linear" or
// "squaredcos_cap_v2" (beta_start/end unused for the last). Other fields get diffusers' SD
// defaults (epsilon, spacing default, steps_offset 1, set_alpha_to_one 0, no clipping).
int sl_schedule_init(sl_schedule *s, const char *beta_schedule, int T, double beta_start, double beta_end);
// Takes betas as given (diffusers' trained_betas); n >= 1, each in (0, 1).
int sl_schedule_init_betas(sl_schedule *s, const double *betas, int n);
void sl_schedule_free(sl_schedule *s);

const char *sl_prediction_name(sl_prediction p);
const char *sl_spacing_name(sl_spacing sp);
int sl_spacing_parse(const char *name, sl_spacing *out);   // -1 with sl_error if unknown

// Training helpers, per batch item b (t[b] in [0, T), each item `per` values long):
//   add_noise: out = sqrt(acp[t]) * x0 + sqrt(1 - acp[t]) * noise
//   velocity:  out = sqrt(acp[t]) * noise - sqrt(1 - acp[t]) * x0
//   target:    what the model is trained to predict: noise (epsilon), velocity (v), x0 (sample)
// out may alias neither input for add_noise/velocity. -1 with sl_error for a t out of range.
int sl_schedule_add_noise(const sl_schedule *s, float *out, const float *x0, const float *noise,
                          const int64_t *t, int B, int64_t per);
int sl_schedule_velocity(const sl_schedule *s, float *out, const float *x0, const float *noise,
                         const int64_t *t, int B, int64_t per);
int sl_schedule_target(const sl_schedule *s, float *out, const float *x0, const float *noise,
                       const int64_t *t, int B, int64_t per);
