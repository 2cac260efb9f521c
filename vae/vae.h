// AutoencoderKL (the Stable Diffusion VAE): config, weights, encoder and decoder, tiling.
//
// Encoder: image (N, in, H, W) in [-1, 1] -> conv_in -> down levels (resnets, then a stride-2
// conv except at the last level) -> mid (resnet, attention, resnet) -> GN+SiLU -> conv_out ->
// quant_conv -> moments (N, 2·L, H/8, W/8) = [mean | logvar].
// Decoder: latent (N, L, h, w) -> post_quant_conv -> conv_in -> mid -> up levels (resnets, then
// nearest 2x + conv except at the last level) -> GN+SiLU -> conv_out -> image (N, out, 8h, 8w).
#pragma once
#include <stdint.h>

#include "engine/core/params.h"
#include "engine/blocks/resnet.h"
#include "engine/io/safetensors.h"

#define VAE_MAX_LEVELS 8

typedef struct {
    int in_channels, out_channels, latent_channels;
    int n_levels;                        // len(block_out_channels)
    int block_out[VAE_MAX_LEVELS];       // channels per level (encoder order)
    int layers_per_block;                // resnets per encoder level; the decoder has one more
    int groups;                          // norm_num_groups
    float eps;                           // GroupNorm eps (1e-6 in AutoencoderKL)
    float scaling_factor;                // latent scale the UNet sees (0.18215 for SD 1.x/2.x)
    int mid_attention;                   // mid_block_add_attention (true for SD)
    int quant_conv, post_quant_conv;     // use_quant_conv / use_post_quant_conv (true for SD)
} vae_config;

// Reads a diffusers vae/config.json. 0, or -1 with sl_error naming the file and key.
int vae_config_from_json(vae_config *c, const char *path);
// Detects the config from the tensor shapes of an original-layout VAE (names after `prefix`).
// norm_num_groups cannot be seen in shapes: 32 (every SD VAE) is assumed and checked to divide
// every channel count; scaling_factor is 0.18215.
int vae_config_detect(vae_config *c, const st_file *f, const char *prefix);
// Checks the sizes make sense (groups divide channels, levels in range); 0 or -1 with sl_error.
int vae_config_check(const vae_config *c, const char *where);
// The downsampling factor between image and latent: 2^(n_levels-1).
int vae_factor(const vae_config *c);

typedef struct { int C_in, C_out, k; float *w, *b; } vae_conv;   // w (C_out, C_in, k, k), b (C_out)

// Mid-block self-attention: GroupNorm, single head over the H·W tokens, proj_out, residual.
typedef struct {
    int C, groups;
    float eps;
    float *norm_w, *norm_b;              // (C)
    float *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;   // (C, C), (C)
} vae_attn;

typedef struct {
    int n_resnets;
    resnet_block *resnets;
    int resample;                        // 1: a downsampler (encoder) / upsampler (decoder) follows
    vae_conv sample;                     // its conv (3x3; stride 2 with (0,1,0,1) padding in the encoder)
} vae_level;

typedef struct {
    vae_conv conv_in;
    vae_level levels[VAE_MAX_LEVELS];    // in execution order (decoder: up_blocks.0 first)
    resnet_block mid_res[2];
    vae_attn mid_attn;
    float *norm_out_w, *norm_out_b;      // (C)
    vae_conv conv_out;
} vae_coder;

enum { VAE_ENCODER = 1, VAE_DECODER = 2, VAE_BOTH = 3 };

typedef struct {
    vae_config cfg;
    int parts;                           // VAE_ENCODER | VAE_DECODER: what was loaded
    vae_coder enc, dec;
    vae_conv quant, post_quant;          // 1x1 convs (absent when the config disables them)
} vae_model;

// Visits every parameter of the parts in `parts` in a fixed order with its diffusers name,
// shape, init kind and the slot that holds it (the same walk loads, lists, saves and randomly
// initialises). Also fills the structural sizes of m from m->cfg. Stops at the first nonzero
// visitor return, which it returns.
int vae_walk(vae_model *m, int parts, param_visitor fn, void *ctx);
// Every parameter (diffusers name, shape, kind; slot points to scratch) of the VAE a config
// describes, for `init` and tests.
int vae_enumerate(const vae_config *c, param_visitor fn, void *ctx);

// Loads a VAE from a diffusers folder, a diffusers vae component file, an original single-file
// checkpoint (first_stage_model.*) or a standalone original VAE file. config_dir (may be NULL)
// overrides the config: a folder holding vae/config.json (or config.json). variant "fp16"
// picks the diffusers *.fp16.safetensors weights. NULL with sl_error.
vae_model *vae_load(const char *model_path, const char *config_dir, const char *variant, int parts);
// A model with the given config and every parameter drawn uniformly from ±1/sqrt(fan_in)
// (norm weights near 1), deterministic in seed. For tests and benchmarks.
vae_model *vae_random(const vae_config *c, int parts, uint64_t seed);
void vae_free(vae_model *m);
// Writes the loaded parts as safetensors in dt (F32, F16 or BF16): original_layout 0: diffusers
// names; 1: a single-file checkpoint's (first_stage_model.encoder.down.0..., attention
// projections as 1×1 convs); 2: a standalone original VAE file's (the same without the prefix).
int vae_save(vae_model *m, const char *path, int original_layout, dtype dt);

// ---- forward ----
// moments (N, 2·L, H/f, W/f) from image (N, in, H, W); f = vae_factor. H, W must be multiples of f.
void vae_encode(const vae_model *m, float *moments, const float *image, int N, int H, int W);
// Splits moments into mean and logvar (clamped to [-30, 20], as diffusers does), each (N, L, h, w);
// when eps (N, L, h, w) is given, sample = mean + exp(logvar/2)·eps. Any output may be NULL.
void vae_posterior(const vae_config *c, float *mean, float *logvar, float *sample, const float *moments,
                   const float *eps, int N, int h, int w);
// image (N, out, f·h, f·w) from latent (N, L, h, w) (the raw decoder input, already divided by
// the scaling factor).
void vae_decode(const vae_model *m, float *image, const float *latent, int N, int h, int w);

// ---- tiling (tile.c) ----
// Tiles of at most `tile` latent pixels a side overlapping by at least `overlap`, blended with a
// smooth ramp across the overlap; each is computed with `context` extra latent pixels around it
// that are thrown away (so the zero padding at its border does not reach what it keeps). The mid
// block (with its global attention) runs on the whole latent; only the full-resolution levels
// are tiled, and each tile's GroupNorms use that tile's statistics. Latents that fit in one tile
// run untiled (exactly vae_encode/vae_decode).
typedef struct { int tile, overlap, context; } vae_tiling;
// 64 latent pixels (512 image pixels), overlap 16, context 4.
vae_tiling vae_tiling_default(void);
void vae_encode_tiled(const vae_model *m, float *moments, const float *image, int N, int H, int W, vae_tiling t);
void vae_decode_tiled(const vae_model *m, float *image, const float *latent, int N, int h, int w, vae_tiling t);
