// Loading a UNet from a diffusers folder, a diffusers component file or an original
// single-file checkpoint. Every tensor is widened to f32 once here.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/model_files.h"
#include "engine/io/weights.h"
#include "unet/unet.h"

static int load_visitor(void *ctx, const param_desc *p) {
    weight_loader *wl = ctx;
    *p->slot = weights_load(wl, p->name, p->ndim, p->shape);
    if (!*p->slot) return -1;
    param_hold_loaded(p);
    return 0;
}

// The config for a diffusers component file: --config, else config.json next to the file.
static int component_file_config(unet_config *cfg, const char *file) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", file);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = 0;
    else snprintf(dir, sizeof dir, ".");
    char json[4200];
    snprintf(json, sizeof json, "%s/config.json", dir);
    if (!path_exists(json))
        return sl_error(file, "a diffusers UNet file without config.json next to it; pass --config DIR");
    return unet_config_load_dir(cfg, dir);
}

static int has_unet_tensors(const st_file *f, const char *prefix) {
    size_t n = strlen(prefix);
    for (int i = 0; i < f->n_entries; i++)
        if (!strncmp(f->entries[i].name, prefix, n)) return 1;
    return 0;
}

unet_model *unet_load(const char *path, const char *config_dir, const char *variant) {
    unet_config cfg;
    st_file *f = NULL;
    const char *prefix = "";
    int original = 0;
    if (path_is_dir(path)) {
        char *file = diffusers_component_file(path, "unet", variant);
        if (!file) return NULL;
        if (unet_config_load_dir(&cfg, config_dir ? config_dir : path) != 0) { free(file); return NULL; }
        f = st_open(file);
        free(file);
        if (!f) return NULL;
    } else {
        if (variant) {
            sl_error(path, "--variant picks the weight files of a diffusers folder; this is a single file");
            return NULL;
        }
        if (!path_exists(path)) { sl_error(path, "no such file or folder"); return NULL; }
        f = st_open(path);
        if (!f) return NULL;
        model_layout layout = detect_layout(f);
        int rc;
        if (layout == LAYOUT_ORIGINAL) {
            original = 1;
            prefix = SD_COMPONENTS[0].original_prefix;   // "model.diffusion_model."
            if (!has_unet_tensors(f, prefix)) {
                sl_error(path, "no UNet tensors (%s*) in this checkpoint", prefix);
                st_close(f);
                return NULL;
            }
            rc = config_dir ? unet_config_load_dir(&cfg, config_dir) : unet_config_detect(&cfg, f, prefix);
        } else if (layout == LAYOUT_DIFFUSERS && st_find(f, "conv_in.weight") && st_find(f, "time_embedding.linear_1.weight")) {
            rc = config_dir ? unet_config_load_dir(&cfg, config_dir) : component_file_config(&cfg, path);
        } else {
            rc = sl_error(path, "not a UNet: neither an original checkpoint (model.diffusion_model.*) nor a diffusers UNet file");
        }
        if (rc != 0) {
            // errors from detection carry no file name: add it
            if (!strstr(sl_error_msg(), path)) {
                char msg[1024];
                snprintf(msg, sizeof msg, "%s", sl_error_msg());
                sl_error(path, "%s", msg);
            }
            st_close(f);
            return NULL;
        }
    }

    unet_model *m = unet_model_new(&cfg);
    weight_loader wl = {.file = f, .prefix = prefix, .map_ctx = original ? unet_weight_name_map : NULL, .ctx = &m->cfg};
    int rc = unet_walk(m, load_visitor, &wl);
    if (rc == 0) rc = weights_check_unused(&wl, NULL);
    st_close(f);   // the weights are owned f32 copies now; drop the mapping
    if (rc != 0) {
        unet_free(m);
        return NULL;
    }
    return m;
}

typedef struct {
    float ***slots;   // the adapted layers' weight slots, NULL-terminated
    int n, cap;
} adapted_slots;

static int collect_adapted(void *ctx, const unet_linear *l) {
    adapted_slots *a = ctx;
    if (!l->adapter || !*l->adapter) return 0;
    if (a->n + 2 > a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->slots = sl_realloc(a->slots, (size_t)a->cap * sizeof *a->slots);
    }
    a->slots[a->n++] = l->weight;
    a->slots[a->n] = NULL;
    return 0;
}

void unet_hold_bf16(unet_model *m) {
    adapted_slots a = {0};
    unet_walk_linears(m, collect_adapted, &a);
    unet_walk(m, param_hold_visitor, a.slots);
    free(a.slots);
}
