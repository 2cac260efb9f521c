#include "engine/diffusion/sampler_names.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "engine/core/error.h"

static const struct {
    const char *key;   // normalized: lower case, no spaces, '_' or '-'
    sl_sampler_kind kind;
} NAMES[] = {
    {"ddim", SL_SAMPLER_DDIM},         {"euler", SL_SAMPLER_EULER},         {"keuler", SL_SAMPLER_EULER},
    {"eulera", SL_SAMPLER_EULER_A},    {"eulerancestral", SL_SAMPLER_EULER_A}, {"keulera", SL_SAMPLER_EULER_A},
    {"keulerancestral", SL_SAMPLER_EULER_A}, {"dpmpp2m", SL_SAMPLER_DPMPP_2M}, {"dpm++2m", SL_SAMPLER_DPMPP_2M},
    {"kdpmpp2m", SL_SAMPLER_DPMPP_2M}, {"heun", SL_SAMPLER_HEUN},          {"kheun", SL_SAMPLER_HEUN},
};

// lower case without ' ', '_', '-' (at most cap-1 characters; longer names match nothing)
static int normalize(const char *name, char *out, size_t cap) {
    size_t n = 0;
    for (const char *p = name; *p; p++) {
        if (*p == ' ' || *p == '_' || *p == '-') continue;
        if (n + 1 >= cap) return -1;
        out[n++] = (char)tolower((unsigned char)*p);
    }
    out[n] = 0;
    return 0;
}

static int find(const char *key, sl_sampler_kind *kind) {
    for (size_t i = 0; i < sizeof NAMES / sizeof NAMES[0]; i++)
        if (strcmp(key, NAMES[i].key) == 0) { *kind = NAMES[i].kind; return 1; }
    return 0;
}

int sl_sampler_lookup(const char *name, sl_sampler_kind *kind, int *karras) {
    char key[64];
    *karras = 0;
    if (normalize(name, key, sizeof key) == 0) {
        if (find(key, kind)) return 0;
        size_t n = strlen(key);
        // "DPM++ 2M Karras", "k_dpmpp_2m_ka": a sampler name followed by karras
        const char *suffixes[] = {"karras", "ka"};
        for (int s = 0; s < 2; s++) {
            size_t k = strlen(suffixes[s]);
            if (n > k && strcmp(key + n - k, suffixes[s]) == 0) {
                key[n - k] = 0;
                if (find(key, kind)) { *karras = 1; return 0; }
                key[n - k] = suffixes[s][0];
            }
        }
    }
    return sl_error(NULL,
                    "unknown sampler '%s' (ddim, euler, euler_a, dpmpp_2m, heun; also A1111's 'DDIM', 'Euler', "
                    "'Euler a', 'DPM++ 2M', 'DPM++ 2M Karras', 'Heun', ComfyUI's euler_ancestral / dpmpp_2m, "
                    "sd.cpp's dpm++2m)",
                    name);
}

int sl_sigmas_lookup(const char *name, sl_sigmas_kind *kind) {
    char key[32];
    if (normalize(name, key, sizeof key) == 0) {
        if (!strcmp(key, "normal") || !strcmp(key, "automatic") || !strcmp(key, "uniform") || !strcmp(key, "discrete") ||
            !strcmp(key, "default")) {
            *kind = SL_SIGMAS_NORMAL;
            return 0;
        }
        if (!strcmp(key, "karras")) { *kind = SL_SIGMAS_KARRAS; return 0; }
    }
    return sl_error(NULL, "unknown sigma schedule '%s' (normal, karras; also A1111's Automatic, sd.cpp's discrete)", name);
}

const char *sl_sampler_a1111_name(sl_sampler_kind k) {
    switch (k) {
    case SL_SAMPLER_DDIM: return "DDIM";
    case SL_SAMPLER_EULER: return "Euler";
    case SL_SAMPLER_EULER_A: return "Euler a";
    case SL_SAMPLER_DPMPP_2M: return "DPM++ 2M";
    case SL_SAMPLER_HEUN: return "Heun";
    case SL_SAMPLER_N_KINDS: break;
    }
    return "?";
}
