#include "unet/config.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/model_files.h"

// ---------------------------------------------------------------- from config.json

// Keys that select a feature this engine does not implement: they must be absent or null.
static const char *const MUST_BE_NULL[] = {
    "class_embed_type", "addition_embed_type", "encoder_hid_dim", "encoder_hid_dim_type", "time_cond_proj_dim",
    "timestep_post_act", "time_embedding_act_fn", "num_class_embeds", "reverse_transformer_layers_per_block",
    "cross_attention_norm", "projection_class_embeddings_input_dim",
};
// Boolean keys that must be absent or false.
static const char *const MUST_BE_FALSE[] = {
    "dual_cross_attention", "resnet_skip_time_act", "class_embeddings_concat", "mid_block_only_cross_attention",
};
// String keys with the one value supported (absent means the diffusers default, the same value).
static const struct { const char *key, *value; } MUST_EQUAL[] = {
    {"act_fn", "silu"},
    {"resnet_time_scale_shift", "default"},
    {"time_embedding_type", "positional"},
    {"attention_type", "default"},
    {"mid_block_type", "UNetMidBlock2DCrossAttn"},
};

// An int or a per-level list of n ints (a single int is repeated).
static int per_level_ints(const json_config *json, const char *key, int def, int n, int *out) {
    int tmp[UNET_MAX_LEVELS], k = 0;
    if (!config_has(json, key)) {
        for (int i = 0; i < n; i++) out[i] = def;
        return 0;
    }
    if (config_int_list(json, key, tmp, UNET_MAX_LEVELS, &k) != 0) return -1;
    if (k == 1 && !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(json->root, key))) {
        for (int i = 0; i < n; i++) out[i] = tmp[0];
        return 0;
    }
    if (k != n) return sl_error(json->path, "key '%s': %d entries, but block_out_channels has %d levels", key, k, n);
    memcpy(out, tmp, sizeof(int) * (size_t)n);
    return 0;
}

