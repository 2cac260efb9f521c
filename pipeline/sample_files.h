// `singlora sample`'s output folder: NNNNN-SEED.png with the generation parameters in A1111's
// `parameters` text chunk (so A1111's PNG Info and other tools read them), an NNNNN-SEED.json
// sidecar with the same facts as fields, and grid.png when there is more than one image.
#pragma once
#include <stdint.h>

#include "pipeline/generate.h"

// Where the images came from, beyond the generation options (recorded, not computed with).
typedef struct {
    const char *model_path;        // the model as given (A1111's Model is its base name)
    const char *prompt_as_typed;   // with its <lora:...> tags (recorded, as A1111 does); NULL = the prompt
    const char *init_image_path;   // img2img's input file, or NULL
    int clip_skip;                 // A1111's (1 = last layer)
    const char *adapter_path;      // or NULL
    float adapter_scale;
    const char *const *loras;      // --lora FILE[:SCALE] specs
    int n_loras;
} sd_sample_provenance;

// Images k = 0..n-1 from seeds seed + k into out_dir (which must exist), with a progress bar
// per image and "wrote FILE" on stderr. Under several ranks (engine/dist/) every rank calls it:
// image k is made on rank k mod P, and rank 0 alone writes every file, the same bytes as one
// process writes. 0, or -1 with sl_error.
// release: a one-shot run that frees each part of m once it is done with it (as stable-diffusion.cpp
// does): the text encoder once the prompts are encoded, the UNet once the last round's latents are
// denoised, before they are decoded, so the VAE decode of a single image does not sit on top of the
// UNet's memory (earlier images are still written as each is made). m then holds only its VAE,
// tokenizer and schedule. The images are the same either way.
int sd_sample_to_folder(sd_model *m, const sd_generate_opts *o, const sd_sample_provenance *p,
                        const char *out_dir, int n, int64_t seed, int release);
// stable-diffusion.cpp's naming: image 0 is png_path itself, image k > 0 is STEM_<k+1>.png
// (output.png, output_2.png, ...), each with a STEM[_<k+1>].json sidecar; no grid.
int sd_sample_to_file(sd_model *m, const sd_generate_opts *o, const sd_sample_provenance *p, const char *png_path,
                      int n, int64_t seed, int release);
