// singlora compare: the method comparison's table from a folder of demo runs
// (pipeline/method_comparison.h does the work; tools/compare_methods.sh makes the runs).
#include <stdio.h>

#include "engine/core/error.h"
#include "pipeline/method_comparison.h"
#include "tools/args.h"
#include "tools/commands.h"

static const char *HELP =
    "usage: singlora compare --runs DIR --out FILE.md [--title TEXT] [--max-drift POINTS]\n\n"
    "Reads DIR/<setting>/<run>/result.json (what `singlora demo --out DIR/<setting>/<run>` writes),\n"
    "groups the runs by setting and writes a markdown table of mean ± std over the runs of each setting\n"
    "(subject fidelity, prompt accuracy, accuracy without the subject, drift, DINO / CLIP when scored),\n"
    "the best setting per method (highest fidelity with mean drift <= --max-drift, default 5) and whether\n"
    "the paper's ordering SingLoRA > DoRA > LoRA holds. tools/compare_methods.sh runs the whole comparison.\n";

int cmd_compare(int argc, char **argv) {
    const char *runs = NULL, *out = NULL, *title = "SingLoRA vs LoRA vs DoRA on the toy world", *v;
    double max_drift = 5;
    for (int i = 1; i < argc; i++) {
        if (arg_is_help(argv[i])) { fputs(HELP, stdout); return 0; }
        else if (arg_value(argc, argv, &i, "--runs", &runs)) {}
        else if (arg_value(argc, argv, &i, "--out", &out)) {}
        else if (arg_value(argc, argv, &i, "--title", &title)) {}
        else if (arg_value(argc, argv, &i, "--max-drift", &v)) max_drift = arg_double_range("--max-drift", v, 0, 100);
        else arg_unknown("compare", argv[i]);
    }
    if (!runs || !out) sl_die(NULL, "compare: --runs DIR and --out FILE.md are required (see --help)");
    cmp_table t;
    if (cmp_load(&t, runs) != 0 || cmp_write_markdown(&t, out, title, max_drift) != 0) sl_fail();
    printf("%d runs in %d settings -> %s\n", t.n_runs, t.n_settings, out);
    cmp_free(&t);
    return 0;
}
