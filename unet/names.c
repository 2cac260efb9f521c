// The UNet's weight names: diffusers -> original single-file layout (CompVis ldm names under
// model.diffusion_model.), in one table. A diffusers name is <module>.<rest>; the table maps the
// module, and inside resnets the layer names change too (norm1 -> in_layers.0, ...).
// The original layout numbers blocks flat: input_blocks.k for every resnet(+transformer) and
// downsampler, output_blocks.k for every up resnet(+transformer)(+upsampler), which is why the
// map needs the config (layers per block, which up blocks have transformers).
#include "unet/unet.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    M_FIXED,        // no index
    M_DOWN,         // down_blocks.i.{resnets,attentions}.j -> input_blocks.(1 + i(L+1) + j)
    M_DOWN_SAMPLE,  // down_blocks.i.downsamplers.0         -> input_blocks.(1 + i(L+1) + L).0.op
    M_MID_RESNET,   // mid_block.resnets.j                  -> middle_block.(2j)
    M_UP,           // up_blocks.i.{resnets,attentions}.j   -> output_blocks.(i(L+1) + j)
    M_UP_SAMPLE,    // up_blocks.i.upsamplers.0             -> output_blocks.(i(L+1) + L).(1 or 2)
} module_kind;

// '#' in a pattern is a decimal index; '#' in the original name takes the computed indices.
static const struct {
    const char *diffusers, *original;
    module_kind kind;
    int resnet;     // the module is a ResNet block: rename its layers too
} MODULES[] = {
    {"time_embedding.linear_1", "time_embed.0", M_FIXED, 0},
    {"time_embedding.linear_2", "time_embed.2", M_FIXED, 0},
    {"conv_in", "input_blocks.0.0", M_FIXED, 0},
    {"conv_norm_out", "out.0", M_FIXED, 0},
    {"conv_out", "out.2", M_FIXED, 0},
    {"down_blocks.#.resnets.#", "input_blocks.#.0", M_DOWN, 1},
    {"down_blocks.#.attentions.#", "input_blocks.#.1", M_DOWN, 0},
    {"down_blocks.#.downsamplers.0.conv", "input_blocks.#.0.op", M_DOWN_SAMPLE, 0},
    {"mid_block.resnets.#", "middle_block.#", M_MID_RESNET, 1},
    {"mid_block.attentions.0", "middle_block.1", M_FIXED, 0},
    {"up_blocks.#.resnets.#", "output_blocks.#.0", M_UP, 1},
    {"up_blocks.#.attentions.#", "output_blocks.#.1", M_UP, 0},
    {"up_blocks.#.upsamplers.0.conv", "output_blocks.#.#.conv", M_UP_SAMPLE, 0},
};

static const struct { const char *diffusers, *original; } RESNET_LAYERS[] = {
    {"norm1", "in_layers.0"},      {"conv1", "in_layers.2"}, {"time_emb_proj", "emb_layers.1"},
    {"norm2", "out_layers.0"},     {"conv2", "out_layers.3"}, {"conv_shortcut", "skip_connection"},
};

// Matches `pattern` at the start of s, reading '#' as indices; returns the rest after the
// module and its '.', or NULL.
static const char *match(const char *s, const char *pattern, int *idx, int *n_idx) {
    *n_idx = 0;
    for (const char *p = pattern; *p; p++) {
        if (*p == '#') {
            if (*s < '0' || *s > '9') return NULL;
            char *end;
            long v = strtol(s, &end, 10);
            if (v > 1000 || *n_idx >= 2) return NULL;
            idx[(*n_idx)++] = (int)v;
            s = end;
        } else if (*s++ != *p) {
            return NULL;
        }
    }
    return *s == '.' ? s + 1 : NULL;
}

int unet_original_name(const unet_config *cfg, const char *name, char *out, size_t len) {
    int L = cfg->layers_per_block, n = cfg->n_levels;
    for (size_t m = 0; m < sizeof MODULES / sizeof *MODULES; m++) {
        int idx[2], k;
        const char *rest = match(name, MODULES[m].diffusers, idx, &k);
        if (!rest) continue;
        int a = 0, b = 0;   // the indices of the original name
        switch (MODULES[m].kind) {
        case M_FIXED: break;
        case M_DOWN:
            if (idx[0] >= n || idx[1] >= L) return -1;
            a = 1 + idx[0] * (L + 1) + idx[1];
            break;
        case M_DOWN_SAMPLE:
            if (idx[0] >= n - 1) return -1;
            a = 1 + idx[0] * (L + 1) + L;
            break;
        case M_MID_RESNET:
            if (idx[0] > 1) return -1;
            a = 2 * idx[0];
            break;
        case M_UP:
            if (idx[0] >= n || idx[1] > L) return -1;
            a = idx[0] * (L + 1) + idx[1];
            break;
        case M_UP_SAMPLE:
            if (idx[0] >= n - 1) return -1;
            a = idx[0] * (L + 1) + L;
            b = cfg->up_attn[idx[0]] ? 2 : 1;   // after the resnet (0) and the transformer (1) if any
            break;
        }
        char module[128];
        const char *o = MODULES[m].original;
        const char *h1 = strchr(o, '#'), *h2 = h1 ? strchr(h1 + 1, '#') : NULL;
        if (!h1) snprintf(module, sizeof module, "%s", o);
        else if (!h2) snprintf(module, sizeof module, "%.*s%d%s", (int)(h1 - o), o, a, h1 + 1);
        else snprintf(module, sizeof module, "%.*s%d%.*s%d%s", (int)(h1 - o), o, a, (int)(h2 - h1 - 1), h1 + 1, b, h2 + 1);
        if (MODULES[m].resnet) {
            for (size_t r = 0; r < sizeof RESNET_LAYERS / sizeof *RESNET_LAYERS; r++) {
                size_t l = strlen(RESNET_LAYERS[r].diffusers);
                if (!strncmp(rest, RESNET_LAYERS[r].diffusers, l) && rest[l] == '.') {
                    snprintf(out, len, "%s.%s%s", module, RESNET_LAYERS[r].original, rest + l);
                    return 0;
                }
            }
            return -1;
        }
        snprintf(out, len, "%s.%s", module, rest);
        return 0;
    }
    return -1;
}

int unet_weight_name_map(const char *name, char *out, size_t len, const void *cfg) {
    return unet_original_name(cfg, name, out, len);
}