int unet_config_from_json(unet_config *cfg, const json_config *json) {
    memset(cfg, 0, sizeof *cfg);
    const char *path = json->path;
    const char *cls;
    if (config_string_or(json, "_class_name", "UNet2DConditionModel", &cls) != 0) return -1;
    if (strcmp(cls, "UNet2DConditionModel") != 0)
        return sl_error(path, "key '_class_name': '%s' is not a UNet2DConditionModel", cls);

    for (size_t i = 0; i < sizeof MUST_BE_NULL / sizeof *MUST_BE_NULL; i++)
        if (config_has(json, MUST_BE_NULL[i]))
            return sl_error(path, "key '%s': only null is supported (SD 1.x/2.x UNets)", MUST_BE_NULL[i]);
    for (size_t i = 0; i < sizeof MUST_BE_FALSE / sizeof *MUST_BE_FALSE; i++) {
        int b;
        if (config_bool_or(json, MUST_BE_FALSE[i], 0, &b) != 0) return -1;
        if (b) return sl_error(path, "key '%s': only false is supported", MUST_BE_FALSE[i]);
    }
    for (size_t i = 0; i < sizeof MUST_EQUAL / sizeof *MUST_EQUAL; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(json->root, MUST_EQUAL[i].key);
        if (v && cJSON_IsNull(v))   // mid_block_type null means "no mid block"
            return sl_error(path, "key '%s': null is not supported, only \"%s\"", MUST_EQUAL[i].key, MUST_EQUAL[i].value);
        const char *s;
        if (config_string_or(json, MUST_EQUAL[i].key, MUST_EQUAL[i].value, &s) != 0) return -1;
        if (strcmp(s, MUST_EQUAL[i].value) != 0)
            return sl_error(path, "key '%s': \"%s\" is not supported, only \"%s\"", MUST_EQUAL[i].key, s,
                            MUST_EQUAL[i].value);
    }
    // only_cross_attention: false or a list of falses
    const cJSON *oca = cJSON_GetObjectItemCaseSensitive(json->root, "only_cross_attention");
    if (oca && !cJSON_IsNull(oca)) {
        int bad = cJSON_IsTrue(oca);
        if (cJSON_IsArray(oca))
            for (int i = 0; i < cJSON_GetArraySize(oca); i++) bad |= cJSON_IsTrue(cJSON_GetArrayItem(oca, i));
        if (bad) return sl_error(path, "key 'only_cross_attention': only false is supported");
    }

    int n = 0;
    if (config_int_or(json, "in_channels", 4, &cfg->in_channels) != 0 ||
        config_int_or(json, "out_channels", 4, &cfg->out_channels) != 0 ||
        config_int_list(json, "block_out_channels", cfg->block_out_channels, UNET_MAX_LEVELS, &n) != 0 ||
        config_int_or(json, "layers_per_block", 2, &cfg->layers_per_block) != 0)
        return -1;
    cfg->n_levels = n;
    if (cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(json->root, "layers_per_block")))
        return sl_error(path, "key 'layers_per_block': only one integer for all levels is supported");

    const char *down[UNET_MAX_LEVELS], *up[UNET_MAX_LEVELS];
    int nd = 0, nu = 0;
    if (config_string_list(json, "down_block_types", down, UNET_MAX_LEVELS, &nd) != 0 ||
        config_string_list(json, "up_block_types", up, UNET_MAX_LEVELS, &nu) != 0)
        return -1;
    if (nd != n || nu != n)
        return sl_error(path, "%d down_block_types and %d up_block_types for %d block_out_channels", nd, nu, n);
    for (int i = 0; i < n; i++) {
        if (!strcmp(down[i], "CrossAttnDownBlock2D")) cfg->down_attn[i] = 1;
        else if (strcmp(down[i], "DownBlock2D"))
            return sl_error(path, "key 'down_block_types': '%s' is not supported (CrossAttnDownBlock2D, DownBlock2D)", down[i]);
        if (!strcmp(up[i], "CrossAttnUpBlock2D")) cfg->up_attn[i] = 1;
        else if (strcmp(up[i], "UpBlock2D"))
            return sl_error(path, "key 'up_block_types': '%s' is not supported (CrossAttnUpBlock2D, UpBlock2D)", up[i]);
    }

    // diffusers' legacy naming: attention_head_dim holds the number of heads when
    // num_attention_heads is null (all SD 1.x/2.x configs)
    const char *heads_key = config_has(json, "num_attention_heads") ? "num_attention_heads" : "attention_head_dim";
    if (per_level_ints(json, heads_key, 8, n, cfg->heads) != 0) return -1;
    if (per_level_ints(json, "transformer_layers_per_block", 1, n, cfg->transformer_layers) != 0) return -1;

    int dims[UNET_MAX_LEVELS];
    if (!config_has(json, "cross_attention_dim")) return sl_error(path, "key 'cross_attention_dim': missing");
    if (per_level_ints(json, "cross_attention_dim", 1280, n, dims) != 0) return -1;
    for (int i = 1; i < n; i++)
        if (dims[i] != dims[0])
            return sl_error(path, "key 'cross_attention_dim': different widths per block are not supported");
    cfg->cross_attention_dim = dims[0];

    double eps, shift, mid_scale, res_scale;
    if (config_bool_or(json, "use_linear_projection", 0, &cfg->use_linear_projection) != 0 ||
        config_int_or(json, "norm_num_groups", 32, &cfg->norm_num_groups) != 0 ||
        config_float_or(json, "norm_eps", 1e-5, &eps) != 0 ||
        config_bool_or(json, "flip_sin_to_cos", 1, &cfg->flip_sin_to_cos) != 0 ||
        config_float_or(json, "freq_shift", 0, &shift) != 0 ||
        config_bool_or(json, "upcast_attention", 0, &cfg->upcast_attention) != 0 ||
        config_bool_or(json, "center_input_sample", 0, &cfg->center_input_sample) != 0 ||
        // diffusers' default 4·C0 (when C0 is out of range, 0, which the validation reports after C0)
        config_int_or(json, "time_embedding_dim",
                      n > 0 && cfg->block_out_channels[0] <= UNET_MAX_WIDTH ? 4 * cfg->block_out_channels[0] : 0,
                      &cfg->time_embed_dim) != 0 ||
        config_int_or(json, "conv_in_kernel", 3, &cfg->conv_in_kernel) != 0 ||
        config_int_or(json, "conv_out_kernel", 3, &cfg->conv_out_kernel) != 0 ||
        config_int_or(json, "downsample_padding", 1, &cfg->downsample_padding) != 0 ||
        config_float_or(json, "mid_block_scale_factor", 1, &mid_scale) != 0 ||
        config_float_or(json, "resnet_out_scale_factor", 1, &res_scale) != 0)
        return -1;
    cfg->norm_eps = (float)eps;
    cfg->freq_shift = (float)shift;
    cfg->mid_block_scale_factor = (float)mid_scale;
    cfg->resnet_out_scale_factor = (float)res_scale;
    return unet_config_validate(cfg, path);
}

int unet_config_load_dir(unet_config *cfg, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/unet/config.json", dir);
    if (!path_exists(path)) {
        snprintf(path, sizeof path, "%s/config.json", dir);
        if (!path_exists(path)) return sl_error(dir, "no unet/config.json (nor config.json) in this folder");
    }
    json_config *json = config_load(path);
    if (!json) return -1;
    int rc = unet_config_from_json(cfg, json);
    config_free(json);
    return rc;
}

