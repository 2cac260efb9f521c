// singlora train: flag parsing (`--a-b`, `--a_b` and `--a-b=V` alike; `--config recipe.json`
// with the same names as keys, the command line winning) and one call to train_run.
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/train/trainer.h"
#include "tools/args.h"
#include "tools/commands.h"

static const char *HELP =
    "usage: singlora train --model M --instance-data-dir DIR --instance-prompt P --output-dir OUT [options]\n\n"
    "DreamBooth: trains a SingLoRA (or LoRA / DoRA) adapter on a folder of photos. Flag names are diffusers'\n"
    "train_dreambooth_lora.py names; --a-b and --a_b are both accepted; --pretrained-model-name-or-path = --model.\n"
    "  data:    --instance-data-dir DIR --instance-prompt P [--caption-extension .txt] [--resolution 512]\n"
    "           [--center-crop] [--random-flip]\n"
    "  prior:   --with-prior-preservation --class-data-dir DIR --class-prompt P [--prior-loss-weight 1]\n"
    "           [--num-class-images 100] [--sample-batch-size 4]   (missing class images are generated)\n"
    "  adapter: [--method singlora|lora|dora] [--rank 4] [--alpha R] [--ramp-steps T (min(100, steps/10))]\n"
    "           [--init kaiming|normal:STD] [--targets cross-attn|self-attn|attn|ff|proj|all|PATTERNS]\n"
    "  optim:   [--train-batch-size 1] [--gradient-accumulation-steps 1] [--max-train-steps N | --num-train-epochs E]\n"
    "           [--learning-rate 1e-4] [--lr-scheduler constant|constant_with_warmup|linear|cosine]\n"
    "           [--lr-warmup-steps 0] [--adam-beta1 0.9] [--adam-beta2 0.999] [--adam-weight-decay 1e-2]\n"
    "           [--adam-epsilon 1e-8] [--max-grad-norm 1.0] [--snr-gamma G] [--seed S] [--gradient-checkpointing]\n"
    "           [--threads N] [--prediction-type epsilon|v_prediction]\n"
    "  saving:  [--checkpointing-steps 500] [--checkpoints-total-limit K] [--resume-from-checkpoint latest|DIR]\n"
    "           [--validation-prompt P --num-validation-images 4 --validation-steps 100] [--trace FILE]\n"
    "  model:   [--config-dir DIR] [--variant fp16] [--tokenizer DIR]   [--config recipe.json] [--quiet]\n"
    "Outputs in OUT: adapter.safetensors, lora.safetensors (kohya), log.csv, loss.png, config.json,\n"
    "validation/step-N.png, checkpoints/checkpoint-N/, cache/.\n";

typedef enum { O_STR, O_INT, O_I64, O_U64, O_DBL, O_FLAG } opt_kind;
typedef struct {
    const char *name;   // hyphen form without "--"
    opt_kind kind;
    void *p;
} opt;

// "--a_b" / "a-b" -> "a-b" (into buf)
static const char *normalize(const char *s, char *buf, size_t len) {
    while (*s == '-') s++;
    size_t i = 0;
    for (; s[i] && s[i] != '=' && i + 1 < len; i++) buf[i] = s[i] == '_' ? '-' : s[i];
    buf[i] = 0;
    if (!strcmp(buf, "pretrained-model-name-or-path")) snprintf(buf, len, "model");
    return buf;
}

static void set_value(const opt *o, const char *flag, const char *v) {
    switch (o->kind) {
    case O_STR: *(const char **)o->p = v; break;
    case O_INT: *(int *)o->p = (int)arg_long(flag, v); break;
    case O_I64: *(int64_t *)o->p = arg_long(flag, v); break;
    case O_U64: *(uint64_t *)o->p = (uint64_t)arg_long(flag, v); break;
    case O_DBL: *(double *)o->p = arg_double(flag, v); break;
    case O_FLAG: *(int *)o->p = strcmp(v, "0") && strcmp(v, "false"); break;
    }
}

static const opt *find_opt(const opt *opts, int n, const char *name) {
    for (int i = 0; i < n; i++)
        if (!strcmp(opts[i].name, name)) return &opts[i];
    return NULL;
}

// Reads recipe.json: keys are flag names (either spelling, "--" optional).
static void load_recipe(const char *path, const opt *opts, int n, cJSON **keep) {
    FILE *f = fopen(path, "rb");
    if (!f) sl_die(path, "cannot open the recipe: %s", strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    rewind(f);
    char *text = sl_malloc((size_t)(len > 0 ? len : 0) + 1);
    size_t got = fread(text, 1, (size_t)(len > 0 ? len : 0), f);
    fclose(f);
    text[got] = 0;
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j || !cJSON_IsObject(j)) sl_die(path, "not a JSON object of options (keys = flag names)");
    *keep = j;
    for (cJSON *it = j->child; it; it = it->next) {
        char name[128], flag[140];
        normalize(it->string, name, sizeof name);
        snprintf(flag, sizeof flag, "%s: %s", path, name);
        const opt *o = find_opt(opts, n, name);
        if (!o || !strcmp(name, "config")) sl_die(path, "unknown option '%s' in the recipe", it->string);
        if (cJSON_IsNull(it)) continue;
        if (o->kind == O_FLAG) {
            if (!cJSON_IsBool(it) && !cJSON_IsNumber(it)) sl_die(path, "option '%s' must be true or false", it->string);
            *(int *)o->p = cJSON_IsTrue(it) || (cJSON_IsNumber(it) && it->valuedouble != 0);
        } else if (cJSON_IsString(it)) {
            set_value(o, flag, it->valuestring);
        } else if (cJSON_IsNumber(it) && o->kind != O_STR) {
            char buf[64];
            snprintf(buf, sizeof buf, "%.17g", it->valuedouble);
            set_value(o, flag, buf);
        } else {
            sl_die(path, "option '%s' has a value of the wrong type", it->string);
        }
    }
}

