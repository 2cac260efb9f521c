// singlora world render|subject|subjects|score: the toy world (data/world/), its subjects and
// its scorer. Flag parsing and printing only.
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/world/caption.h"
#include "data/world/dataset.h"
#include "data/world/palette.h"
#include "data/world/score_folder.h"
#include "pipeline/world_eval.h"
#include "data/world/subject.h"
#include "engine/core/error.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "tools/io.h"

static const char *HELP =
    "usage: singlora world <target> [options]\n\n"
    "targets:\n"
    "  render    (--n N | --captions FILE) [--seed S] [--size 64] --out DIR\n"
    "            images of one or two shapes on a textured background: DIR/NNNNN.png + NNNNN.txt\n"
    "            (the caption, also the PNG's `parameters` text); --captions renders one image per\n"
    "            non-empty line, e.g. 'a red star and a blue circle on a green background'\n"
    "  subject   --spec SPEC [--n 5] [--seed S] [--size 64] [--token sks] --out DIR\n"
    "            photos of a subject on varied backgrounds, captioned 'a photo of sks star on a\n"
    "            blue background'; SPEC is SHAPE:BODY:PATTERN-COLOUR:ACCENT-COLOUR\n"
    "            (e.g. star:magenta:stripes-white:outline-orange) or a name from `world subjects`\n"
    "  subjects  list the named subjects\n"
    "  score     --images DIR [--out scores.json] [--subject SPEC [--token sks]]\n"
    "            scores every PNG against its caption (NAME.txt, NAME.json's prompt, or the PNG's\n"
    "            `parameters`): background colour, object colours, shapes, and for captions naming\n"
    "            the subject's token its fidelity in [0,1]; prints the aggregate\n"
    "  eval      --model M --out DIR [--n 200] [--seed 1000] [--steps 25] [--cfg 5]\n"
    "            [--train-seed 0] [--train-examples 16384]\n"
    "            samples N held-out captions with a model (world captions none of the training set's:\n"
    "            world render --seed TRAIN-SEED's first TRAIN-EXAMPLES, as `singlora pretrain` trains on)\n"
    "            into DIR and scores them (the base model's targets: background >= 95 %, object\n"
    "            colour >= 85 %, shape >= 75 %)\n\n"
    "shapes: circle, square, triangle, star, ring\n"
    "colours: red, orange, yellow, green, blue, purple, pink, magenta, white, black, brown, cyan\n"
    "patterns: stripes, dots, checks; accents: outline, eye\n";

static int parse_size(const char *s) {
    return (int)arg_int_range("--size", s, WORLD_MIN_SIZE, WORLD_MAX_SIZE);
}

static long parse_count(const char *s) {
    return (long)arg_int_range("--n", s, 1, 99999);
}

static int target_render(int argc, char **argv) {
    const char *n_s = NULL, *captions = NULL, *out = NULL, *v;
    uint64_t seed = 0;
    int size = 64;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_value(argc, argv, &i, "--n", &v)) n_s = v;
        else if (arg_value(argc, argv, &i, "--captions", &v)) captions = v;
        else if (arg_value(argc, argv, &i, "--seed", &v)) seed = arg_seed("--seed", v);
        else if (arg_value(argc, argv, &i, "--size", &v)) size = parse_size(v);
        else if (arg_value(argc, argv, &i, "--out", &v)) out = v;
        else arg_unknown("world render", argv[i]);
    }
    if (!out || !n_s == !captions) sl_die(NULL, "world render: --out and one of --n or --captions are required (see singlora world --help)");
    long n = n_s ? parse_count(n_s) : 0;
    FILE *f = NULL;
    if (captions && !(f = fopen(captions, "r"))) sl_die(captions, "cannot open: %s", strerror(errno));
    if (mkdir_p(out) != 0) sl_fail();
    uint8_t *rgb = sl_malloc((size_t)size * size * 3);
    char caption[CAPTION_MAX];
    long k = 0;
    if (f) {
        char line[4096];
        for (long lineno = 1; fgets(line, sizeof line, f); lineno++) {
            line[strcspn(line, "\r\n")] = 0;
            if (!line[strspn(line, " \t")]) continue;
            char what[4200];
            snprintf(what, sizeof what, "%s:%ld", captions, lineno);
            world_scene s;
            if (world_caption_example(line, seed, (uint64_t)k, size, rgb, &s, what) != 0) sl_fail();
            caption_write(&s, NULL, caption, sizeof caption);
            if (world_write_example(out, k++, rgb, size, caption) != 0) sl_fail();
        }
        fclose(f);
        if (k == 0) sl_die(captions, "no captions in the file");
    } else {
        for (; k < n; k++) {
            world_example(seed, (uint64_t)k, size, rgb, caption, NULL);
            if (world_write_example(out, k, rgb, size, caption) != 0) sl_fail();
        }
    }
    free(rgb);
    printf("wrote %ld images (%dx%d) with captions to %s\n", k, size, size, out);
    return 0;
}

