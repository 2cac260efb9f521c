// The CLIP text encoder's config: config.json (transformers CLIPTextConfig) and where to find it.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/text_encoder.h"
#include "clip/tokenizer.h"
#include "engine/io/config.h"
#include "engine/core/error.h"
#include "engine/io/model_files.h"
#include "engine/core/tensor.h"

static int read_config(const char *path, clip_text_config *c) {
    json_config *j = config_load(path);
    if (!j) return -1;
    const char *act;
    double eps;
    int rc = 0;
    rc |= config_int(j, "hidden_size", &c->hidden);
    rc |= config_int(j, "num_hidden_layers", &c->layers);
    rc |= config_int(j, "num_attention_heads", &c->heads);
    rc |= config_int(j, "intermediate_size", &c->intermediate);
    rc |= config_int_or(j, "max_position_embeddings", 77, &c->max_pos);
    rc |= config_int(j, "vocab_size", &c->vocab);
    rc |= config_float_or(j, "layer_norm_eps", 1e-5, &eps);
    rc |= config_int_or(j, "eos_token_id", 2, &c->eos_id);
    rc |= config_string_or(j, "hidden_act", "quick_gelu", &act);
    if (rc == 0) {
        c->eps = (float)eps;
        if (!strcmp(act, "quick_gelu")) c->act = CLIP_ACT_QUICK_GELU;
        else if (!strcmp(act, "gelu")) c->act = CLIP_ACT_GELU;
        else rc = sl_error(path, "key 'hidden_act': '%s' is not a CLIP activation (quick_gelu or gelu)", act);
    }
    if (rc == 0) rc = clip_text_config_check(c, path);
    config_free(j);
    return rc;
}

int clip_text_config_check(const clip_text_config *c, const char *where) {
    if (c->hidden <= 0 || c->layers <= 0 || c->heads <= 0 || c->hidden % c->heads || c->intermediate <= 0 ||
        c->max_pos <= 0 || c->vocab <= 0 || !(c->eps > 0 && isfinite(c->eps)))
        return sl_error(where, "inconsistent text encoder sizes (hidden_size %d, %d heads, %d layers, intermediate %d, "
                               "%d positions, vocabulary %d)",
                        c->hidden, c->heads, c->layers, c->intermediate, c->max_pos, c->vocab);
    // a prompt row is [BOS, tokens..., EOS, pad...]: fewer positions leave no room for a token
    if (c->max_pos < CLIP_MIN_CONTEXT || c->max_pos > CLIP_MAX_CONTEXT)
        return sl_error(where, "%d text positions (max_position_embeddings): the tokenizer needs %d..%d", c->max_pos,
                        CLIP_MIN_CONTEXT, CLIP_MAX_CONTEXT);
    return 0;
}

// A config given as a diffusers folder, a text_encoder folder or the config.json itself.
char *clip_text_config_path(const char *p) {
    char buf[4096];
    if (!path_is_dir(p)) return path_exists(p) ? sl_strdup(p) : (sl_error(p, "no such config file"), NULL);
    snprintf(buf, sizeof buf, "%s/text_encoder/config.json", p);
    if (path_exists(buf)) return sl_strdup(buf);
    snprintf(buf, sizeof buf, "%s/config.json", p);
    if (path_exists(buf)) return sl_strdup(buf);
    sl_error(p, "no text_encoder/config.json or config.json here");
    return NULL;
}

int clip_text_config_load(clip_text_config *c, const char *path) {
    char *p = clip_text_config_path(path);
    if (!p) return -1;
    int rc = read_config(p, c);
    free(p);
    return rc;
}
