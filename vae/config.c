// VAE config: from a diffusers vae/config.json, or detected from an original file's shapes.
#include <stdio.h>
#include <string.h>

#include "engine/io/config.h"
#include "engine/core/error.h"
#include "vae/vae.h"

static void config_defaults(vae_config *c) {
    memset(c, 0, sizeof *c);
    c->in_channels = 3;
    c->out_channels = 3;
    c->latent_channels = 4;
    c->layers_per_block = 1;
    c->groups = 32;
    c->eps = 1e-6f;
    c->scaling_factor = 0.18215f;
    c->mid_attention = 1;
    c->quant_conv = 1;
    c->post_quant_conv = 1;
}

int vae_factor(const vae_config *c) { return 1 << (c->n_levels - 1); }

int vae_config_check(const vae_config *c, const char *where) {
    if (c->n_levels < 1 || c->n_levels > VAE_MAX_LEVELS)
        return sl_error(where, "block_out_channels has %d entries (1 to %d supported)", c->n_levels, VAE_MAX_LEVELS);
    if (c->in_channels < 1 || c->out_channels < 1 || c->latent_channels < 1 || c->layers_per_block < 1 || c->groups < 1)
        return sl_error(where, "in/out/latent channels, layers_per_block and norm_num_groups must be positive");
    for (int i = 0; i < c->n_levels; i++) {
        if (c->block_out[i] < 1) return sl_error(where, "block_out_channels[%d] = %d is not positive", i, c->block_out[i]);
        if (c->block_out[i] % c->groups)
            return sl_error(where, "block_out_channels[%d] = %d is not divisible by norm_num_groups = %d", i,
                            c->block_out[i], c->groups);
    }
    if (!(c->scaling_factor > 0)) return sl_error(where, "scaling_factor must be positive");
    return 0;
}

// The optional list `key` must name the block type `only` once per level.
static int check_block_types(const json_config *j, const char *path, const char *key, const char *only, int n_levels) {
    const char *types[VAE_MAX_LEVELS + 1];
    int n = 0;
    if (!config_has(j, key)) return 0;
    if (config_string_list(j, key, types, VAE_MAX_LEVELS + 1, &n)) return -1;
    for (int i = 0; i < n; i++)
        if (strcmp(types[i], only)) return sl_error(path, "key '%s': '%s' is not supported (only %s)", key, types[i], only);
    if (n != n_levels) return sl_error(path, "%s has %d entries but block_out_channels has %d", key, n, n_levels);
    return 0;
}

int vae_config_from_json(vae_config *c, const char *path) {
    config_defaults(c);
    json_config *j = config_load(path);
    if (!j) return -1;
    int rc = -1, mid_attn = 1, qc = 1, pqc = 1;
    double sf = 0.18215;
    const char *act;
    if (config_int_list(j, "block_out_channels", c->block_out, VAE_MAX_LEVELS, &c->n_levels) ||
        config_int_or(j, "layers_per_block", 1, &c->layers_per_block) ||
        config_int_or(j, "latent_channels", 4, &c->latent_channels) ||
        config_int_or(j, "norm_num_groups", 32, &c->groups) ||
        config_int_or(j, "in_channels", 3, &c->in_channels) ||
        config_int_or(j, "out_channels", 3, &c->out_channels) ||
        config_float_or(j, "scaling_factor", 0.18215, &sf) ||
        config_string_or(j, "act_fn", "silu", &act) ||
        config_bool_or(j, "mid_block_add_attention", 1, &mid_attn) ||
        config_bool_or(j, "use_quant_conv", 1, &qc) ||
        config_bool_or(j, "use_post_quant_conv", 1, &pqc))
        goto done;
    c->scaling_factor = (float)sf;
    c->mid_attention = mid_attn;
    c->quant_conv = qc;
    c->post_quant_conv = pqc;
    if (strcmp(act, "silu") != 0) { sl_error(path, "key 'act_fn': '%s' is not supported (only silu)", act); goto done; }
    if (check_block_types(j, path, "down_block_types", "DownEncoderBlock2D", c->n_levels) ||
        check_block_types(j, path, "up_block_types", "UpDecoderBlock2D", c->n_levels))
        goto done;
    rc = vae_config_check(c, path);
done:
    config_free(j);
    return rc;
}

static const st_entry *findf(const st_file *f, const char *prefix, const char *fmt, int a, int b) {
    char rest[256], name[512];
    snprintf(rest, sizeof rest, fmt, a, b);
    snprintf(name, sizeof name, "%s%s", prefix, rest);
    return st_find(f, name);
}

int vae_config_detect(vae_config *c, const st_file *f, const char *prefix) {
    config_defaults(c);
    const st_entry *e;
    // levels: encoder.down.{i}.block.0.conv1.weight (C_out, C_in, 3, 3)
    for (c->n_levels = 0; c->n_levels <= VAE_MAX_LEVELS; c->n_levels++) {
        e = findf(f, prefix, "encoder.down.%d.block.0.conv1.weight", c->n_levels, 0);
        if (!e) e = findf(f, prefix, "decoder.up.%d.block.0.conv1.weight", c->n_levels, 0);
        if (!e) break;
        if (c->n_levels == VAE_MAX_LEVELS) return sl_error(f->path, "more than %d VAE levels", VAE_MAX_LEVELS);
        if (e->ndim != 4) return sl_error(f->path, "%s is not a 4-D conv weight", e->name);
        // the decoder's up.{i} holds level i's channels too (it is stored in encoder order)
        c->block_out[c->n_levels] = (int)e->shape[0];
    }
    if (c->n_levels == 0)
        return sl_error(f->path, "no VAE tensors (%sencoder.down.0.block.0.conv1.weight) to detect the config from", prefix);
    int lpb = 0;
    while (findf(f, prefix, "encoder.down.0.block.%d.conv1.weight", lpb, 0)) lpb++;
    if (lpb == 0) {   // decoder-only file: it has layers_per_block + 1 resnets per level
        while (findf(f, prefix, "decoder.up.0.block.%d.conv1.weight", lpb, 0)) lpb++;
        lpb--;
    }
    c->layers_per_block = lpb;
    if ((e = findf(f, prefix, "encoder.conv_in.weight", 0, 0)) && e->ndim == 4) c->in_channels = (int)e->shape[1];
    if ((e = findf(f, prefix, "decoder.conv_out.weight", 0, 0)) && e->ndim == 4) c->out_channels = (int)e->shape[0];
    if ((e = findf(f, prefix, "decoder.conv_in.weight", 0, 0)) && e->ndim == 4) c->latent_channels = (int)e->shape[1];
    else if ((e = findf(f, prefix, "encoder.conv_out.weight", 0, 0)) && e->ndim == 4) c->latent_channels = (int)e->shape[0] / 2;
    c->quant_conv = findf(f, prefix, "quant_conv.weight", 0, 0) != NULL;
    c->post_quant_conv = findf(f, prefix, "post_quant_conv.weight", 0, 0) != NULL;
    c->mid_attention = findf(f, prefix, "encoder.mid.attn_1.q.weight", 0, 0) || findf(f, prefix, "decoder.mid.attn_1.q.weight", 0, 0);
    for (int i = 0; i < c->n_levels; i++)
        if (c->block_out[i] % c->groups)
            return sl_error(f->path,
                            "cannot detect norm_num_groups: the assumed %d does not divide the detected channel count %d; "
                            "pass --config DIR with the model's vae/config.json",
                            c->groups, c->block_out[i]);
    return vae_config_check(c, f->path);
}
