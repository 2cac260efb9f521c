#include "pipeline/sd_model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/bf16_weights.h"
#include "engine/core/error.h"
#include "engine/core/tensor.h"
#include "engine/io/model_files.h"

int sd_parse_prediction(const char *name, sl_prediction *out) {
    if (!strcmp(name, "epsilon") || !strcmp(name, "eps")) *out = SL_PRED_EPSILON;
    else if (!strcmp(name, "v_prediction") || !strcmp(name, "v")) *out = SL_PRED_V;
    else return sl_error(NULL, "unknown prediction type '%s' (epsilon or v_prediction)", name);
    return 0;
}

static int has_scheduler(const char *dir) {
    char buf[4096];
    snprintf(buf, sizeof buf, "%s/scheduler/scheduler_config.json", dir);
    return path_exists(buf);
}

static int load_schedule(sd_model *m, const sd_load_opts *o) {
    int rc;
    if (o->config_dir && has_scheduler(o->config_dir)) rc = sl_schedule_load(&m->sched, o->config_dir);
    else if (path_is_dir(o->path) && has_scheduler(o->path)) rc = sl_schedule_load(&m->sched, o->path);
    else {
        // A single file carries no scheduler config. Its users come from A1111, ComfyUI or
        // stable-diffusion.cpp, which all space the timesteps evenly from T-1 down to 0 (999, 666,
        // 333, 0 at 4 steps) for the Euler family, and A1111's DDIM uses leading + 1 (751 ... 1):
        // exactly each sampler's own default spacing (SL_SPACING_DEFAULT), not the leading
        // spacing of SD's diffusers PNDM config.
        rc = sl_schedule_init(&m->sched, "scaled_linear", 1000, 0.00085, 0.012);
        m->sched.spacing = SL_SPACING_DEFAULT;
        m->sched.steps_offset = 1;
    }
    if (rc == 0 && o->prediction) rc = sd_parse_prediction(o->prediction, &m->sched.prediction);
    return rc;
}

sd_model *sd_model_load(const sd_load_opts *o) {
    sd_model *m = sl_calloc(1, sizeof *m);
    m->clip_skip = 1;
    if (!path_exists(o->path)) {
        sl_error(o->path, "no such model file or folder");
        free(m);
        return NULL;
    }
    if (load_schedule(m, o) != 0) goto fail;
    if (!o->no_tokenizer) {
        m->tok = clip_tokenizer_for_model(o->path, o->tokenizer_dir);
        if (!m->tok) goto fail;
    }
    bf16_weights_set_hold_loads(o->hold_bf16 & SD_HOLD_TEXT);
    m->text = clip_text_load(o->path, o->config_dir, o->variant);
    bf16_weights_set_hold_loads(o->hold_bf16 & SD_HOLD_UNET);
    if (m->text) m->unet = unet_load(o->path, o->config_dir, o->variant);
    bf16_weights_set_hold_loads(o->hold_bf16 & SD_HOLD_VAE);
    if (m->unet) m->vae = vae_load(o->path, o->config_dir, o->variant, o->vae_parts ? o->vae_parts : VAE_DECODER);
    bf16_weights_set_hold_loads(0);
    if (!m->text || !m->unet || !m->vae) goto fail;
    if (o->hold_bf16) sl_memory_release();   // the freed f32 load buffers between the bf16 copies
    if (m->text->cfg.hidden != m->unet->cfg.cross_attention_dim) {
        sl_error(o->path, "the text encoder's width %d does not match the UNet's cross_attention_dim %d",
                 m->text->cfg.hidden, m->unet->cfg.cross_attention_dim);
        goto fail;
    }
    if (m->vae->cfg.latent_channels != m->unet->cfg.in_channels) {
        sl_error(o->path, "the VAE's %d latent channels do not match the UNet's in_channels %d",
                 m->vae->cfg.latent_channels, m->unet->cfg.in_channels);
        goto fail;
    }
    return m;
fail:
    sd_model_free(m);
    return NULL;
}

void sd_model_free(sd_model *m) {
    if (!m) return;
    if (m->unet) unet_free(m->unet);
    if (m->vae) vae_free(m->vae);
    if (m->text) clip_text_free(m->text);
    if (m->tok) clip_tokenizer_free(m->tok);
    sl_schedule_free(&m->sched);
    free(m);
}
