// Images from prompts with a loaded model: the prompt conditioning and (img2img) the init
// image's VAE posterior are computed once, then each seed gives one image, exactly as diffusers'
// StableDiffusion(Img2Img)Pipeline draws its randomness from torch.Generator().manual_seed(seed).
#pragma once
#include <stdint.h>

#include "pipeline/denoise.h"
#include "pipeline/prompt.h"
#include "pipeline/sd_model.h"

// The ranges of the generation settings, from the command line or an image's parameters.
// (The sampler checks steps against the model's train timesteps.)
#define SD_MAX_SIDE 8192           // pixels, width and height
#define SD_MAX_STEPS 10000
#define SD_MAX_CFG 100.0
#define SD_MAX_ETA 10.0
#define SD_MAX_CLIP_SKIP 64

typedef struct {
    const char *prompt, *negative;   // negative NULL = the empty prompt
    int width, height;               // pixels, multiples of the VAE factor
    int long_prompts;                // A1111-style 75-token chunks instead of truncation
    int no_emphasis;                 // read (word:1.2), [word], BREAK as plain text (A1111's "Emphasis: None")
    int vae_tiling;                  // decode (and encode) in tiles (vae_tiling_default)
    const float *init_image;         // img2img: (3, height, width) in [-1, 1]; NULL for txt2img
    sd_denoise_opts denoise;         // guidance, sampler, img2img strength, per-step callback
} sd_generate_opts;

typedef struct {
    const sd_model *m;
    sd_generate_opts o;
    sd_conditioning cond;
    int h, w, C;                     // the latent (C, h, w)
    float *moments;                  // img2img: the init image's posterior (2C, h, w), else NULL
} sd_generator;

// Encodes the prompts (and the init image). 0, or -1 with sl_error.
int sd_generator_init(sd_generator *g, const sd_model *m, const sd_generate_opts *o);
// image (3, height, width), in [-1, 1] up to the decoder's overshoot, for one seed. The initial
// noise is torch.randn(generator=manual_seed(seed)) bit for bit. 0, or -1 with sl_error.
int sd_generate(sd_generator *g, uint64_t seed, float *image);
// The two halves of sd_generate: latents (C, h, w) for one seed (the UNet's part), then the
// image from them (the VAE's part, sd_decode_latents with the generator's tiling).
int sd_generate_latents(sd_generator *g, uint64_t seed, float *latents);
void sd_generator_decode(const sd_generator *g, const float *latents, float *image);
void sd_generator_free(sd_generator *g);

// The VAE ends of the pipeline, shared with the parity commands:
// moments (2C, h, w) of image (3, H, W) in [-1, 1];
void sd_encode_image(const sd_model *m, float *moments, const float *image, int H, int W, int tiling);
// image (3, h·f, w·f) from latents (C, h, w) as the UNet sees them (× scaling factor).
void sd_decode_latents(const sd_model *m, float *image, const float *latents, int h, int w, int tiling);
