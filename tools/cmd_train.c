// singlora train: flag parsing (`--a-b`, `--a_b` and `--a-b=V` alike; `--config recipe.json`
// with the same names as keys, the command line winning) and one call to train_run.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/train/train_options.h"
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
    "           [--init kaiming|normal:STD (singlora normal:0.01, lora/dora kaiming)] [--targets cross-attn|self-attn|attn|ff|proj|all|resnets|conv|PATTERNS]\n"
    "  optim:   [--train-batch-size 1] [--gradient-accumulation-steps 1] [--max-train-steps N | --num-train-epochs E]\n"
    "           [--learning-rate 1e-4] [--lr-scheduler constant|constant_with_warmup|linear|cosine]\n"
    "           [--lr-warmup-steps 0] [--adam-beta1 0.9] [--adam-beta2 0.999] [--adam-weight-decay 1e-2]\n"
    "           [--adam-epsilon 1e-8] [--max-grad-norm 1.0] [--snr-gamma G] [--seed S] [--gradient-checkpointing]\n"
    "           [--threads N] [--precision fp32|bf16] [--profile] [--prediction-type epsilon|v_prediction]\n"
    "  saving:  [--checkpointing-steps 500] [--checkpoints-total-limit K] [--resume-from-checkpoint latest|DIR]\n"
    "           [--validation-prompt P --num-validation-images 4 --validation-steps 100] [--trace FILE]\n"
    "  model:   [--config-dir DIR] [--variant fp16] [--tokenizer DIR]   [--config recipe.json] [--quiet]\n"
    "Outputs in OUT: adapter.safetensors, lora.safetensors (kohya), log.csv, loss.png, config.json,\n"
    "validation/step-N.png, checkpoints/checkpoint-N/, cache/.\n";

int cmd_train(int argc, char **argv) {
    train_config c;
    train_config_defaults(&c);
    // the recipe first, so that the command line wins
    const char *recipe = NULL;
    for (int i = 1; i < argc; i++) {
        char name[128];
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        if (strncmp(argv[i], "--", 2) == 0 && !strcmp(train_option_normalize(argv[i], name, sizeof name), "config")) {
            const char *eq = strchr(argv[i], '=');
            if (eq) recipe = eq + 1;
            else if (i + 1 < argc) recipe = argv[++i];
            else sl_die(NULL, "train: --config needs a value");
        }
    }
    void *keep = NULL;
    if (recipe && train_recipe_load(&c, recipe, &keep) != 0) sl_fail();
    for (int i = 1; i < argc; i++) {
        char name[128], flag[140];
        if (strncmp(argv[i], "--", 2) != 0) arg_unknown("train", argv[i]);
        if (arg_profile(argv, i)) continue;
        train_option_normalize(argv[i], name, sizeof name);
        snprintf(flag, sizeof flag, "--%s", name);
        const char *eq = strchr(argv[i], '=');
        if (!strcmp(name, "config")) { i += !eq; continue; }   // read above
        int kind = train_option_kind(name);
        if (kind < 0) arg_unknown("train", argv[i]);
        const char *v = eq ? eq + 1 : kind == 1 ? "1" : NULL;
        if (!v) {
            if (i + 1 >= argc) sl_die(NULL, "train: %s needs a value", flag);
            v = argv[++i];
        }
        if (train_option_set(&c, name, v, flag) != 0) sl_fail();
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
    train_recipe_free(keep);
    if (rc != 0) sl_fail();
    return 0;
}
