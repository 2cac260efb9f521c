// SingLoRA adapter files store only max(d_in, d_out) rows per layer; without a model at hand the
// (d_out, d_in) of each slot follows from the SD UNet transformer layout (unet.h). Convolutions
// need the model (their kernel size is in no adapter file).
#include <string.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "unet/unet.h"

static int ends_with_part(const char *module, const char *suffix) {
    size_t m = strlen(module), n = strlen(suffix);
    return m > n && strcmp(module + m - n, suffix) == 0 && module[m - n - 1] == '.';
}

// The width C of the attention a to_k/to_v module belongs to, from its square to_q or to_out.0
// sibling; 0 when neither has an adapter.
static int attention_width(const adapter_set *s, const char *mod) {
    size_t base = strlen(mod) - strlen("to_k");
    for (int j = 0; j < s->n_slots; j++) {
        const char *o = s->slots[j].module;
        if (strncmp(o, mod, base) == 0 && (!strcmp(o + base, "to_q") || !strcmp(o + base, "to_out.0")))
            return adapter_rows(&s->slots[j].a);
    }
    return 0;
}

// conv1, conv2, conv_shortcut of a ResNet block or a down/up sampler's conv
static int is_conv(const char *module) {
    return ends_with_part(module, "conv1") || ends_with_part(module, "conv2") || ends_with_part(module, "conv_shortcut") ||
           ends_with_part(module, "conv");
}

int unet_infer_adapter_shapes(adapter_set *s, const char *path) {
    for (int i = 0; i < s->n_slots; i++)
        if (is_conv(s->slots[i].module))
            return sl_error(path, "'%s' is a convolution: its kernel size is not in the adapter file; pass --model",
                            s->slots[i].module);
    if (s->method != ADAPTER_SINGLORA) return 0;   // LoRA/DoRA files carry both dimensions
    // the context width D: rows of a cross-attention to_k/to_v wider than its attention (D > C)
    int D = 0;
    for (int i = 0; i < s->n_slots; i++) {
        const char *mod = s->slots[i].module;
        if (!ends_with_part(mod, "attn2.to_k") && !ends_with_part(mod, "attn2.to_v")) continue;
        int C = attention_width(s, mod), rows = adapter_rows(&s->slots[i].a);
        if (C && rows > C) {
            if (D && D != rows) return sl_error(path, "cross-attention adapters disagree on the context width (%d vs %d)", D, rows);
            D = rows;
        }
    }
    for (int i = 0; i < s->n_slots; i++) {
        adapter *a = &s->slots[i].a;
        const char *mod = s->slots[i].module;
        int rows = adapter_rows(a);
        if (ends_with_part(mod, "ff.net.0.proj") && rows % 8 == 0) {
            a->d_out = rows;
            a->d_in = rows / 8;
        } else if (ends_with_part(mod, "ff.net.2") && rows % 4 == 0) {
            a->d_in = rows;
            a->d_out = rows / 4;
        } else if (ends_with_part(mod, "attn2.to_k") || ends_with_part(mod, "attn2.to_v")) {
            int C = attention_width(s, mod);
            if (!C || C > rows || (rows == C && !(D && D <= C)))
                return sl_error(path, "cannot tell the shape of '%s' from the adapter alone; pass --model", mod);
            a->d_out = C;
            a->d_in = rows > C ? rows : D;   // rows == C: the context is narrower than this attention
        } else if (ends_with_part(mod, "ff.net.0.proj") || ends_with_part(mod, "ff.net.2")) {
            return sl_error(path, "cannot tell the shape of '%s' (%d rows); pass --model", mod, rows);
        } else {
            a->d_in = a->d_out = rows;   // square: attn1.*, attn2.to_q/to_out.0, proj_in/proj_out
        }
    }
    return 0;
}

