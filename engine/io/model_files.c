#include "engine/io/model_files.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/core/error.h"

const sd_component SD_COMPONENTS[] = {
    {"unet", "model.diffusion_model."},
    {"vae", "first_stage_model."},
    {"text_encoder", "cond_stage_model."},
};
const int N_SD_COMPONENTS = sizeof SD_COMPONENTS / sizeof SD_COMPONENTS[0];

const char *layout_name(model_layout l) {
    switch (l) {
    case LAYOUT_ORIGINAL: return "single-file original";
    case LAYOUT_DIFFUSERS: return "diffusers";
    case LAYOUT_ADAPTER: return "adapter";
    default: return "unknown";
    }
}

int path_is_dir(const char *path) {
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

int path_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

int original_component(const char *name) {
    for (int i = 0; i < N_SD_COMPONENTS; i++)
        if (strncmp(name, SD_COMPONENTS[i].original_prefix, strlen(SD_COMPONENTS[i].original_prefix)) == 0) return i;
    return -1;
}

static int has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }

model_layout detect_layout(const st_file *f) {
    if (st_meta(f, "singlora.format")) return LAYOUT_ADAPTER;
    int original = 0, diffusers = 0, adapter = 0;
    for (int i = 0; i < f->n_entries; i++) {
        const char *n = f->entries[i].name;
        if (original_component(n) >= 0) original++;
        if (has_prefix(n, "lora_unet_") || has_prefix(n, "lora_te") || strstr(n, ".lora_down.") ||
            strstr(n, ".lora.down.") || strstr(n, ".lora_A.") || strstr(n, ".singlora.A"))
            adapter++;
        if (has_prefix(n, "down_blocks.") || has_prefix(n, "encoder.down_blocks.") || has_prefix(n, "text_model.") ||
            has_prefix(n, "conv_in.") || has_prefix(n, "decoder.conv_in."))
            diffusers++;
    }
    if (adapter && adapter * 2 >= f->n_entries) return LAYOUT_ADAPTER;
    if (original) return LAYOUT_ORIGINAL;
    if (diffusers) return LAYOUT_DIFFUSERS;
    return LAYOUT_UNKNOWN;
}

char *diffusers_component_file(const char *dir, const char *component, const char *variant) {
    static const char *stems[] = {"diffusion_pytorch_model", "model"};
    char buf[4096];
    for (int k = 0; k < 2; k++) {
        if (variant) snprintf(buf, sizeof buf, "%s/%s/%s.%s.safetensors", dir, component, stems[k], variant);
        else snprintf(buf, sizeof buf, "%s/%s/%s.safetensors", dir, component, stems[k]);
        if (path_exists(buf)) return sl_strdup(buf);
    }
    snprintf(buf, sizeof buf, "%s/%s", dir, component);
    if (!path_is_dir(buf)) sl_error(dir, "no %s/ folder (not a complete diffusers model)", component);
    else if (variant) sl_error(buf, "no %s.%s.safetensors weights for variant '%s'", stems[0], variant, variant);
    else sl_error(buf, "no diffusion_pytorch_model.safetensors or model.safetensors (only .safetensors weights are read)");
    return NULL;
}
