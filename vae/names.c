// VAE weight names: the diffusers names the model is written against, mapped to the original
// (CompVis / single-file) layout, and to the pre-0.14 diffusers attention names.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vae/names.h"

// Substring renames, applied in order, each at most once. The mid-block rules come before the
// generic ".resnets." rule because the mid block's resnets are named block_1 / block_2.
static const struct { const char *diffusers, *original; } RENAMES[] = {
    {"mid_block.resnets.0.", "mid.block_1."},
    {"mid_block.resnets.1.", "mid.block_2."},
    {"mid_block.attentions.0.group_norm.", "mid.attn_1.norm."},
    {"mid_block.attentions.0.to_q.", "mid.attn_1.q."},
    {"mid_block.attentions.0.to_k.", "mid.attn_1.k."},
    {"mid_block.attentions.0.to_v.", "mid.attn_1.v."},
    {"mid_block.attentions.0.to_out.0.", "mid.attn_1.proj_out."},
    {"down_blocks.", "down."},
    {"up_blocks.", "up."},
    {".resnets.", ".block."},
    {".downsamplers.0.", ".downsample."},
    {".upsamplers.0.", ".upsample."},
    {"conv_shortcut.", "nin_shortcut."},
    {"conv_norm_out.", "norm_out."},
};

static int replace_once(char *s, size_t cap, const char *from, const char *to) {
    char *p = strstr(s, from);
    if (!p) return 0;
    size_t lf = strlen(from), lt = strlen(to), ls = strlen(s);
    if (ls - lf + lt + 1 > cap) return -1;
    memmove(p + lt, p + lf, ls - (size_t)(p - s) - lf + 1);
    memcpy(p, to, lt);
    return 1;
}

int vae_name_original(const char *name, char *out, size_t outlen, const void *ctx) {
    const vae_name_ctx *c = ctx;
    if ((size_t)snprintf(out, outlen, "%s", name) >= outlen) return -1;
    for (size_t i = 0; i < sizeof RENAMES / sizeof RENAMES[0]; i++)
        if (replace_once(out, outlen, RENAMES[i].diffusers, RENAMES[i].original) < 0) return -1;
    // the original decoder stores its levels in encoder order: up_blocks.i is up.{n-1-i}
    const char *key = "decoder.up.";
    if (!strncmp(out, key, strlen(key))) {
        char *num = out + strlen(key), *end;
        long i = strtol(num, &end, 10);
        if (end == num || i < 0 || i >= c->n_levels) return -1;
        char rest[512];
        snprintf(rest, sizeof rest, "%s", end);
        if ((size_t)snprintf(num, outlen - (size_t)(num - out), "%ld%s", (long)c->n_levels - 1 - i, rest) >=
            outlen - (size_t)(num - out))
            return -1;
    }
    return 0;
}

void vae_original_shape(const char *name, int *ndim, int64_t *shape) {
    static const char *const CONV1X1[] = {".to_q.weight", ".to_k.weight", ".to_v.weight", ".to_out.0.weight"};
    if (*ndim != 2 || !strstr(name, "mid_block.attentions.0.")) return;
    for (size_t i = 0; i < sizeof CONV1X1 / sizeof CONV1X1[0]; i++) {
        size_t n = strlen(name), k = strlen(CONV1X1[i]);
        if (n > k && !strcmp(name + n - k, CONV1X1[i])) {
            shape[2] = shape[3] = 1;
            *ndim = 4;
            return;
        }
    }
}

// diffusers < 0.14 named the VAE attention query/key/value/proj_attn; diffusers still loads them.
static const struct { const char *now, *old; } OLD_ATTN[] = {
    {".to_q.", ".query."}, {".to_k.", ".key."}, {".to_v.", ".value."}, {".to_out.0.", ".proj_attn."},
};

int vae_name_diffusers(const char *name, char *out, size_t outlen, const void *ctx) {
    const vae_name_ctx *c = ctx;
    if ((size_t)snprintf(out, outlen, "%s", name) >= outlen) return -1;
    if (!c || !c->file || !strstr(name, "mid_block.attentions.0.")) return 0;
    char full[640];
    snprintf(full, sizeof full, "%s%s", c->prefix ? c->prefix : "", out);
    if (st_find(c->file, full)) return 0;
    for (size_t i = 0; i < sizeof OLD_ATTN / sizeof OLD_ATTN[0]; i++) {
        char old[512];
        snprintf(old, sizeof old, "%s", name);
        if (replace_once(old, sizeof old, OLD_ATTN[i].now, OLD_ATTN[i].old) != 1) continue;
        snprintf(full, sizeof full, "%s%s", c->prefix ? c->prefix : "", old);
        if (st_find(c->file, full)) snprintf(out, outlen, "%s", old);
        break;
    }
    return 0;
}
