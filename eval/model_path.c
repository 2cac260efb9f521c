#include "eval/model_path.h"

#include <stdio.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/model_files.h"
#include "engine/io/safetensors.h"

int eval_model_files(const char *path, const char *what, char **weights, char **config) {
    char buf[4096];
    *weights = *config = NULL;
    if (path_is_dir(path)) {
        snprintf(buf, sizeof buf, "%s/model_index.json", path);
        int sd = path_exists(buf);
        snprintf(buf, sizeof buf, "%s/diffusion_pytorch_model.safetensors", path);
        int component = path_exists(buf);
        if (sd || component)
            return sl_error(path, "this is a %s, not a %s model", sd ? "Stable Diffusion (diffusers) folder"
                                                                     : "diffusers model component (a UNet, VAE, ...)", what);
        snprintf(buf, sizeof buf, "%s/model.safetensors", path);
        if (!path_exists(buf)) return sl_error(path, "no model.safetensors here (expected a %s folder)", what);
        *weights = sl_strdup(buf);
        snprintf(buf, sizeof buf, "%s/config.json", path);
        if (path_exists(buf)) *config = sl_strdup(buf);
        return 0;
    }
    if (!path_exists(path)) return sl_error(path, "no such file or folder");
    *weights = sl_strdup(path);
    const char *slash = strrchr(path, '/');
    snprintf(buf, sizeof buf, "%.*sconfig.json", slash ? (int)(slash - path + 1) : 0, path);
    if (path_exists(buf)) *config = sl_strdup(buf);
    return 0;
}

const char *eval_describe_file(const void *p) {
    const st_file *f = p;
    if (st_meta(f, "singlora.format")) return "an adapter";
    for (int i = 0; i < f->n_entries; i++)   // a CLIPModel holds text_model.* too
        if (!strncmp(f->entries[i].name, "vision_model.", 13)) return "a CLIP model";
    for (int i = 0; i < f->n_entries; i++) {
        const char *n = f->entries[i].name;
        if (!strncmp(n, "model.diffusion_model.", 22) || !strncmp(n, "down_blocks.", 12)) return "a Stable Diffusion UNet";
        if (!strncmp(n, "first_stage_model.", 18) || !strncmp(n, "decoder.", 8)) return "a VAE";
        if (!strncmp(n, "text_model.", 11) || !strncmp(n, "cond_stage_model.", 17)) return "a CLIP text encoder";
        if (!strncmp(n, "cls_token", 9) || !strncmp(n, "embeddings.cls_token", 20) || !strncmp(n, "vit.embeddings.", 15))
            return "a ViT (DINO)";
    }
    return detect_layout(f) == LAYOUT_UNKNOWN ? "tensors of an unknown model" : "a Stable Diffusion model";
}
