// singlora eval: DINO / CLIP-I / CLIP-T of generated images against real photos (eval/evaluate.h).
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/progress.h"
#include "eval/evaluate.h"
#include "tools/args.h"
#include "tools/commands.h"

static const char *HELP =
    "usage: singlora eval --real DIR --generated DIR [--dino PATH] [--clip PATH] [--identifier sks]\n"
    "                     [--prompts FILE] --out report.json [--markdown report.md] [--grid grid.png] [--threads N] [--precision fp32|bf16] [--profile]\n\n"
    "The DreamBooth fidelity metrics, raw cosine similarities:\n"
    "  DINO   mean over all (generated, real) pairs of cos(DINO CLS features)   (--dino: DINO ViT)\n"
    "  CLIP-I the same with CLIP image embeddings                              (--clip: CLIPModel)\n"
    "  CLIP-T mean over generated images of cos(CLIP text embedding of its prompt with the\n"
    "         --identifier word removed, its image embedding)\n"
    "A generated image's prompt comes from its NAME.json sidecar or its PNG `parameters` chunk (as\n"
    "`singlora sample` writes them), or from --prompts FILE (one line per image, in sorted file order).\n"
    "Images: PNG, JPEG, BMP, ... (grid.png is skipped); one that does not decode is named and skipped.\n"
    "report.json: dino, clip_i, clip_t, n_real, n_generated, per_image [{file, prompt, dino, clip_i,\n"
    "clip_t}], models {dino, clip}; null where a model (or, for CLIP-T, every prompt) is missing.\n"
    "--grid writes the real images above the generated ones.\n";

int cmd_eval(int argc, char **argv) {
    eval_options o = {0};
    const char *out = NULL, *md = NULL, *grid = NULL, *v;
    int threads = 0;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_value(argc, argv, &i, "--real", &o.real_dir)) {}
        else if (arg_value(argc, argv, &i, "--generated", &o.generated_dir)) {}
        else if (arg_value(argc, argv, &i, "--dino", &o.dino)) {}
        else if (arg_value(argc, argv, &i, "--clip", &o.clip)) {}
        else if (arg_value(argc, argv, &i, "--identifier", &o.identifier)) {}
        else if (arg_value(argc, argv, &i, "--prompts", &o.prompts_file)) {}
        else if (arg_value(argc, argv, &i, "--out", &out)) {}
        else if (arg_value(argc, argv, &i, "--markdown", &md)) {}
        else if (arg_value(argc, argv, &i, "--grid", &grid)) {}
        else if (arg_precision(argc, argv, &i)) {}
        else if (arg_profile(argv, i)) {}
        else if (arg_value(argc, argv, &i, "--threads", &v)) threads = arg_threads("--threads", v);
        else arg_unknown("eval", argv[i]);
    }
    if (!o.real_dir || !o.generated_dir || !out) sl_die(NULL, "eval: --real, --generated and --out are required (see --help)");
    set_threads(threads);
    double t0 = now_seconds();
    eval_report r;
    if (eval_run(&o, &r) != 0) sl_fail();
    if (eval_write_json(&r, out) != 0) sl_fail();
    if (md && eval_write_markdown(&r, md) != 0) sl_fail();
    if (grid && eval_write_grid(&r, grid, 128) != 0) sl_fail();
    char a[32] = "null", b[32] = "null", c[32] = "null";
    if (!isnan(r.dino)) snprintf(a, sizeof a, "%.4f", r.dino);
    if (!isnan(r.clip_i)) snprintf(b, sizeof b, "%.4f", r.clip_i);
    if (!isnan(r.clip_t)) snprintf(c, sizeof c, "%.4f", r.clip_t);
    printf("DINO %s  CLIP-I %s  CLIP-T %s  (%d generated vs %d real, %.1f s) -> %s\n", a, b, c, r.n_generated, r.n_real,
           now_seconds() - t0, out);
    eval_report_free(&r);
    return 0;
}
