// Writing a Stable Diffusion model's components (unet, vae, text_encoder) as safetensors, in the
// original single-file layout or the diffusers one, each tensor in a chosen dtype, from a
// per-parameter data source. Each component lists its parameters with the same walk its loader
// uses, so names and shapes have one source. `init` (random weights) and `merge` (a model with
// adapters folded in) write through it.
//
// The original layout differs from the diffusers one beyond names: a component prefix
// (model.diffusion_model., first_stage_model., cond_stage_model.), the VAE's mid-block attention
// projections stored as 1×1 convs (C, C, 1, 1), and for SD 2.x text encoders OpenCLIP's fused
// in_proj (rows [q; k; v]) and one more resblock than diffusers keeps (the last, which SD 2.x
// skips: it conditions on the penultimate layer).
#pragma once
#include <stdint.h>

#include "engine/core/dtype.h"
#include "engine/core/params.h"

typedef struct {
    const char *name;                   // the diffusers subfolder (and its name in SD_COMPONENTS)
    const char *weights;                // its weights file: <weights>.safetensors
    const char *library, *class_name;   // its model_index.json entry
} mw_component;
enum { MW_N_COMPONENTS = 3 };
extern const mw_component MW_COMPONENTS[MW_N_COMPONENTS];   // unet, vae, text_encoder
// The index of a component in MW_COMPONENTS, or -1.
int mw_component_find(const char *name);

// One parameter the writer asks its source for.
typedef struct {
    const char *component;      // "unet", "vae", "text_encoder"
    const param_desc *p;        // diffusers name, shape (of this row block), init kind, fan_in
    const char *name;           // the full name it is stored under (with the prefix when original)
    int ndim;                   // the stored tensor's shape: the whole fused tensor, and the
    int64_t shape[4];           // original layout's shape (1×1 convs) where it differs
    int part, n_parts;          // row block `part` of `n_parts` of a fused tensor; else 0 of 1
    int original_only;          // not in the diffusers layout (SD 2.x's skipped last resblock)
} mw_param;

// What a source gives for one parameter: p->p's shape worth of values, either as owned f32
// (sl_alloc_f32; the writer converts and frees it, or keeps it when dt is F32) or as bytes
// already in dt (borrowed until mw_save returns). dt is preset to the writer's dtype.
typedef struct {
    dtype dt;
    float *f32;
    const void *raw;
} mw_data;
typedef int (*mw_source)(void *ctx, const mw_param *p, mw_data *d);

typedef struct model_writer model_writer;

// A writer for one layout (original: 1, diffusers: 0) whose default storage dtype is dt. Its
// files carry __metadata__ {"format": "pt"} unless mw_meta changes it.
model_writer *mw_new(int original, dtype dt);
// Adds every parameter of `component` at the shapes of its config in config_dir (a diffusers-
// style folder: unet/config.json, vae/config.json, text_encoder/config.json), asking src for
// the data. 0, or -1 with sl_error (from the config, the source, or a bad fused tensor).
int mw_add_component(model_writer *w, const char *component, const char *config_dir, mw_source src, void *ctx);
// Adds one tensor from owned f32 data, stored as dt (F32, F16 or BF16); the f32 buffer is freed
// (or kept, for F32) by the writer. 0, or -1 with sl_error for another dtype.
int mw_add_f32(model_writer *w, const char *name, dtype dt, int ndim, const int64_t *shape, float *owned);
// Adds one tensor from bytes already in dt, borrowed until mw_save returns.
void mw_add_raw(model_writer *w, const char *name, dtype dt, int ndim, const int64_t *shape, const void *bytes);
void mw_meta(model_writer *w, const char *key, const char *value);
// Writes what was added to `path` (atomically) and empties the writer for the next file
// (metadata back to {"format": "pt"}). 0, or -1 with sl_error.
int mw_save(model_writer *w, const char *path);
// Parameters (values) and tensors added so far, over every save.
int64_t mw_param_count(const model_writer *w);
int64_t mw_tensor_count(const model_writer *w);
void mw_free(model_writer *w);
