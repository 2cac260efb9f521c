// Standard LoRA files other tools make and read: kohya-ss (`lora_unet_<module_with_underscores>
// .lora_down.weight / .lora_up.weight / .alpha [/ .dora_scale]`), diffusers
// (`unet.<module>.lora.down.weight / .lora.up.weight`) and PEFT (`<prefix>.<module>.lora_A.weight /
// .lora_B.weight`). Export writes an adapter set as an exactly equivalent standard LoRA; import
// folds a LoRA file into a model's weights.
#pragma once
#include "engine/adapters/adapter_set.h"

typedef enum { LORA_FORMAT_KOHYA, LORA_FORMAT_DIFFUSERS } lora_format;

// Writes `s` as a standard LoRA. SingLoRA: up = s·u·A[:d_out], down = A[:d_in]ᵀ, alpha = r;
// LoRA as is; DoRA (kohya only) adds dora_scale (d_out, 1) = m. The diffusers format has no
// alpha, so the scale is folded into up. `d_in`/`d_out` of every slot must be bound.
int lora_export(const adapter_set *s, lora_format fmt, const char *path);
// The same with extra metadata (e.g. a trainer's ss_* keys), set after and over the defaults.
int lora_export_meta(const adapter_set *s, lora_format fmt, const char *path, const char *const *keys,
                     const char *const *values, int n_meta);

// The model side of an import: the weight (d_out, d_in) of a Linear (or 1×1 conv) module, by
// diffusers module path (e.g. "down_blocks.0.attentions.0.proj_in"), or NULL when the model has
// no such module. `modules` lists every module path the model has, for resolving kohya names.
typedef float *(*lora_weight_fn)(void *ctx, const char *module, int *d_out, int *d_in);

typedef struct {
    int applied, total;       // UNet LoRA modules folded in / found in the file
    int tensors_applied;      // tensors of the applied modules (down, up, alpha, dora_scale)
    int tensors_total;        // every tensor in the file
    int text_encoder;         // text-encoder tensors (not applied yet)
    char unmatched[512];      // the first few names that matched nothing
} lora_apply_report;

// W += scale · (alpha/r) · up·down for every UNet module in the file (DoRA: rescaled rows).
// Errors (file unreadable, shapes that do not match the model) return -1 with sl_error.
int lora_apply(const char *path, float scale, const char *const *modules, int n_modules, lora_weight_fn weight,
               void *ctx, lora_apply_report *rep);
