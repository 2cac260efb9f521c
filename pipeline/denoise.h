// The denoising loop with classifier-free guidance: both branches run as one UNet batch of 2
// (uncond first, as diffusers orders them); guidance 1 skips the unconditional pass.
#pragma once
#include "engine/core/rng.h"
#include "engine/diffusion/sampler.h"
#include "pipeline/sd_model.h"

typedef struct {
    float cfg;                  // guidance scale
    sl_sampler_opts sampler;
    float strength;             // img2img: 1 = start from pure noise (txt2img)
    // called once right before the first model evaluation with the number n of evaluations to
    // run (img2img: those left), then after each evaluation i (0 <= i < n) with the latents
    // after the step and the guided model output; either may be NULL
    void (*on_start)(void *ctx, int n);
    void (*on_step)(void *ctx, int i, int n, const float *latents, const float *guided);
    void *ctx;
} sd_denoise_opts;

// txt2img: latents (1, C, h, w) holds unscaled N(0,1) noise on entry (multiplied by the
// sampler's init_noise_sigma here) and the final latents on return.
// img2img (init_latent != NULL, scaled by the VAE factor already): latents holds the noise to
// add at the starting step. cond/uncond (L, D); uncond may be NULL when cfg == 1.
// The sampler draws any further noise from rng. 0, or -1 with sl_error.
int sd_denoise(const sd_model *m, const float *cond, const float *uncond, int L, float *latents,
               const float *init_latent, int h, int w, const sd_denoise_opts *o, sl_rng *rng);

// The first evaluation index img2img starts at for a strength (diffusers' get_timesteps).
int sd_img2img_start(const sl_sampler *sm, float strength);
