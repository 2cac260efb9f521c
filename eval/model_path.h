// Where an evaluation model's files are: a transformers folder (config.json + model.safetensors)
// or one .safetensors file (with a config.json beside it when there is one).
#pragma once

// *weights (owned) gets the weights file, *config (owned) the config.json or NULL when there is
// none. `what` names the expected model in errors ("DINO ViT", "CLIP"). A Stable Diffusion
// folder (model_index.json, unet/) is refused by name. 0, or -1 with sl_error.
int eval_model_files(const char *path, const char *what, char **weights, char **config);

// A one-line description of what a safetensors file that lacks the expected tensors holds
// instead ("a Stable Diffusion UNet", "a CLIP model", ...), for the wrong-kind errors.
const char *eval_describe_file(const void *st_file_ptr);