static int target_subject(int argc, char **argv) {
    const char *spec = NULL, *out = NULL, *token = "sks", *v;
    uint64_t seed = 0;
    int size = 64;
    long n = 5;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_value(argc, argv, &i, "--spec", &v)) spec = v;
        else if (arg_value(argc, argv, &i, "--n", &v)) n = parse_count(v);
        else if (arg_value(argc, argv, &i, "--seed", &v)) seed = arg_seed("--seed", v);
        else if (arg_value(argc, argv, &i, "--size", &v)) size = parse_size(v);
        else if (arg_value(argc, argv, &i, "--token", &v)) token = v;
        else if (arg_value(argc, argv, &i, "--out", &v)) out = v;
        else arg_unknown("world subject", argv[i]);
    }
    if (!spec || !out) sl_die(NULL, "world subject: --spec and --out are required (see singlora world --help)");
    world_subject sub;
    if (subject_parse(spec, &sub, "option --spec") != 0) sl_fail();
    if (!*token || strchr(token, ' ')) sl_die(NULL, "option --token: '%s' must be one word", token);
    if (mkdir_p(out) != 0) sl_fail();
    uint8_t *rgb = sl_malloc((size_t)size * size * 3);
    char caption[CAPTION_MAX];
    for (long k = 0; k < n; k++) {
        world_subject_example(&sub, token, seed, (uint64_t)k, size, rgb, caption, NULL);
        if (world_write_example(out, k, rgb, size, caption) != 0) sl_fail();
    }
    free(rgb);
    char s[128];
    subject_format(&sub, s, sizeof s);
    printf("wrote %ld photos of %s (%dx%d) to %s\n", n, s, size, size, out);
    return 0;
}

static int target_subjects(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        arg_unknown("world subjects", argv[i]);
    }
    for (int i = 0; i < subject_named_count(); i++) printf("%-16s %s\n", subject_named_name(i), subject_named_spec(i));
    return 0;
}

static void print_totals(const score_totals *t) {
    printf("images %d: background right %.1f %%, object colour right %.1f %% (of %d), shape right %.1f %% (of %d)",
           t->images, score_pct(t->background_right, t->images), score_pct(t->colour_right, t->plain_objects),
           t->plain_objects, score_pct(t->shape_right, t->objects), t->objects);
    if (t->subject_objects) printf(", subject fidelity %.3f (of %d)", t->fidelity_sum / t->subject_objects, t->subject_objects);
    printf("\n");
}

static int target_score(int argc, char **argv) {
    const char *images = NULL, *out = NULL, *spec = NULL, *token = "sks", *v;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_value(argc, argv, &i, "--images", &v)) images = v;
        else if (arg_value(argc, argv, &i, "--out", &v)) out = v;
        else if (arg_value(argc, argv, &i, "--subject", &v)) spec = v;
        else if (arg_value(argc, argv, &i, "--token", &v)) token = v;
        else arg_unknown("world score", argv[i]);
    }
    if (!images) sl_die(NULL, "world score: --images is required (see singlora world --help)");
    world_subject sub;
    if (spec && subject_parse(spec, &sub, "option --subject") != 0) sl_fail();
    score_totals t;
    if (score_folder(images, spec ? &sub : NULL, token, out, &t) != 0) sl_fail();
    print_totals(&t);
    if (out) printf("wrote %s\n", out);
    return 0;
}

static int target_eval(int argc, char **argv) {
    const char *model = NULL, *config = NULL, *out = NULL, *v;
    world_eval_opts o = world_eval_defaults();
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_model(argc, argv, &i, &model, &config, NULL)) {}
        else if (arg_value(argc, argv, &i, "--out", &v)) out = v;
        else if (arg_value(argc, argv, &i, "--n", &v)) o.n = (int)parse_count(v);
        else if (arg_value(argc, argv, &i, "--seed", &v)) o.seed = arg_seed("--seed", v);
        else if (arg_value(argc, argv, &i, "--train-seed", &v)) o.train_seed = arg_seed("--train-seed", v);
        else if (arg_value(argc, argv, &i, "--train-examples", &v)) o.n_train = arg_int_range("--train-examples", v, 0, 100000000);
        else if (arg_value(argc, argv, &i, "--steps", &v)) o.steps = (int)arg_int_range("--steps", v, 1, 1000);
        else if (arg_value(argc, argv, &i, "--cfg", &v)) o.cfg = (float)arg_double_range("--cfg", v, 0, 100);
        else if (arg_flag(argv, i, "--quiet")) o.quiet = 1;
        else arg_unknown("world eval", argv[i]);
    }
    if (!model || !out) sl_die(NULL, "world eval: --model and --out are required (see singlora world --help)");
    sd_load_opts lo = {.path = model, .config_dir = config, .vae_parts = VAE_DECODER};
    sd_model *m = sd_model_load(&lo);
    if (!m) sl_fail();
    score_totals t;
    int64_t skipped = 0;
    if (world_eval_model(m, &o, out, &t, &skipped) != 0) sl_fail();
    sd_model_free(m);
    printf("%d held-out captions (seed %llu; %lld seen in training skipped): ", o.n, (unsigned long long)o.seed,
           (long long)skipped);
    print_totals(&t);
    printf("wrote %s/scores.json\n", out);
    return 0;
}

int cmd_world(int argc, char **argv) {
    static const command TARGETS[] = {
        {"render", "world images with captions", target_render},
        {"subject", "photos of a subject", target_subject},
        {"subjects", "list the named subjects", target_subjects},
        {"score", "score images against their captions", target_score},
        {"eval", "sample held-out captions with a model and score them", target_eval},
    };
    if (argc >= 2 && arg_is_help(argv[1])) { fputs(HELP, stdout); return 0; }
    return run_target("world", TARGETS, (int)(sizeof TARGETS / sizeof TARGETS[0]), argc, argv);
}
