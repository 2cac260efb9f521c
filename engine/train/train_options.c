// The option table of `singlora train` (train_options.h).
#include "engine/train/train_options.h"

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "engine/core/parse_num.h"
#include "engine/io/file_read.h"

typedef enum { O_STR, O_INT, O_I64, O_U64, O_DBL, O_FLAG } opt_kind;
typedef struct {
    const char *name;   // hyphen form without "--"
    opt_kind kind;
    size_t offset;      // in train_config
    double lo, hi;      // allowed range of a number (inclusive)
} train_option;

#define F(field) offsetof(train_config, field)
#define BIG 1e12   // step counts: anything a run could reach
static const train_option OPTIONS[] = {
    {"model", O_STR, F(model), 0, 0},
    {"config-dir", O_STR, F(config_dir), 0, 0},
    {"variant", O_STR, F(variant), 0, 0},
    {"tokenizer", O_STR, F(tokenizer_dir), 0, 0},
    {"prediction-type", O_STR, F(prediction), 0, 0},
    {"instance-data-dir", O_STR, F(instance_data_dir), 0, 0},
    {"instance-prompt", O_STR, F(instance_prompt), 0, 0},
    {"output-dir", O_STR, F(output_dir), 0, 0},
    {"class-data-dir", O_STR, F(class_data_dir), 0, 0},
    {"class-prompt", O_STR, F(class_prompt), 0, 0},
    {"with-prior-preservation", O_FLAG, F(with_prior_preservation), 0, 1},
    {"prior-loss-weight", O_DBL, F(prior_loss_weight), 0, 1e6},
    {"num-class-images", O_INT, F(num_class_images), 0, 1000000},
    {"sample-batch-size", O_INT, F(sample_batch_size), 1, 4096},
    {"caption-extension", O_STR, F(caption_extension), 0, 0},
    {"resolution", O_INT, F(resolution), 8, 8192},
    {"center-crop", O_FLAG, F(center_crop), 0, 1},
    {"random-flip", O_FLAG, F(random_flip), 0, 1},
    {"method", O_STR, F(method), 0, 0},
    {"rank", O_INT, F(rank), 1, ADAPTER_MAX_RANK},
    {"alpha", O_DBL, F(alpha), 0, ADAPTER_MAX_ALPHA},
    {"ramp-steps", O_I64, F(ramp_steps), -1, BIG},
    {"init", O_STR, F(init), 0, 0},
    {"targets", O_STR, F(targets), 0, 0},
    {"train-batch-size", O_INT, F(train_batch_size), 1, 4096},
    {"gradient-accumulation-steps", O_INT, F(gradient_accumulation_steps), 1, 1000000},
    {"max-train-steps", O_I64, F(max_train_steps), 0, BIG},
    {"num-train-epochs", O_INT, F(num_train_epochs), 0, 1000000},
    {"learning-rate", O_DBL, F(learning_rate), 0, 100},
    {"lr-scheduler", O_STR, F(lr_scheduler), 0, 0},
    {"lr-warmup-steps", O_I64, F(lr_warmup_steps), 0, BIG},
    {"adam-beta1", O_DBL, F(adam_beta1), 0, 1},
    {"adam-beta2", O_DBL, F(adam_beta2), 0, 1},
    {"adam-weight-decay", O_DBL, F(adam_weight_decay), 0, 100},
    {"adam-epsilon", O_DBL, F(adam_epsilon), 0, 1},
    {"max-grad-norm", O_DBL, F(max_grad_norm), 0, 1e12},
    {"snr-gamma", O_DBL, F(snr_gamma), 0, 1e6},
    {"seed", O_U64, F(seed), 0, 0},
    {"gradient-checkpointing", O_FLAG, F(gradient_checkpointing), 0, 1},
    {"threads", O_INT, F(threads), 0, 1024},
    {"precision", O_STR, F(precision), 0, 0},
    {"checkpointing-steps", O_I64, F(checkpointing_steps), 0, BIG},
    {"checkpoints-total-limit", O_INT, F(checkpoints_total_limit), 0, 1000000},
    {"resume-from-checkpoint", O_STR, F(resume_from_checkpoint), 0, 0},
    {"validation-prompt", O_STR, F(validation_prompt), 0, 0},
    {"num-validation-images", O_INT, F(num_validation_images), 0, 10000},
    {"validation-steps", O_I64, F(validation_steps), 0, BIG},
    {"trace", O_STR, F(trace), 0, 0},
    {"quiet", O_FLAG, F(quiet), 0, 1},
};
#undef F
#define N_OPTIONS ((int)(sizeof OPTIONS / sizeof *OPTIONS))