// ---------------------------------------------------------------- validation

int unet_config_validate(const unet_config *c, const char *src) {
    int n = c->n_levels, G = c->norm_num_groups;
    if (n < 1 || n > UNET_MAX_LEVELS) return sl_error(src, "%d levels (block_out_channels): 1 to %d supported", n, UNET_MAX_LEVELS);
    for (int i = 0; i < n; i++)
        if (c->block_out_channels[i] < 1 || c->block_out_channels[i] > UNET_MAX_WIDTH)
            return sl_error(src, "block_out_channels[%d] = %d is outside 1..%d", i, c->block_out_channels[i], UNET_MAX_WIDTH);
    const struct { const char *name; int v, hi; } sizes[] = {
        {"in_channels", c->in_channels, UNET_MAX_WIDTH},   {"out_channels", c->out_channels, UNET_MAX_WIDTH},
        {"cross_attention_dim", c->cross_attention_dim, UNET_MAX_WIDTH},
        {"time_embedding_dim", c->time_embed_dim, UNET_MAX_WIDTH},
        {"norm_num_groups", G, UNET_MAX_WIDTH},           {"layers_per_block", c->layers_per_block, UNET_MAX_DEPTH},
        {"conv_in_kernel", c->conv_in_kernel, 15},         {"conv_out_kernel", c->conv_out_kernel, 15},
    };
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++)
        if (sizes[i].v < 1 || sizes[i].v > sizes[i].hi)
            return sl_error(src, "%s = %d is outside 1..%d", sizes[i].name, sizes[i].v, sizes[i].hi);
    if (c->conv_in_kernel % 2 == 0 || c->conv_out_kernel % 2 == 0)
        return sl_error(src, "conv_in_kernel and conv_out_kernel must be odd");
    if (c->downsample_padding != 1) return sl_error(src, "downsample_padding %d: only 1 is supported", c->downsample_padding);
    if (c->block_out_channels[0] % 2) return sl_error(src, "block_out_channels[0] must be even (timestep features)");
    for (int i = 0; i < n; i++) {
        int C = c->block_out_channels[i];
        if (C < 1 || C % G) return sl_error(src, "block_out_channels[%d] = %d is not a positive multiple of norm_num_groups %d", i, C, G);
        int attn = c->down_attn[i] || c->up_attn[unet_up_level(c, i)] || i == n - 1;   // level n-1: the mid block
        if (attn) {
            if (c->heads[i] < 1 || C % c->heads[i])
                return sl_error(src, "level %d: %d channels do not split into %d attention heads", i, C, c->heads[i]);
            if (c->transformer_layers[i] < 1 || c->transformer_layers[i] > UNET_MAX_DEPTH)
                return sl_error(src, "level %d: transformer_layers_per_block %d is outside 1..%d", i, c->transformer_layers[i],
                                UNET_MAX_DEPTH);
        }
    }
    return 0;
}

// ---------------------------------------------------------------- detection from shapes

