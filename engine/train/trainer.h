// `singlora train`: DreamBooth personalization of a Stable Diffusion model with a SingLoRA /
// LoRA / DoRA adapter, from a folder of photos to OUT/adapter.safetensors and
// OUT/lora.safetensors (../shared/SINGLORA.md, "Training step" and "Trace"; issue 12).
//
// OUT holds: adapter.safetensors (step + settings in its metadata), lora.safetensors (kohya,
// ss_* metadata), log.csv (step, loss, loss_ema, lr, u, grad_norm, seconds), loss.png,
// validation/step-N.png, config.json (every resolved option), checkpoints/checkpoint-N/
// (adapter, AdamW moments, step; written to a temp folder and renamed), cache/ (VAE posteriors
// and prompt embeddings keyed by model, image bytes and settings).
#pragma once
#include <stdint.h>

typedef struct {
    // model and data
    const char *model, *config_dir, *variant, *tokenizer_dir, *prediction;   // prediction: NULL = the scheduler's
    const char *instance_data_dir, *instance_prompt, *output_dir;
    const char *class_data_dir, *class_prompt;
    int with_prior_preservation;
    double prior_loss_weight;
    int num_class_images, sample_batch_size;
    const char *caption_extension;   // NULL or "": no captions; else instance and class images both read
                                     // NAME + extension (an image without one gets its folder's prompt)
    int resolution, center_crop, random_flip;
    // adapter
    const char *method;              // singlora | lora | dora
    int rank;
    double alpha;                    // <= 0: = rank
    int64_t ramp_steps;              // < 0: min(100, steps/10)
    const char *init, *targets;
    // optimization
    int train_batch_size, gradient_accumulation_steps;
    int64_t max_train_steps;         // 0: from num_train_epochs
    int num_train_epochs;
    double learning_rate;
    const char *lr_scheduler;
    int64_t lr_warmup_steps;
    double adam_beta1, adam_beta2, adam_weight_decay, adam_epsilon, max_grad_norm, snr_gamma;
    uint64_t seed;
    int gradient_checkpointing, threads;
    const char *precision;           // fp32 | bf16 (every GEMM; engine/kernels/gemm.h); NULL: leave the
                                     // process's precision as it is (fp32 unless a caller set it)
    // checkpoints, validation, outputs
    int64_t checkpointing_steps;
    int checkpoints_total_limit;     // 0: keep all
    const char *resume_from_checkpoint;   // NULL, "latest" or a checkpoint folder
    const char *validation_prompt;
    int num_validation_images;
    int64_t validation_steps;
    const char *trace;               // --trace FILE or NULL
    int quiet;                       // no progress bar
    const char *command_line;        // recorded in config.json
} train_config;

// diffusers' defaults (train_dreambooth_lora.py) and the project's adapter defaults.
void train_config_defaults(train_config *c);
// Runs the whole training. 0, or -1 with sl_error (one line naming the file and the problem).
int train_run(const train_config *c);
