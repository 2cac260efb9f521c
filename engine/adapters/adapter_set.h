// A set of adapters over a model's Linear layers, and its file: one safetensors tensor per
// adapter parameter, `unet.<module path>.singlora.A` / `.lora.down` / `.lora.up` /
// `.dora.magnitude`, with `__metadata__` keys singlora.format ("1"), .method, .rank, .alpha,
// .ramp_steps, .step, .init, .targets, .base_model.
#pragma once
#include <stdint.h>

#include "engine/adapters/adapter.h"

typedef struct {
    char *module;   // diffusers module path, e.g. down_blocks.0.attentions.0.transformer_blocks.0.attn2.to_k
    adapter a;
} adapter_slot;

typedef struct {
    adapter_method method;
    int rank;
    float alpha;
    int64_t ramp_steps;   // T of u(t) = min(t/T, 1); 0 disables the ramp
    int64_t step;         // optimizer steps taken (so u is known)
    char init[48];        // "kaiming" or "normal:STD"
    char targets[512];    // the target patterns, comma-separated
    char base_model[40];  // hash of the base UNet's tensor names and shapes
    adapter_slot *slots;
    int n_slots;
} adapter_set;

// Limits on an adapter's numbers, whether from the command line or a file's metadata.
#define ADAPTER_MAX_RANK 4096
#define ADAPTER_MAX_ALPHA 1e6
#define ADAPTER_MAX_STEPS 1000000000000LL   // ramp_steps and step
#define ADAPTER_SCALE_MAX 1000.0            // |strength| of an adapter or a LoRA file when applied

#define ADAPTER_DEFAULT_TARGETS "attn2.to_q,attn2.to_k,attn2.to_v,attn2.to_out.0"

// u(t) at the set's current step.
float adapter_set_ramp(const adapter_set *s);
// Does module path match one of the comma-separated target patterns? A pattern matches a
// path that equals it or ends with "." + pattern ("attn2.to_k" matches "...blocks.0.attn2.to_k").
int adapter_target_matches(const char *targets, const char *module);
// Expands the shorthands: cross-attn (default), self-attn, attn, ff, proj, all (every Linear of the
// transformers), resnets (conv1, conv2, conv_shortcut of the ResNet blocks), conv (those and the
// down/up samplers' conv).
const char *adapter_targets_expand(const char *spec, char *buf, size_t len);

// Adds a slot (allocated, zero-initialized) for a module of shape (d_out, d_in).
adapter *adapter_set_add(adapter_set *s, const char *module, int d_in, int d_out);
adapter *adapter_set_find(const adapter_set *s, const char *module);
int64_t adapter_set_param_count(const adapter_set *s);
void adapter_set_free(adapter_set *s);

// The file name of slot tensor k (adapter_tensor's k), e.g. unet.<module>.singlora.A.
void adapter_tensor_name(char *buf, size_t len, const char *module, adapter_method m, int k);

// Fixes a loaded adapter's layer shape from the model (a SingLoRA file stores only
// max(d_in, d_out) rows) and checks it. 0, or -1 with sl_error naming the module.
int adapter_bind_shape(adapter *a, const char *module, int d_in, int d_out, const char *path);


int adapter_set_save(const adapter_set *s, const char *path);
// Loads and checks the file's own consistency (metadata present and valid, every tensor of a
// known form, shapes consistent with rank and method). The model check comes at attach time.
adapter_set *adapter_set_load(const char *path);

// 64-bit FNV-1a over "name:dim,dim;" of tensors sorted by name, as 16 hex digits.
void model_hash(char out[17], const char *const *names, const int64_t *const *shapes, const int *ndims, int n);
