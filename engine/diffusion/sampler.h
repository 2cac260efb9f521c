// Samplers that reproduce diffusers' schedulers step for step (diffusers 0.25 arithmetic, f32):
//   ddim      DDIMScheduler (eta 0 = deterministic; eta > 0 draws noise from the rng)
//   euler     EulerDiscreteScheduler (s_churn 0)
//   euler_a   EulerAncestralDiscreteScheduler
//   dpmpp_2m  DPMSolverMultistepScheduler (dpmsolver++, order 2, midpoint, lower_order_final)
//   heun      HeunDiscreteScheduler (two model evaluations per step)
// with sigma schedules `normal` (the spacing's timesteps) or `karras` (Karras et al. 2022,
// rho 7, as use_karras_sigmas=True).
//
// The sampling loop (one model evaluation per index i, Heun included):
//   sl_sampler *sm = sl_sampler_new(&sched, &opts, n);          // n = numel of the latents (whole batch)
//   sl_sampler_init_noise(sm, &rng, x);                          // x = randn(n) * init_noise_sigma
//   for (int i = 0; i < sm->n_evals; i++) {
//       sl_sampler_scale_model_input(sm, i, xin, x);             // xin = x / sqrt(sigma^2+1) or x
//       model(xin, sm->timesteps[i]) -> out                      // (+ classifier-free guidance)
//       sl_sampler_step(sm, i, out, x, NULL, &rng);               // x <- x_{i+1}
//   }
//   sl_sampler_free(sm);
// The rng is drawn from exactly where diffusers draws from the pipeline's generator (euler and
// euler_a every step, ddim when eta > 0), so a seed gives diffusers' image.
#pragma once
#include <stdint.h>

#include "engine/core/rng.h"
#include "engine/diffusion/schedule.h"

typedef enum { SL_SAMPLER_DDIM, SL_SAMPLER_EULER, SL_SAMPLER_EULER_A, SL_SAMPLER_DPMPP_2M, SL_SAMPLER_HEUN,
               SL_SAMPLER_N_KINDS } sl_sampler_kind;
typedef enum { SL_SIGMAS_NORMAL, SL_SIGMAS_KARRAS } sl_sigmas_kind;

typedef struct {
    sl_sampler_kind kind;
    sl_sigmas_kind sigmas;   // karras: all but ddim
    int steps;               // inference steps (>= 1, <= num_train_timesteps)
    float eta;               // ddim only: 0 deterministic, 1 = DDPM-like
    sl_spacing spacing;      // SL_SPACING_DEFAULT: the config's timestep_spacing, else the sampler's default
    int final_sigma;         // dpmpp_2m: -1 the config's final_sigmas_type, else "zero" (diffusers >= 0.26);
                             // 1 "zero" (the last step lands on sigma 0); 0 "sigma_min" (diffusers <= 0.25)
} sl_sampler_opts;

// ddim, normal sigmas, 50 steps, eta 0, spacing from the config, final sigma from the config.
void sl_sampler_opts_default(sl_sampler_opts *o);
int sl_sampler_parse(const char *name, sl_sampler_kind *out);   // -1 with sl_error listing the names
int sl_sigmas_parse(const char *name, sl_sigmas_kind *out);     // "normal" | "karras"
const char *sl_sampler_name(sl_sampler_kind k);
// The timestep spacing a sampler built from (s, o) uses: o's, else the schedule's, else the
// sampler's diffusers default (ddim leading, the others linspace).
sl_spacing sl_sampler_spacing(const sl_schedule *s, const sl_sampler_opts *o);
const char *sl_sigmas_name(sl_sigmas_kind k);

typedef struct {
    sl_sampler_kind kind;
    sl_sigmas_kind sigmas_kind;
    sl_prediction prediction;
    sl_spacing spacing;      // the spacing in effect
    int steps;
    int n_evals;             // model evaluations: steps (heun: 2*steps - 1)
    float *timesteps;        // [n_evals] the timestep given to the model at evaluation i
                             // (whole numbers except euler-family linspace / karras)
    float *sigmas;           // [n_evals + 1] (NULL for ddim): noise level at i; sigmas[n_evals] final
    float init_noise_sigma;  // the initial noise is randn * init_noise_sigma
    int64_t n;               // values in a latent tensor (all batch items together)
    // ---- internals ----
    const float *acp;        // the schedule's alphas_cumprod [T]
    int T, ddim_stride, clip;
    float final_alpha_cumprod, eta, clip_range;
    int final_sigma_zero;
    int next;                // the index step() expects next (-1 before the first step)
    int lower_order_nums;    // dpmpp_2m: history length
    float heun_dt;           // heun: dt of the pending first-order step (NAN when none)
    float *buf0, *buf1;      // dpmpp_2m: x0 predictions of the last two steps; heun: derivative, sample
    float *noise;            // [n] scratch for drawn noise
} sl_sampler;

// NULL with sl_error on a bad combination (karras with ddim, steps out of range, ...).
// The schedule must outlive the sampler (its alphas_cumprod are borrowed).
sl_sampler *sl_sampler_new(const sl_schedule *s, const sl_sampler_opts *o, int64_t n);
void sl_sampler_free(sl_sampler *sm);

// x[n] = randn(n) from rng, times init_noise_sigma (as prepare_latents does).
void sl_sampler_init_noise(const sl_sampler *sm, sl_rng *rng, float *x);
// out[n] = the model input for evaluation i (out may be x).
void sl_sampler_scale_model_input(const sl_sampler *sm, int i, float *out, const float *x);
// One scheduler step for evaluation i with the model's output (after guidance): x[n] is replaced
// by the next sample; pred_x0 (optional, [n]) gets the predicted clean sample. The first call may
// start at any i (img2img), later calls must follow i+1, i+2, ...; heun must start at an even i.
// rng may be NULL only when the step draws no noise (ddim eta 0, dpmpp_2m, heun).
int sl_sampler_step(sl_sampler *sm, int i, const float *model_output, float *x, float *pred_x0, sl_rng *rng);
// img2img: out[n] = x0 noised to the level of evaluation i (diffusers' scheduler.add_noise).
void sl_sampler_add_noise(const sl_sampler *sm, int i, float *out, const float *x0, const float *noise);
