// Where a model's weights live: the original single-file layout or a diffusers folder.
#pragma once
#include "engine/io/safetensors.h"

typedef enum {
    LAYOUT_UNKNOWN,
    LAYOUT_ORIGINAL,     // one file: model.diffusion_model.*, first_stage_model.*, cond_stage_model.*
    LAYOUT_DIFFUSERS,    // a folder with model_index.json, or one component file of such a folder
    LAYOUT_ADAPTER,      // a SingLoRA/LoRA/DoRA adapter (ours, kohya, diffusers or PEFT names)
} model_layout;

const char *layout_name(model_layout l);
model_layout detect_layout(const st_file *f);
int path_is_dir(const char *path);
int path_exists(const char *path);

// The components of an SD model and the tensor-name prefix each has in the original layout.
typedef struct { const char *name, *original_prefix; } sd_component;
extern const sd_component SD_COMPONENTS[];
extern const int N_SD_COMPONENTS;
// The component an original-layout tensor name belongs to, or -1.
int original_component(const char *tensor_name);

// The weights file of a diffusers folder's component ("unet", "vae", "text_encoder"), with
// `variant` ("fp16", or NULL) picking `*.fp16.safetensors` as diffusers' variant= does.
// Returns a malloc'd path, or NULL with sl_error naming what is missing.
char *diffusers_component_file(const char *dir, const char *component, const char *variant);
