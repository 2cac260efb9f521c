// `make test-long`: the shipped toy-world base model reaches its targets on 200 held-out
// captions, and the full demo reaches the personalization targets (issue 14). Minutes each.
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
