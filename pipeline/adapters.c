#include "pipeline/adapters.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/bf16_weights.h"
#include "engine/core/error.h"
#include "engine/core/parse_num.h"
#include "engine/adapters/lora_files.h"
#include "engine/io/model_files.h"
#include "pipeline/prompt_syntax.h"

// ---------------------------------------------------------------- creating a set

typedef struct {
    adapter_set *s;
    const char *targets;
    float normal_std;
    sl_rng *rng;
} create_ctx;

static int create_visitor(void *ctx, const unet_linear *l) {
    create_ctx *c = ctx;
    if (!adapter_target_matches(c->targets, l->path)) return 0;
    adapter *a = adapter_set_add(c->s, l->path, l->d_in, l->d_out);
    a->kernel = l->kernel;
    bf16_weights_unhold(l->weight);   // its init (DoRA's magnitudes) and forward read W0
    adapter_init(a, c->rng, c->normal_std, *l->weight);
    return 0;
}

adapter_set *adapter_set_create(unet_model *m, const adapter_new_opts *o) {
    float std = 0;
    if (strcmp(o->init, "kaiming") != 0) {
        char *end;
        if (strncmp(o->init, "normal:", 7) != 0 || !((std = strtof(o->init + 7, &end)) > 0) || *end) {
            sl_error(NULL, "--init '%s': expected kaiming or normal:STD with STD > 0", o->init);
            return NULL;
        }
    }
    if (o->rank < 1) { sl_error(NULL, "--rank must be >= 1 (got %d)", o->rank); return NULL; }
    if (o->ramp_steps < 0) { sl_error(NULL, "--ramp-steps must be >= 0"); return NULL; }
    adapter_set *s = sl_calloc(1, sizeof *s);
    s->method = o->method;
    s->rank = o->rank;
    s->alpha = o->alpha;
    s->ramp_steps = o->method == ADAPTER_SINGLORA ? o->ramp_steps : 0;
    snprintf(s->init, sizeof s->init, "%s", o->init);
    adapter_targets_expand(o->targets, s->targets, sizeof s->targets);
    unet_model_hash(m, s->base_model);
    sl_rng rng;
    sl_rng_seed(&rng, o->seed);
    create_ctx c = {s, s->targets, std, &rng};
    unet_walk_linears(m, create_visitor, &c);
    if (s->n_slots == 0) {
        sl_error(NULL, "--targets '%s' match no layer of this UNet", o->targets);
        adapter_set_free(s);
        return NULL;
    }
    return s;
}

// ---------------------------------------------------------------- LoRA files

typedef struct {
    const char **paths;
    float ***weights;   // the modules' weight slots
    int *d_in, *d_out;
    int n, cap;
} module_table;

static int table_visitor(void *ctx, const unet_linear *l) {
    module_table *t = ctx;
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->paths = sl_realloc(t->paths, sizeof(char *) * (size_t)t->cap);
        t->weights = sl_realloc(t->weights, sizeof(float **) * (size_t)t->cap);
        t->d_in = sl_realloc(t->d_in, sizeof(int) * (size_t)t->cap);
        t->d_out = sl_realloc(t->d_out, sizeof(int) * (size_t)t->cap);
    }
    t->paths[t->n] = sl_strdup(l->path);
    t->weights[t->n] = l->weight;
    t->d_in[t->n] = l->d_in;
    t->d_out[t->n++] = l->d_out;
    return 0;
}

static float *table_weight(void *ctx, const char *module, int *d_out, int *d_in) {
    module_table *t = ctx;
    for (int i = 0; i < t->n; i++)
        if (!strcmp(t->paths[i], module)) {
            *d_out = t->d_out[i];
            *d_in = t->d_in[i];
            bf16_weights_unhold(t->weights[i]);   // a LoRA is merged into W0's f32 values
            return *t->weights[i];
        }
    return NULL;
}

static void table_free(module_table *t) {
    for (int i = 0; i < t->n; i++) free((void *)t->paths[i]);
    free(t->paths);
    free(t->weights);
    free(t->d_in);
    free(t->d_out);
}

