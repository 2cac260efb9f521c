// Pretraining an SD-architecture base model from scratch on a procedural data source (the toy
// world): a VAE trained as a plain autoencoder (L1 + L2 reconstruction; the KL term and the
// sampled posterior added late), the data set encoded to latents once, then the whole UNet
// (every weight: AdamW, EMA, gradient clipping, caption dropout for classifier-free guidance)
// on those latents, conditioned by a frozen random CLIP-architecture text encoder with the real
// CLIP tokenizer. Writes a diffusers folder (f16, EMA weights) at every checkpoint.
//
// Resumable: every phase checkpoints (atomically) its flat parameter / AdamW / EMA blocks and
// step into the checkpoint folder; every random draw of step k is a pure function of (seed, k),
// so a resumed run continues exactly as an uninterrupted one.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "engine/train/lr_schedule.h"

#define PRETRAIN_CAPTION_MAX 256

// A deterministic source of captioned images: example(index) is a pure function of the index.
typedef struct {
    const char *name;
    int size;                                                          // images are size × size
    void (*example)(void *ctx, uint64_t index, uint8_t *rgb, char *caption);   // rgb (size, size, 3)
    void (*vae_example)(void *ctx, uint64_t index, uint8_t *rgb);   // what the VAE trains on (NULL: example's images)
    void *ctx;
} pretrain_data;

// The stand-in source (used by the tests and until the world renderer is wired in): one square
// of one of six colours at a random position and size on a plain background of another colour,
// captioned "a red square on a blue background". The seed picks the data set.
typedef struct {
    uint64_t seed;
    int size;
} pretrain_source;
pretrain_data pretrain_data_squares(pretrain_source *sq);   // sq must outlive the source
// The toy world (data/world/dataset.h): world_example(seed, index, size): one or two shapes in
// named colours on a textured background, with its caption.
pretrain_data pretrain_data_world(pretrain_source *src);
// The same, with a VAE that also learns the detail subjects have: half its images are photos of
// random subjects (world_vae_example). The UNet and text encoder still see only the world.
pretrain_data pretrain_data_world_vae_subjects(pretrain_source *src);

typedef struct {
    const char *out;          // the diffusers folder written
    const char *ckpt;         // checkpoints, latent cache and log.csv (default: <out>.ckpt)
    const char *config;       // model configs: unet/, vae/, text_encoder/, scheduler/ (configs/toyworld)
    uint64_t seed;
    int threads;              // 0: OpenMP's default
    int resume;               // continue from the checkpoints in ckpt (else they are overwritten)
    // a diffusers folder to continue from (NULL: from scratch): its configs replace `config`, its
    // VAE is taken as trained (no VAE phase), and the UNet and text encoder start from its weights
    // with fresh AdamW states, as diffusers' train_text_to_image starts from a pretrained model
    const char *init_from;
    int vae_continue;         // with init_from: its VAE trains on for vae_steps (from its weights, KL on
                              // from vae_kl_start) instead of being taken as trained
    // VAE
    int vae_steps, vae_batch;
    int vae_crop;             // the VAE trains on random crops of this side (0: whole images)
    double vae_lr;
    int vae_kl_start;         // step from which the posterior is sampled and the KL term added
    double vae_kl_weight;     // weight of KL summed over latents / image elements of the batch
    // latent cache
    int n_latents;            // examples 0..n-1 of the source, encoded once
    // UNet
    int unet_steps, unet_batch, unet_warmup;
    lr_schedule_kind unet_lr_schedule;   // default constant_with_warmup
    double unet_lr, ema_decay, cond_drop, grad_clip, weight_decay;
    // the text encoder trains jointly with the UNet at this learning rate (same warm-up, EMA and
    // clipping: one gradient norm over both); 0 keeps the random text encoder frozen
    double text_lr;
    // bookkeeping
    double ckpt_every_s;      // seconds between checkpoints (and folder writes)
    int log_every;            // steps between progress lines on stderr
} pretrain_opts;

// The recipe `make pretrain` runs (configs/toyworld, seed 0).
pretrain_opts pretrain_defaults(void);

// Runs the phases that are not done yet (VAE, latent cache, UNet) and writes the folder.
// 0, or -1 with sl_error.
int pretrain_run(const pretrain_opts *o, const pretrain_data *data);
