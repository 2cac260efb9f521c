// A whole Stable Diffusion model for generation: UNet, VAE, text encoder, tokenizer and noise
// schedule, loaded from a diffusers folder or an original single-file checkpoint.
#pragma once
#include "clip/text_encoder.h"
#include "clip/tokenizer.h"
#include "engine/diffusion/schedule.h"
#include "unet/unet.h"
#include "vae/vae.h"

typedef struct {
    const char *path;           // diffusers folder or single .safetensors
    const char *config_dir;     // --config: a folder with unet/, vae/, text_encoder/ (and scheduler/) configs
    const char *variant;        // "fp16" or NULL
    const char *tokenizer_dir;  // --tokenizer (single-file models carry none)
    const char *prediction;     // --prediction-type override: "epsilon" / "v_prediction", NULL = config
    int vae_parts;              // VAE_DECODER, or VAE_BOTH for img2img
    int no_tokenizer;           // token ids come from elsewhere (parity commands)
    int hold_bf16;              // SD_HOLD_* bits: components whose GEMM weights are held in bf16 as
                                // they load (engine/core/bf16_weights.h; --precision bf16, frozen)
} sd_load_opts;
enum { SD_HOLD_TEXT = 1, SD_HOLD_UNET = 2, SD_HOLD_VAE = 4 };

typedef struct {
    unet_model *unet;
    vae_model *vae;
    clip_text_model *text;
    clip_tokenizer *tok;
    sl_schedule sched;
    int clip_skip;              // A1111's (1 = last layer)
} sd_model;

// NULL with sl_error naming what is missing or wrong. The schedule comes from the folder's (or
// --config's) scheduler/scheduler_config.json, else SD's: scaled_linear 0.00085..0.012 over
// 1000 steps, steps_offset 1, epsilon prediction, and no spacing of its own: each sampler's
// default (ddim leading, the others linspace), which is what A1111, ComfyUI and
// stable-diffusion.cpp do with a single-file checkpoint.
sd_model *sd_model_load(const sd_load_opts *o);
void sd_model_free(sd_model *m);
int sd_parse_prediction(const char *name, sl_prediction *out);