int cmd_train(int argc, char **argv) {
    train_config c;
    train_config_defaults(&c);
    const char *recipe = NULL;
    opt opts[] = {
        {"model", O_STR, &c.model}, {"config-dir", O_STR, &c.config_dir}, {"variant", O_STR, &c.variant},
        {"tokenizer", O_STR, &c.tokenizer_dir}, {"prediction-type", O_STR, &c.prediction},
        {"instance-data-dir", O_STR, &c.instance_data_dir}, {"instance-prompt", O_STR, &c.instance_prompt},
        {"output-dir", O_STR, &c.output_dir}, {"class-data-dir", O_STR, &c.class_data_dir},
        {"class-prompt", O_STR, &c.class_prompt}, {"with-prior-preservation", O_FLAG, &c.with_prior_preservation},
        {"prior-loss-weight", O_DBL, &c.prior_loss_weight}, {"num-class-images", O_INT, &c.num_class_images},
        {"sample-batch-size", O_INT, &c.sample_batch_size}, {"caption-extension", O_STR, &c.caption_extension},
        {"resolution", O_INT, &c.resolution}, {"center-crop", O_FLAG, &c.center_crop},
        {"random-flip", O_FLAG, &c.random_flip}, {"method", O_STR, &c.method}, {"rank", O_INT, &c.rank},
        {"alpha", O_DBL, &c.alpha}, {"ramp-steps", O_I64, &c.ramp_steps}, {"init", O_STR, &c.init},
        {"targets", O_STR, &c.targets}, {"train-batch-size", O_INT, &c.train_batch_size},
        {"gradient-accumulation-steps", O_INT, &c.gradient_accumulation_steps},
        {"max-train-steps", O_I64, &c.max_train_steps}, {"num-train-epochs", O_INT, &c.num_train_epochs},
        {"learning-rate", O_DBL, &c.learning_rate}, {"lr-scheduler", O_STR, &c.lr_scheduler},
        {"lr-warmup-steps", O_I64, &c.lr_warmup_steps}, {"adam-beta1", O_DBL, &c.adam_beta1},
        {"adam-beta2", O_DBL, &c.adam_beta2}, {"adam-weight-decay", O_DBL, &c.adam_weight_decay},
        {"adam-epsilon", O_DBL, &c.adam_epsilon}, {"max-grad-norm", O_DBL, &c.max_grad_norm},
        {"snr-gamma", O_DBL, &c.snr_gamma}, {"seed", O_U64, &c.seed},
        {"gradient-checkpointing", O_FLAG, &c.gradient_checkpointing}, {"threads", O_INT, &c.threads},
        {"checkpointing-steps", O_I64, &c.checkpointing_steps},
        {"checkpoints-total-limit", O_INT, &c.checkpoints_total_limit},
        {"resume-from-checkpoint", O_STR, &c.resume_from_checkpoint},
        {"validation-prompt", O_STR, &c.validation_prompt},
        {"num-validation-images", O_INT, &c.num_validation_images},
        {"validation-steps", O_I64, &c.validation_steps}, {"trace", O_STR, &c.trace}, {"quiet", O_FLAG, &c.quiet},
        {"config", O_STR, &recipe},
    };
    const int n_opts = (int)(sizeof opts / sizeof *opts);
    // the recipe first, so that the command line wins
    for (int i = 1; i < argc; i++) {
        char name[128];
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        if (strncmp(argv[i], "--", 2) == 0 && !strcmp(normalize(argv[i], name, sizeof name), "config")) {
            const char *eq = strchr(argv[i], '=');
            if (eq) recipe = eq + 1;
            else if (i + 1 < argc) recipe = argv[++i];
            else sl_die(NULL, "train: --config needs a value");
        }
    }
    cJSON *keep = NULL;
    if (recipe) load_recipe(recipe, opts, n_opts, &keep);
    for (int i = 1; i < argc; i++) {
        char name[128], flag[140];
        if (strncmp(argv[i], "--", 2) != 0) arg_unknown("train", argv[i]);
        normalize(argv[i], name, sizeof name);
        snprintf(flag, sizeof flag, "--%s", name);
        const opt *o = find_opt(opts, n_opts, name);
        if (!o) arg_unknown("train", argv[i]);
        const char *eq = strchr(argv[i], '=');
        if (o->kind == O_FLAG) {
            set_value(o, flag, eq ? eq + 1 : "1");
            continue;
        }
        const char *v = eq ? eq + 1 : NULL;
        if (!v) {
            if (i + 1 >= argc) sl_die(NULL, "train: %s needs a value", flag);
            v = argv[++i];
        }
        if (o->p == &recipe) continue;   // read above
        set_value(o, flag, v);
    }
    // the command line, recorded in config.json
    size_t len = 1;
    for (int i = 0; i < argc; i++) len += strlen(argv[i]) + 3;
    char *cl = sl_malloc(len + 16);
    snprintf(cl, len + 16, "singlora");
    for (int i = 0; i < argc; i++) {
        strcat(cl, " ");
        strcat(cl, argv[i]);
    }
    c.command_line = cl;
    set_threads(c.threads);
    int rc = train_run(&c);
    free(cl);
    cJSON_Delete(keep);
    if (rc != 0) sl_fail();
    return 0;
}
