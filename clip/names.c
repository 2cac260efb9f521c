#include "clip/names.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *clip_layout_name(clip_layout l) {
    switch (l) {
    case CLIP_LAYOUT_DIFFUSERS: return "diffusers";
    case CLIP_LAYOUT_SD1: return "SD 1.x single file (OpenAI CLIP)";
    case CLIP_LAYOUT_SD1_OLD: return "SD 1.x single file (OpenAI CLIP, old transformers names)";
    case CLIP_LAYOUT_OPENCLIP: return "SD 2.x single file (OpenCLIP)";
    }
    return "?";
}

const char *clip_layout_prefix(clip_layout l) { return l == CLIP_LAYOUT_DIFFUSERS ? "" : "cond_stage_model."; }

// diffusers name (after "text_model.", per layer after "encoder.layers.N.") -> OpenCLIP name
// (after "model.", per layer after "transformer.resblocks.N."); qkv: part of the fused in_proj.
typedef struct { const char *diffusers, *openclip; int qkv; } name_row;

static const name_row TOP[] = {
    {"embeddings.token_embedding.weight", "token_embedding.weight", -1},
    {"embeddings.position_embedding.weight", "positional_embedding", -1},
    {"final_layer_norm.weight", "ln_final.weight", -1},
    {"final_layer_norm.bias", "ln_final.bias", -1},
};

static const name_row LAYER[] = {
    {"layer_norm1.weight", "ln_1.weight", -1},
    {"layer_norm1.bias", "ln_1.bias", -1},
    {"self_attn.q_proj.weight", "attn.in_proj_weight", 0},
    {"self_attn.q_proj.bias", "attn.in_proj_bias", 0},
    {"self_attn.k_proj.weight", "attn.in_proj_weight", 1},
    {"self_attn.k_proj.bias", "attn.in_proj_bias", 1},
    {"self_attn.v_proj.weight", "attn.in_proj_weight", 2},
    {"self_attn.v_proj.bias", "attn.in_proj_bias", 2},
    {"self_attn.out_proj.weight", "attn.out_proj.weight", -1},
    {"self_attn.out_proj.bias", "attn.out_proj.bias", -1},
    {"layer_norm2.weight", "ln_2.weight", -1},
    {"layer_norm2.bias", "ln_2.bias", -1},
    {"mlp.fc1.weight", "mlp.c_fc.weight", -1},
    {"mlp.fc1.bias", "mlp.c_fc.bias", -1},
    {"mlp.fc2.weight", "mlp.c_proj.weight", -1},
    {"mlp.fc2.bias", "mlp.c_proj.bias", -1},
};

static const name_row *find(const name_row *rows, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (!strcmp(rows[i].diffusers, s)) return &rows[i];
    return NULL;
}

int clip_text_stored_name(clip_layout layout, const char *name, char *out, size_t len, int *qkv) {
    *qkv = -1;
    const char *PRE = "text_model.", *LAYERS = "encoder.layers.";
    if (strncmp(name, PRE, strlen(PRE)) != 0) return -1;
    const char *rest = name + strlen(PRE);
    // split "encoder.layers.N.<suffix>" into N and the suffix
    int layer = -1;
    const char *suffix = rest;
    if (!strncmp(rest, LAYERS, strlen(LAYERS))) {
        char *end;
        long l = strtol(rest + strlen(LAYERS), &end, 10);
        if (end == rest + strlen(LAYERS) || *end != '.' || l < 0 || l > 100000) return -1;
        layer = (int)l;
        suffix = end + 1;
    }
    const name_row *row = layer >= 0 ? find(LAYER, sizeof LAYER / sizeof LAYER[0], suffix)
                                     : find(TOP, sizeof TOP / sizeof TOP[0], suffix);
    if (!row) return -1;
    int n;
    switch (layout) {
    case CLIP_LAYOUT_DIFFUSERS: n = snprintf(out, len, "%s", name); break;
    case CLIP_LAYOUT_SD1: n = snprintf(out, len, "transformer.%s", name); break;
    case CLIP_LAYOUT_SD1_OLD: n = snprintf(out, len, "transformer.%s", rest); break;
    case CLIP_LAYOUT_OPENCLIP:
        *qkv = row->qkv;
        n = layer >= 0 ? snprintf(out, len, "model.transformer.resblocks.%d.%s", layer, row->openclip)
                       : snprintf(out, len, "model.%s", row->openclip);
        break;
    default: return -1;
    }
    return n > 0 && (size_t)n < len ? 0 : -1;
}
