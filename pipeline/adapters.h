// Adapters and LoRA files on a loaded UNet: creating a fresh adapter set over its Linear
// modules, and folding other tools' LoRA files (`--lora FILE[:SCALE]`) into its weights.
#pragma once
#include "engine/adapters/adapter_set.h"
#include "unet/unet.h"

typedef struct {
    adapter_method method;
    int rank;
    float alpha;
    int64_t ramp_steps;
    const char *init;        // "kaiming" or "normal:STD"
    const char *targets;     // patterns or shorthands (cross-attn, self-attn, attn, ff, proj, all)
    uint64_t seed;
} adapter_new_opts;

// A freshly initialized set over every Linear of m that matches the targets (step 0). NULL with
// sl_error (no module matched, bad init spec, ...).
adapter_set *adapter_set_create(unet_model *m, const adapter_new_opts *o);

// Applies "FILE" or "FILE:SCALE" (a kohya / diffusers / PEFT LoRA) to m's weights and prints
// "lora FILE: applied K of N modules" plus what did not match. 0, or -1 with sl_error.
int unet_apply_lora_spec(unet_model *m, const char *spec);
// Applies the prompt's A1111 <lora:NAME:W> tags (pipeline/prompt_syntax.h): lora_dir/NAME.safetensors
// at weight W each; *text gets the prompt without the tags (malloc'd). A tag without lora_dir
// (NULL) or without its file is an error naming both. 0, or -1 with sl_error.
int unet_apply_prompt_loras(unet_model *m, const char *prompt, const char *lora_dir, char **text);

// Folds the attached-to-be adapter set into m's weights (W0 += ΔW·scale; DoRA interpolates).
// Every slot must find its module (as unet_attach_adapters checks; a different base-model hash
// is only a warning, as there). 0, or -1 with sl_error.
int unet_merge_adapters(unet_model *m, adapter_set *s, float scale, const char *path);
