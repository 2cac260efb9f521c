// Loading a VAE (diffusers folder / file, original single file or standalone VAE) through the
// parameter walk.
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/model_files.h"
#include "engine/core/tensor.h"
#include "engine/io/weights.h"
#include "vae/names.h"
#include "vae/vae.h"

// ---- loading ----
static int load_visit(void *user, const param_desc *p) {
    *p->slot = weights_load(user, p->name, p->ndim, p->shape);
    if (!*p->slot) return -1;
    param_hold_loaded(p);
    return 0;
}

// The config for a model: --config DIR (DIR/vae/config.json or DIR/config.json), else the
// diffusers folder's vae/config.json or the config.json next to a component file.
static int find_config(char *out, size_t len, const char *config_dir, const char *model_path, int model_is_dir) {
    if (config_dir) {
        snprintf(out, len, "%s/vae/config.json", config_dir);
        if (path_exists(out)) return 1;
        snprintf(out, len, "%s/config.json", config_dir);
        if (path_exists(out)) return 1;
        if (!path_is_dir(config_dir)) return sl_error(config_dir, "--config: not a folder");
        return sl_error(config_dir, "--config: no vae/config.json or config.json in this folder");
    }
    if (model_is_dir) {
        snprintf(out, len, "%s/vae/config.json", model_path);
        if (path_exists(out)) return 1;
        return sl_error(model_path, "no vae/config.json in this diffusers folder");
    }
    char *copy = sl_strdup(model_path);
    snprintf(out, len, "%s/config.json", dirname(copy));
    free(copy);
    return path_exists(out) ? 1 : 0;
}

vae_model *vae_load(const char *model_path, const char *config_dir, const char *variant, int parts) {
    int is_dir = path_is_dir(model_path);
    char *file_path = NULL;
    if (is_dir) {
        file_path = diffusers_component_file(model_path, "vae", variant);
        if (!file_path) return NULL;
    } else {
        if (!path_exists(model_path)) { sl_error(model_path, "no such file or folder"); return NULL; }
        if (variant) {
            sl_error(model_path, "--variant %s needs a diffusers folder (a single file has one dtype)", variant);
            return NULL;
        }
        file_path = sl_strdup(model_path);
    }
    st_file *f = st_open(file_path);
    free(file_path);
    if (!f) return NULL;

    // which layout and prefix: the names of a known tensor tell
    const char *prefix = NULL;
    int original = 0;
    static const struct { const char *prefix, *probe; int original; } PROBES[] = {
        {"first_stage_model.", "first_stage_model.decoder.conv_in.weight", 1},
        {"first_stage_model.", "first_stage_model.encoder.conv_in.weight", 1},
        {"", "decoder.up.0.block.0.conv1.weight", 1},
        {"", "encoder.down.0.block.0.conv1.weight", 1},
        {"", "decoder.up_blocks.0.resnets.0.conv1.weight", 0},
        {"", "encoder.down_blocks.0.resnets.0.conv1.weight", 0},
        {"vae.", "vae.decoder.up_blocks.0.resnets.0.conv1.weight", 0},
    };
    for (size_t i = 0; i < sizeof PROBES / sizeof PROBES[0] && !prefix; i++)
        if (st_find(f, PROBES[i].probe)) prefix = PROBES[i].prefix, original = PROBES[i].original;
    if (!prefix) {
        sl_error(f->path, "no VAE weights found (neither first_stage_model.* nor diffusers encoder./decoder. names)");
        st_close(f);
        return NULL;
    }

    vae_model *m = sl_calloc(1, sizeof *m);
    char cfg_path[4096];
    int has_cfg = find_config(cfg_path, sizeof cfg_path, config_dir, model_path, is_dir);
    if (has_cfg < 0) goto fail;
    if (has_cfg) {
        if (vae_config_from_json(&m->cfg, cfg_path)) goto fail;
    } else if (original) {
        if (vae_config_detect(&m->cfg, f, prefix)) goto fail;
    } else {
        sl_error(model_path, "a diffusers VAE file needs its config.json next to it (or pass --config DIR)");
        goto fail;
    }

    vae_name_ctx nctx = {m->cfg.n_levels, f, prefix};
    weight_loader wl = {.file = f, .prefix = prefix, .map_ctx = original ? vae_name_original : vae_name_diffusers, .ctx = &nctx};
    m->parts = parts;
    if (vae_walk(m, parts, load_visit, &wl)) goto fail;
    // the part not loaded is not "unused"; nor are training-only tensors of original checkpoints
    const char *ignore[6] = {0};
    int ni = 0;
    ignore[ni++] = "loss.";
    if (!(parts & VAE_ENCODER)) ignore[ni++] = "encoder.", ignore[ni++] = "quant_conv.";
    if (!(parts & VAE_DECODER)) ignore[ni++] = "decoder.", ignore[ni++] = "post_quant_conv.";
    if (weights_check_unused(&wl, ignore)) goto fail;
    st_close(f);
    return m;
fail:
    vae_free(m);
    st_close(f);
    return NULL;
}
