// One DreamBooth optimizer step on a UNet with an attached adapter set whose tensors live in a
// param_block (../shared/SINGLORA.md, "Training step"):
//   per micro-batch j: noisy = √ᾱ_t·z + √(1−ᾱ_t)·ε, target ε or v = √ᾱ_t·ε − √(1−ᾱ_t)·z,
//   pred = unet(noisy, t, c) with the adapters unmerged, loss_j = instance MSE (min-SNR-γ
//   weighted per example when γ > 0) + λ·class MSE; the gradient of Σ_j loss_j / accum
//   accumulates in the gradient block; its L2 norm (before clipping) is the step's grad norm;
//   clip_grad_norm_; AdamW at the schedule's lr of step K. SingLoRA's u = u(K) for every
//   forward and backward of step K (the set's step is K while the step runs, and stays K).
#pragma once
#include <stdint.h>

#include "engine/diffusion/schedule.h"
#include "engine/train/adamw.h"
#include "engine/train/lr_schedule.h"
#include "engine/train/param_block.h"
#include "unet/unet.h"

// One micro-batch of B examples (borrowed arrays).
typedef struct {
    int B, h, w, L;             // examples, latent size, context tokens
    const float *latents;       // (B, C_in, h, w) clean latents, × scaling factor
    const float *noise;         // (B, C_in, h, w)
    const int64_t *timesteps;   // (B) in [0, T)
    const float *context;       // (B, L, D) text-encoder output
    const int64_t *prior;       // (B) 1 = class (prior-preservation) example, 0 = instance
    // Instance / class examples of the whole micro-batch when this one is one rank's share of
    // it (engine/dist/): the MSE means are over the global micro-batch. 0: this one's counts.
    int n_inst_total, n_class_total;
} train_micro;

typedef struct {
    sl_prediction prediction;   // what the UNet predicts (epsilon or v_prediction)
    double prior_loss_weight;   // λ
    double snr_gamma;           // min-SNR-γ; 0 disables the weighting
    double max_grad_norm;       // clipping; <= 0 disables it
    adamw_opts adam;
    lr_schedule lr;
    int grad_checkpointing;
} train_opts;

typedef struct {
    double lr, grad_norm;
    float u;                    // SingLoRA ramp of the step (1 for other methods)
} train_step_info;

// One forward and backward of the UNet on given inputs: loss = Σ_b coef[b]·mean((pred_b −
// target_b)²) (coef NULL: the plain mean over every element, coef[b] = 1/N), and the gradient of
// grad_scale·loss into grads (a unet_grads_new mirror; NULL: no weight gradients), the attached
// adapters' gradient buffers, dx (N, C_in, h, w) and dcontext (N, L, D) (NULL to skip), all
// accumulating. x (N, C_in, h, w), t (N), context (N, L, D), target (N, C_out, h, w). 0, or -1
// with sl_error.
int unet_regression_step(unet_model *m, unet_model *grads, const float *x, const float *t, const float *context,
                         const float *target, const double *coef, int N, int h, int w, int L, int checkpointing,
                         double grad_scale, float *dx, float *dcontext, float *loss);

// The loss of one micro-batch and, when grad_scale != 0, the gradient of grad_scale·loss
// backpropagated into the attached adapters' gradient buffers (accumulating; grads is a
// gradient mirror of m from unet_grads_new, "none" for a frozen base). 0, or -1 with sl_error.
int train_micro_loss(unet_model *m, unet_model *grads, const sl_schedule *sch, const train_opts *o,
                     const train_micro *mb, double grad_scale, float *loss);

// A nan/inf loss or gradient would poison every parameter through AdamW, so a run stops before
// that update: 0 when x (the `what` of optimizer step `step`) is finite, else -1 with sl_error
// "step K: the <what> is nan; stopping before the update ...".
int train_check_finite(int64_t step, const char *what, double x);

// Optimizer step K = set->step + 1 over n_micro micro-batches: sets the attached set's step to
// K (so u = u(K)), zeroes the gradient block, accumulates, sums the gradient block over the
// ranks (one dist_allreduce_sum_f32 of pb->n floats; a no-op for one process) and the losses
// (one f64 all-reduce of n_micro), measures, clips, updates — every rank the same update.
// losses (n_micro) receive each micro-batch's loss before the division by n_micro. 0, or -1
// with sl_error (the parameters are then unchanged).
int train_step(unet_model *m, param_block *pb, const sl_schedule *sch, const train_opts *o, const train_micro *mbs,
               int n_micro, float *losses, train_step_info *info);
