// The UNet2DConditionModel configuration (SD 1.x / 2.x family): read from a diffusers
// unet/config.json, or detected from the tensor shapes of an original single-file checkpoint.
#pragma once
#include "engine/io/config.h"
#include "engine/io/safetensors.h"

#define UNET_MAX_LEVELS 8
// Bounds on the sizes a config may give (far above any SD model), so that products such as
// 4·block_out_channels[0] or channels × kernel² stay well inside an int.
#define UNET_MAX_WIDTH 65536   // channels, attention widths, time embedding
#define UNET_MAX_DEPTH 64      // layers_per_block, transformer_layers_per_block

typedef struct {
    int in_channels, out_channels;
    int n_levels;                            // len(block_out_channels)
    int block_out_channels[UNET_MAX_LEVELS];
    int layers_per_block;                    // resnets per down block (up blocks have one more)
    int down_attn[UNET_MAX_LEVELS];          // down block i is CrossAttnDownBlock2D
    int up_attn[UNET_MAX_LEVELS];            // up block i (i = 0 is the deepest) is CrossAttnUpBlock2D
    int heads[UNET_MAX_LEVELS];              // attention heads at level i (down block i; up block n-1-i)
    int transformer_layers[UNET_MAX_LEVELS]; // BasicTransformerBlocks per Transformer2DModel at level i
    int cross_attention_dim;                 // context width D
    int use_linear_projection;               // proj_in/proj_out are Linear (SD 2.x), else 1×1 conv
    int norm_num_groups;
    float norm_eps;                          // resnets and conv_norm_out (transformers use 1e-6)
    int flip_sin_to_cos;
    float freq_shift;
    int upcast_attention;                    // PyTorch precision switch only; we compute in f32
    int center_input_sample;                 // x -> 2x - 1 before conv_in
    int time_embed_dim;                      // time_embedding_dim, default 4·block_out_channels[0]
    int conv_in_kernel, conv_out_kernel;
    int downsample_padding;
    float mid_block_scale_factor;            // output scale of the mid block's resnets
    float resnet_out_scale_factor;           // of the down/up blocks' resnets
} unet_config;

// Parses a diffusers unet/config.json. Unsupported options (other block or embedding types,
// ...) are errors naming the key. 0, or -1 with sl_error.
int unet_config_from_json(unet_config *cfg, const json_config *json);
// Loads `dir`/unet/config.json (or `dir`/config.json when `dir` is the unet folder itself).
int unet_config_load_dir(unet_config *cfg, const char *dir);
// Detects the configuration from the shapes of an original-layout checkpoint's UNet tensors
// (under `prefix`, e.g. "model.diffusion_model."): channels, levels, layers, context width,
// projection kind from shapes; heads by family (linear proj_in: SD 2.x, head dim 64; conv:
// SD 1.x, 8 heads); the rest at the SD defaults (32 groups, eps 1e-5, flip_sin_to_cos).
int unet_config_detect(unet_config *cfg, const st_file *f, const char *prefix);
// Checks the invariants the forward relies on (channels divisible by groups and heads, ...).
int unet_config_validate(const unet_config *cfg, const char *source);

// Level of up block i (its channels and heads are those of down level n-1-i).
static inline int unet_up_level(const unet_config *cfg, int i) { return cfg->n_levels - 1 - i; }
