// `make test-long`: the shipped toy-world base model reaches its targets on 200 held-out
// captions, the full demo reaches the personalization targets (issue 14), and a short method
// comparison runs end to end (issue 19). Minutes each.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test.h"

static int long_tests(void) {
    if (getenv("SINGLORA_LONG")) return 1;
    printf("  skipped: a long test (make test-long runs it)\n");
    return 0;
}

// The number after `key` in s (or -1).
static double number_after(const char *s, const char *key) {
    const char *p = strstr(s, key);
    return p ? atof(p + strlen(key)) : -1;
}

TEST(long_toyworld_base_reaches_its_targets) {
    if (!long_tests()) return;
    char out[8192];
    REQUIRE(run_cmd(out, sizeof out, "%s world eval --model models/toyworld --n 200 --out %s --quiet", singlora_bin(),
                    tmp_path("eval")) == 0);
    printf("  %s", out);
    CHECK_MSG(number_after(out, "background right ") >= 95.0, "%s", out);
    CHECK_MSG(number_after(out, "object colour right ") >= 85.0, "%s", out);
    CHECK_MSG(number_after(out, "shape right ") >= 75.0, "%s", out);
}

// One row of the demo's stdout table: "name   base   adapter".
static void row(const char *out, const char *name, double *base, double *adapter) {
    const char *p = strstr(out, name);
    *base = *adapter = -1;
    if (p) sscanf(p + strlen(name), " %lf%%%*[ ]%lf", base, adapter);
    if (p && *adapter < 0) sscanf(p + strlen(name), " %lf %lf", base, adapter);
}

TEST(long_toyworld_demo_reaches_its_targets) {
    if (!long_tests()) return;
    char out[16384];
    REQUIRE(run_cmd(out, sizeof out, "%s demo --out %s --quiet", singlora_bin(), tmp_path("demo")) == 0);
    printf("%s", out);
    double fb, fa, pb, pa, db, da;
    row(out, "subject fidelity (0-1)", &fb, &fa);
    row(out, "prompt accuracy, subject in new contexts", &pb, &pa);
    row(out, "accuracy on prompts without the subject", &db, &da);
    CHECK_MSG(fa >= 0.8 && fb <= 0.2, "fidelity base %.3f adapter %.3f", fb, fa);
    CHECK_MSG(pa >= 85.0, "prompt accuracy %.1f", pa);
    CHECK_MSG(db - da <= 5.0, "drift %.1f points", db - da);
}

// The method comparison, short: 2 subjects x 1 seed, one setting per method (equal rank), few
// steps and prompts; every run finishes, the table has a row per setting and the ordering line.
TEST(long_compare_methods_short_run) {
    if (!long_tests()) return;
    char out[16384];
    const char *docs = tmp_path("docs");
    // spread over two mpirun ranks where Open MPI is installed, else two jobs at once
    const char *spread = run_cmd(out, sizeof out, "command -v mpirun") == 0 ? "--mpi 2" : "--jobs 2";
    int rc = run_cmd(out, sizeof out,
                     "tools/compare_methods.sh --subjects 2 --seeds 1 --settings singlora-r8-lr1e-3,lora-r8-lr1e-3,dora-r8-lr1e-3 "
                     "--steps 20 --prompts 4 --drift-prompts 4 --class-images 8 --sample-steps 10 %s --out %s --scratch %s",
                     spread, docs, tmp_path("scratch"));
    printf("%s", out);
    REQUIRE(rc == 0);
    char md[16384];
    REQUIRE(run_cmd(md, sizeof md, "cat %s/method_comparison.md; ls %s/method_comparison/grids | wc -l", docs, docs) == 0);
    const char *rows[] = {"| singlora-r8-lr1e-3 | singlora | 8 |", "| lora-r8-lr1e-3 | lora | 8 |", "| dora-r8-lr1e-3 | dora | 8 |"};
    for (int k = 0; k < 3; k++) CHECK_MSG(strstr(md, rows[k]), "no row %s:\n%s", rows[k], md);
    CHECK_MSG(strstr(md, "6 runs in 3 settings") && strstr(md, "The paper's ordering"), "%s", md);
    // a rerun finds every result and runs nothing
    REQUIRE(run_cmd(out, sizeof out, "tools/compare_methods.sh --subjects 2 --seeds 1 --settings singlora-r8-lr1e-3,lora-r8-lr1e-3,dora-r8-lr1e-3 "
                                     "--out %s --scratch %s", docs, tmp_path("scratch")) == 0);
    CHECK_MSG(strstr(out, "0 runs to do"), "%s", out);
}