int unet_apply_lora_spec(unet_model *m, const char *spec) {
    char path[4096];
    snprintf(path, sizeof path, "%s", spec);
    float scale = 1.0f;
    char *colon = strrchr(path, ':');
    if (colon) {
        char *end;
        strtof(colon + 1, &end);
        if (end != colon + 1 && *end == 0) {   // FILE:SCALE; a ':' inside a file name stays
            *colon = 0;
            char what[4200];
            snprintf(what, sizeof what, "%s: LoRA scale", path);
            double s;
            if (parse_double(what, colon + 1, -ADAPTER_SCALE_MAX, ADAPTER_SCALE_MAX, &s) != 0) return -1;
            scale = (float)s;
        }
    }
    module_table t = {0};
    unet_walk_linears(m, table_visitor, &t);
    lora_apply_report rep;
    int rc = lora_apply(path, scale, t.paths, t.n, table_weight, &t, &rep);
    table_free(&t);
    if (rc != 0) return -1;
    fprintf(stderr, "lora %s (scale %g): applied %d of %d tensors (%d of %d UNet modules)", path, (double)scale,
            rep.tensors_applied, rep.tensors_total, rep.applied, rep.total);
    if (rep.text_encoder) fprintf(stderr, "; %d text-encoder tensors not applied (text-encoder LoRA is not supported yet)", rep.text_encoder);
    fprintf(stderr, "\n");
    if (rep.unmatched[0]) sl_warn("%s: no UNet layer for: %s", path, rep.unmatched);
    if (rep.total == 0 && !rep.text_encoder) return sl_error(path, "holds no LoRA tensors this program recognises");
    return 0;
}

typedef struct {
    adapter_set *s;
    float u, scale;
    int *done;
    const char *path;
} merge_ctx;

static int merge_visitor(void *ctx, const unet_linear *l) {
    merge_ctx *c = ctx;
    for (int i = 0; i < c->s->n_slots; i++) {
        if (strcmp(c->s->slots[i].module, l->path) != 0) continue;
        adapter *a = &c->s->slots[i].a;
        if (adapter_bind_shape(a, l->path, l->d_in, l->d_out, c->path) != 0) return -1;
        a->kernel = l->kernel;
        bf16_weights_unhold(l->weight);
        adapter_merge_into(*l->weight, a, c->u, c->scale);
        c->done[i] = 1;
    }
    return 0;
}

int unet_merge_adapters(unet_model *m, adapter_set *s, float scale, const char *path) {
    if (s->base_model[0]) {   // adapters are often applied to fine-tuned relatives of their base
        char h[17];
        unet_model_hash(m, h);
        if (strcmp(h, s->base_model) != 0)
            sl_warn("%s: adapter was made for base model %s, this UNet is %s (merged anyway)", path ? path : "adapter",
                    s->base_model, h);
    }
    merge_ctx c = {s, adapter_set_ramp(s), scale, sl_calloc((size_t)s->n_slots + 1, sizeof(int)), path};
    int rc = unet_walk_linears(m, merge_visitor, &c);
    for (int i = 0; rc == 0 && i < s->n_slots; i++)
        if (!c.done[i]) rc = sl_error(path, "adapter module '%s' is not a layer of this UNet adapters can target", s->slots[i].module);
    free(c.done);
    return rc;
}

int unet_apply_prompt_loras(unet_model *m, const char *prompt, const char *lora_dir, char **text) {
    prompt_lora *tags;
    int n;
    if (prompt_take_loras(prompt, text, &tags, &n) != 0) return -1;
    int rc = 0;
    for (int k = 0; k < n && rc == 0; k++) {
        char spec[4200];
        if (!lora_dir) {
            rc = sl_error(NULL, "the prompt's <lora:%s> needs --lora-dir DIR (the folder of %s.safetensors)", tags[k].name,
                          tags[k].name);
            break;
        }
        snprintf(spec, sizeof spec, "%s/%s.safetensors", lora_dir, tags[k].name);
        if (!path_exists(spec)) {
            rc = sl_error(spec, "no such LoRA file (the prompt's <lora:%s>)", tags[k].name);
            break;
        }
        size_t e = strlen(spec);
        snprintf(spec + e, sizeof spec - e, ":%.9g", (double)tags[k].weight);
        rc = unet_apply_lora_spec(m, spec);
    }
    prompt_loras_free(tags, n);
    if (rc) {
        free(*text);
        *text = NULL;
    }
    return rc;
}