static const st_entry *findf(const st_file *f, const char *prefix, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static const st_entry *findf(const st_file *f, const char *prefix, const char *fmt, ...) {
    char name[512], full[640];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s%s", prefix, name);
    return st_find(f, full);
}

static int count_transformer_blocks(const st_file *f, const char *p, const char *module) {
    int k = 0;
    while (findf(f, p, "%s.transformer_blocks.%d.norm1.weight", module, k)) k++;
    return k;
}

int unet_config_detect(unet_config *cfg, const st_file *f, const char *p) {
    memset(cfg, 0, sizeof *cfg);
    const char *src = f->path;
    const st_entry *e = findf(f, p, "input_blocks.0.0.weight");
    if (!e || e->ndim != 4) return sl_error(src, "no UNet conv_in ('%sinput_blocks.0.0.weight', 4-D) to detect the config from", p);
    int C0 = (int)e->shape[0];
    cfg->in_channels = (int)e->shape[1];
    cfg->conv_in_kernel = (int)e->shape[2];
    e = findf(f, p, "out.2.weight");
    if (!e || e->ndim != 4) return sl_error(src, "no UNet conv_out ('%sout.2.weight', 4-D)", p);
    cfg->out_channels = (int)e->shape[0];
    cfg->conv_out_kernel = (int)e->shape[2];
    e = findf(f, p, "time_embed.0.weight");
    if (!e || e->ndim != 2 || e->shape[1] != C0) return sl_error(src, "no UNet time embedding ('%stime_embed.0.weight', [T, %d])", p, C0);
    cfg->time_embed_dim = (int)e->shape[0];

    // input_blocks: per level, resnets (each maybe followed by a transformer), then a downsample op
    int level = 0, resnets = 0, b = 1, attn_first = -1, D = 0, linear = -1;
    for (;; b++) {
        if (findf(f, p, "input_blocks.%d.0.op.weight", b)) {
            if (resnets == 0) return sl_error(src, "input_blocks.%d: a downsample with no resnet before it", b);
            if (level == 0) cfg->layers_per_block = resnets;
            else if (resnets != cfg->layers_per_block) return sl_error(src, "levels with different numbers of resnets");
            if (++level >= UNET_MAX_LEVELS) return sl_error(src, "more than %d UNet levels", UNET_MAX_LEVELS);
            resnets = 0;
            continue;
        }
        e = findf(f, p, "input_blocks.%d.0.in_layers.2.weight", b);
        if (!e) break;
        cfg->block_out_channels[level] = (int)e->shape[0];
        char mod[64];
        snprintf(mod, sizeof mod, "input_blocks.%d.1", b);
        int has_attn = findf(f, p, "%s.norm.weight", mod) != NULL;
        if (resnets == 0) cfg->down_attn[level] = has_attn;
        else if (cfg->down_attn[level] != has_attn) return sl_error(src, "level %d: some resnets have attention, some not", level);
        if (has_attn) {
            if (resnets == 0) cfg->transformer_layers[level] = count_transformer_blocks(f, p, mod);
            const st_entry *k = findf(f, p, "%s.transformer_blocks.0.attn2.to_k.weight", mod);
            const st_entry *pi = findf(f, p, "%s.proj_in.weight", mod);
            if (!k || k->ndim != 2 || !pi) return sl_error(src, "%s: incomplete transformer (no attn2.to_k or proj_in)", mod);
            D = (int)k->shape[1];
            linear = pi->ndim == 2;
            if (attn_first < 0) attn_first = level;
        }
        resnets++;
    }
    if (resnets == 0) return sl_error(src, "no UNet resnets found under '%sinput_blocks.'", p);
    if (level == 0) cfg->layers_per_block = resnets;
    else if (resnets != cfg->layers_per_block) return sl_error(src, "levels with different numbers of resnets");
    int n = cfg->n_levels = level + 1;
    int L = cfg->layers_per_block;

    // the mid block's transformer: its depth is that of the deepest level
    if (!findf(f, p, "middle_block.1.norm.weight")) return sl_error(src, "no mid-block transformer ('%smiddle_block.1')", p);
    cfg->transformer_layers[n - 1] = count_transformer_blocks(f, p, "middle_block.1");
    if (attn_first < 0) {
        e = findf(f, p, "middle_block.1.transformer_blocks.0.attn2.to_k.weight");
        const st_entry *pi = findf(f, p, "middle_block.1.proj_in.weight");
        if (!e || !pi) return sl_error(src, "middle_block.1: incomplete transformer");
        D = (int)e->shape[1];
        linear = pi->ndim == 2;
    }
    for (int i = 0; i < n; i++) {
        cfg->up_attn[i] = findf(f, p, "output_blocks.%d.1.norm.weight", i * (L + 1)) != NULL;
        int lv = unet_up_level(cfg, i);
        if (cfg->up_attn[i] && cfg->transformer_layers[lv] == 0) {
            char mod[64];
            snprintf(mod, sizeof mod, "output_blocks.%d.1", i * (L + 1));
            cfg->transformer_layers[lv] = count_transformer_blocks(f, p, mod);
        }
    }
    cfg->cross_attention_dim = D;
    cfg->use_linear_projection = linear;
    // heads by family: SD 2.x (linear projections) has head dim 64, SD 1.x 8 heads
    for (int i = 0; i < n; i++) {
        if (cfg->transformer_layers[i] == 0) cfg->transformer_layers[i] = 1;
        int C = cfg->block_out_channels[i];
        if (linear) {
            if (C % 64) return sl_error(src, "cannot detect attention heads: %d channels at level %d are not a multiple of the SD 2.x head dim 64; pass --config DIR", C, i);
            cfg->heads[i] = C / 64;
        } else {
            cfg->heads[i] = 8;
        }
    }
    cfg->norm_num_groups = 32;
    cfg->norm_eps = 1e-5f;
    cfg->flip_sin_to_cos = 1;
    cfg->freq_shift = 0;
    cfg->downsample_padding = 1;
    cfg->mid_block_scale_factor = 1;
    cfg->resnet_out_scale_factor = 1;
    cfg->upcast_attention = linear;   // SD 2.x configs set it; no effect in f32
    if (unet_config_validate(cfg, src) != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s (detected from the tensor shapes; pass --config DIR for a non-standard model)", sl_error_msg());
        sl_error_clear();
        return sl_error(NULL, "%s", msg);
    }
    return 0;
}