const char *train_option_normalize(const char *s, char *buf, size_t len) {
    while (*s == '-') s++;
    size_t i = 0;
    for (; s[i] && s[i] != '=' && i + 1 < len; i++) buf[i] = s[i] == '_' ? '-' : s[i];
    buf[i] = 0;
    if (!strcmp(buf, "pretrained-model-name-or-path")) snprintf(buf, len, "model");
    return buf;
}

static const train_option *find_option(const char *name) {
    char n[128];
    train_option_normalize(name, n, sizeof n);
    for (int i = 0; i < N_OPTIONS; i++)
        if (!strcmp(OPTIONS[i].name, n)) return &OPTIONS[i];
    return NULL;
}

int train_option_kind(const char *name) {
    const train_option *o = find_option(name);
    return o ? o->kind == O_FLAG : -1;
}

static int parse_integer(const train_option *o, const char *v, const char *what, int64_t *out) {
    long long x;
    if (parse_int(what, v, (long long)o->lo, (long long)o->hi, &x) != 0) return -1;
    *out = x;
    return 0;
}

int train_option_set(train_config *c, const char *name, const char *v, const char *what) {
    const train_option *o = find_option(name);
    if (!o) return sl_error(NULL, "%s: unknown option (see singlora train --help)", what);
    void *p = (char *)c + o->offset;
    int64_t i = 0;
    switch (o->kind) {
    case O_STR:
        *(const char **)p = v;
        return 0;
    case O_INT:
        if (parse_integer(o, v, what, &i) != 0) return -1;
        *(int *)p = (int)i;
        return 0;
    case O_I64:
        if (parse_integer(o, v, what, &i) != 0) return -1;
        *(int64_t *)p = i;
        return 0;
    case O_U64:
        return parse_u64(what, v, (uint64_t *)p);
    case O_DBL:
        return parse_double(what, v, o->lo, o->hi, (double *)p);
    case O_FLAG:
        if (!strcmp(v, "1") || !strcmp(v, "true")) *(int *)p = 1;
        else if (!strcmp(v, "0") || !strcmp(v, "false")) *(int *)p = 0;
        else return sl_error(NULL, "%s: '%s' is not true/false (or 1/0)", what, v);
        return 0;
    }
    return -1;
}

int train_recipe_load(train_config *c, const char *path, void **keep) {
    *keep = NULL;
    size_t len;
    char *text = read_file(path, &len, 1 << 20, "a recipe");
    if (!text) return -1;
    cJSON *j = cJSON_ParseWithLength(text, len);
    free(text);
    if (!j || !cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return sl_error(path, "not a JSON object of options (keys = flag names of singlora train)");
    }
    *keep = j;
    for (cJSON *it = j->child; it; it = it->next) {
        char what[300], num[64];
        snprintf(what, sizeof what, "%s: %s", path, it->string);
        const train_option *o = find_option(it->string);
        if (!o) return sl_error(path, "unknown option '%s' in the recipe (keys are singlora train's flag names)", it->string);
        if (cJSON_IsNull(it)) continue;
        const char *v = NULL;
        if (o->kind == O_FLAG && cJSON_IsBool(it)) v = cJSON_IsTrue(it) ? "1" : "0";
        else if (cJSON_IsString(it)) v = it->valuestring;
        else if (cJSON_IsNumber(it) && o->kind != O_STR) v = num, snprintf(num, sizeof num, "%.17g", it->valuedouble);
        if (!v) return sl_error(path, "option '%s' has a value of the wrong type", it->string);
        if (train_option_set(c, it->string, v, what) != 0) return -1;
    }
    return 0;
}

void train_recipe_free(void *keep) { cJSON_Delete(keep); }
