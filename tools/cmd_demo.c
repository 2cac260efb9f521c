// singlora demo: flag parsing, finding the shipped model and recipe, and the result table
// (pipeline/demo.h does the work).
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/core/error.h"
#include "pipeline/demo.h"
#include "tools/args.h"
#include "tools/commands.h"

static const char *HELP =
    "usage: singlora demo [--method singlora|lora|dora] [--subject SPEC] [--out demo/] [options]\n\n"
    "Personalizes the shipped toy-world base model (models/toyworld) to a subject it has never seen:\n"
    "renders the subject's photos and class images, DreamBooth-trains an adapter with prior preservation\n"
    "(configs/train/toyworld.json, the recipe `singlora train --config` reads), samples prompts that put\n"
    "the subject in new contexts and prompts without it, with the base and with the adapter, scores them\n"
    "(`singlora world score`) and writes OUT/report.md with the before/after table, grids and the loss plot.\n"
    "  --subject SPEC     SHAPE:BODY:PATTERN-COLOUR:ACCENT-COLOUR or a name from `singlora world subjects`\n"
    "                     (zebra-star)\n"
    "  --method M         the adapter (the recipe's: singlora)      --steps N    training steps (the recipe's)\n"
    "  --model DIR        the base (models/toyworld)                --recipe F   (configs/train/toyworld.json)\n"
    "  --photos N (5)  --class-images N (50)  --prompts N (20)  --drift-prompts N (20)\n"
    "  --sample-steps N (25)  --cfg G (5)  --seed S (0)  --token sks  --threads N  --quiet\n"
    "  --precision fp32|bf16   GEMM precision (bf16: operands rounded, f32 accumulation; AVX512_BF16)\n"
    "  --profile          time and GFLOP/s per op kind (stderr, at the end)\n"
    "  --train-option OPTION=VALUE   overrides the recipe (singlora train's names: learning-rate=5e-4,\n"
    "                     rank=4, targets=cross-attn, init=normal:0.01, ramp-steps=0, ...); repeatable\n"
    "  --dino DIR / --clip DIR   also DINO / CLIP-I / CLIP-T against the photos (singlora eval's models)\n"
    "Writes OUT/report.md and OUT/result.json (the numbers, for scripts).\n"
    "Relative default paths are looked up in the current folder, then beside the singlora binary.\n";

static int exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

// A default path relative to the current folder, else to the binary's folder (a copy kept in buf).
static const char *find_default(const char *rel, char *buf, size_t n) {
    if (exists(rel)) return rel;
    char exe[4096];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len <= 0) return rel;
    exe[len] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash) return rel;
    *slash = 0;
    snprintf(buf, n, "%s/%s", exe, rel);
    return exists(buf) ? buf : rel;
}

static int count(const char *opt, const char *v, int hi) { return (int)arg_int_range(opt, v, 1, hi); }

int cmd_demo(int argc, char **argv) {
    demo_opts o = demo_defaults();
    const char *v;
    int model_set = 0, recipe_set = 0, n_set = 0;
    const char *sets[64];
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_value(argc, argv, &i, "--model", &o.model)) model_set = 1;
        else if (arg_value(argc, argv, &i, "--recipe", &o.recipe)) recipe_set = 1;
        else if (arg_value(argc, argv, &i, "--subject", &o.subject)) {}
        else if (arg_value(argc, argv, &i, "--method", &o.method)) {}
        else if (arg_value(argc, argv, &i, "--out", &o.out)) {}
        else if (arg_value(argc, argv, &i, "--token", &o.token)) {}
        else if (arg_value(argc, argv, &i, "--dino", &o.dino)) {}
        else if (arg_value(argc, argv, &i, "--clip", &o.clip)) {}
        else if (arg_value(argc, argv, &i, "--steps", &v)) o.max_train_steps = count("--steps", v, 1000000);
        else if (arg_value(argc, argv, &i, "--photos", &v)) o.n_photos = count("--photos", v, 1000);
        else if (arg_value(argc, argv, &i, "--class-images", &v)) o.n_class = count("--class-images", v, 100000);
        else if (arg_value(argc, argv, &i, "--prompts", &v)) o.n_prompts = count("--prompts", v, 10000);
        else if (arg_value(argc, argv, &i, "--drift-prompts", &v)) o.n_drift = count("--drift-prompts", v, 10000);
        else if (arg_value(argc, argv, &i, "--sample-steps", &v)) o.sample_steps = count("--sample-steps", v, 1000);
        else if (arg_precision(argc, argv, &i)) {}
        else if (arg_profile(argv, i)) {}
        else if (arg_value(argc, argv, &i, "--threads", &v)) o.threads = arg_threads("--threads", v);
        else if (arg_value(argc, argv, &i, "--seed", &v)) o.seed = arg_seed("--seed", v);
        else if (arg_value(argc, argv, &i, "--cfg", &v)) o.cfg = (float)arg_double_range("--cfg", v, 0, 100);
        else if (arg_value(argc, argv, &i, "--train-option", &v)) {
            if (n_set == (int)(sizeof sets / sizeof *sets)) sl_die(NULL, "option --train-option: at most %d", n_set);
            sets[n_set++] = v;
        }
        else if (arg_flag(argv, i, "--quiet")) o.quiet = 1;
        else arg_unknown("demo", argv[i]);
    }
    if (!*o.token || strchr(o.token, ' ')) sl_die(NULL, "option --token: '%s' must be one word", o.token);
    char model_buf[4200], recipe_buf[4200];
    if (!model_set) o.model = find_default(o.model, model_buf, sizeof model_buf);
    if (!recipe_set) o.recipe = find_default(o.recipe, recipe_buf, sizeof recipe_buf);
    if (!exists(o.model))
        sl_die(o.model, "no such model%s", model_set ? "" : " (the shipped toy-world base: `make pretrain` rebuilds it; or pass --model)");
    o.train_set = sets, o.n_train_set = n_set;
    set_threads(o.threads);
    demo_result r;
    if (demo_run(&o, &r) != 0) sl_fail();
    printf("%-44s %10s %10s\n", "", "base", "adapter");
    printf("%-44s %10.3f %10.3f\n", "subject fidelity (0-1)", r.base.fidelity, r.adapter.fidelity);
    printf("%-44s %9.1f%% %9.1f%%\n", "prompt accuracy, subject in new contexts", r.base.prompt_pct, r.adapter.prompt_pct);
    printf("%-44s %9.1f%% %9.1f%%\n", "accuracy on prompts without the subject", r.base.drift_pct, r.adapter.drift_pct);
    if (!isnan(r.adapter.dino)) printf("%-44s %10.3f %10.3f\n", "DINO vs the photos", r.base.dino, r.adapter.dino);
    if (!isnan(r.adapter.clip_i)) printf("%-44s %10.3f %10.3f\n", "CLIP-I vs the photos", r.base.clip_i, r.adapter.clip_i);
    if (!isnan(r.adapter.clip_t)) printf("%-44s %10.3f %10.3f\n", "CLIP-T", r.base.clip_t, r.adapter.clip_t);
    printf("training %.0f s, demo %.0f s; wrote %s/report.md\n", r.train_seconds, r.total_seconds, o.out);
    return 0;
}
