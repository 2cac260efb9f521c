// `sample --from-png`: the settings of an image from its A1111 `parameters` chunk (written by
// singlora or by A1111), as generation options to start from before the command line's own.
#pragma once
#include "pipeline/a1111_params.h"
#include "pipeline/generate.h"

typedef struct {
    a1111_params params;          // the parsed chunk (prompt and negative point into it)
    sd_generate_opts gen;         // prompt, negative, size, emphasis, long prompts, denoise options
    long long seed;
    int clip_skip;                // 1 when absent
    int img2img;                  // "Denoising strength" present: the image was made from an init image
    const char *model_hash;       // A1111's 10 hex digits, or NULL
    const char *adapter, *loras;  // singlora's Adapter / Lora values, or NULL (files not recorded in full)
} sd_png_replay;

// Fills r from png's chunk over the defaults already in r->gen / r->seed / r->clip_skip.
// 0, or -1 with sl_error naming the file and the key (no chunk, a value that is not a number,
// a sampler or schedule type singlora does not have).
int sd_png_replay_load(const char *png, sd_png_replay *r);
void sd_png_replay_free(sd_png_replay *r);
