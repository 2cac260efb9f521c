// `singlora compare`: demo results grouped by setting, mean ± sample std, the best setting per
// method under the drift limit, the ordering sentence, unfinished runs skipped, bad files named.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/io/folders.h"
#include "pipeline/method_comparison.h"
#include "tests/test.h"

static void result(const char *runs, const char *setting, const char *run, const char *method, int rank,
                   double params, double fidelity, double prompt, double drift) {
    char dir[900], path[1000];
    snprintf(dir, sizeof dir, "%s/%s/%s", runs, setting, run);
    mkdir_p(dir);
    snprintf(path, sizeof path, "%s/result.json", dir);
    FILE *f = fopen(path, "w");
    if (!f) return;
    fprintf(f, "{\"method\": \"%s\", \"rank\": %d, \"trainable_params\": %g, \"train_seconds\": 20, \"total_seconds\": 30,\n"
               " \"base\": {\"subject_fidelity\": 0.05, \"prompt_accuracy_pct\": 40, \"no_subject_accuracy_pct\": 80,"
               " \"dino\": null, \"clip_i\": null, \"clip_t\": null},\n"
               " \"adapter\": {\"subject_fidelity\": %g, \"prompt_accuracy_pct\": %g, \"no_subject_accuracy_pct\": %g,"
               " \"dino\": null, \"clip_i\": null, \"clip_t\": null}, \"drift_points\": %g}\n",
            method, rank, params, fidelity, prompt, 80 - drift, drift);
    fclose(f);
}

TEST(compare_groups_runs_and_picks_the_best_per_method) {
    const char *runs = tmp_path("runs");
    result(runs, "singlora-r8", "zebra-0", "singlora", 8, 1000, 0.2, 50, 2);
    result(runs, "singlora-r8", "zebra-1", "singlora", 8, 1000, 0.4, 70, 4);
    char unfinished[900];
    snprintf(unfinished, sizeof unfinished, "%s/singlora-r8/zebra-2", runs);   // no result.json yet
    REQUIRE(mkdir_p(unfinished) == 0);
    result(runs, "lora-r8-hot", "zebra-0", "lora", 8, 2000, 0.5, 80, 10);   // best fidelity, but drifts
    result(runs, "lora-r4", "zebra-0", "lora", 4, 1000, 0.28, 60, 1);
    result(runs, "dora-r8", "zebra-0", "dora", 8, 2100, 0.25, 55, 3);
    cmp_table t;
    REQUIRE(cmp_load(&t, runs) == 0);
    CHECK_EQ_INT(t.n_settings, 4);
    CHECK_EQ_INT(t.n_runs, 5);
    CHECK_NEAR(t.total_seconds, 150, 1e-9);
    const cmp_setting *s = &t.settings[0];   // singlora first
    REQUIRE(!strcmp(s->name, "singlora-r8"));
    CHECK_EQ_INT(s->n, 2);
    CHECK_NEAR(s->mean[0], 0.3, 1e-12);
    CHECK_NEAR(s->std[0], sqrt(0.02), 1e-12);   // sample std of {0.2, 0.4}
    CHECK_NEAR(s->mean[3], 3, 1e-12);
    CHECK_EQ_INT(s->n_metric[4], 0);   // DINO null in every run
    int bl = cmp_best(&t, "lora", 5), bd = cmp_best(&t, "dora", 5);
    REQUIRE(bl >= 0 && bd >= 0);
    CHECK(!strcmp(t.settings[bl].name, "lora-r4"));        // the drifting setting is passed over
    CHECK(!strcmp(t.settings[cmp_best(&t, "lora", 20)].name, "lora-r8-hot"));
    CHECK_EQ_INT(cmp_best(&t, "nosuch", 5), -1);
    const char *md = tmp_path("table.md");
    REQUIRE(cmp_write_markdown(&t, md, "test", 5) == 0);
    char log[8192];
    REQUIRE(run_cmd(log, sizeof log, "cat %s", md) == 0);
    CHECK_MSG(strstr(log, "| singlora-r8 | singlora | 8 | 1000 | 2 | 20 | 0.300 ± 0.141 | 60.0 ± 14.1 |"), "%s", log);
    CHECK_MSG(!strstr(log, "DINO"), "an all-null metric got a column:\n%s", log);
    CHECK_MSG(strstr(log, "- lora: `lora-r4`"), "%s", log);
    CHECK_MSG(strstr(log, "does not hold here: best SingLoRA 0.300, DoRA 0.250, LoRA 0.280"), "%s", log);
    cmp_free(&t);
}

TEST(compare_refuses_mixed_and_broken_results) {
    const char *runs = tmp_path("mixed");
    result(runs, "a", "r0", "singlora", 8, 1000, 0.2, 50, 2);
    result(runs, "a", "r1", "lora", 8, 2000, 0.2, 50, 2);
    cmp_table t;
    CHECK(cmp_load(&t, runs) == -1);
    char log[8192];
    int rc = run_cmd(log, sizeof log, "%s compare --runs %s --out %s", singlora_bin(), runs, tmp_path("x.md"));
    CHECK_MSG(rc == 1 && strstr(log, "r1/result.json") && strstr(log, "mixes runs"), "rc %d: %s", rc, log);
    const char *broken = tmp_path("broken");
    result(broken, "a", "r0", "singlora", 8, 1000, 0.2, 50, 2);
    REQUIRE(run_cmd(log, sizeof log, "echo '{\"method\": \"lora\"' > %s/a/r0/result.json", broken) == 0);
    rc = run_cmd(log, sizeof log, "%s compare --runs %s --out %s", singlora_bin(), broken, tmp_path("y.md"));
    CHECK_MSG(rc == 1 && strstr(log, "a/r0/result.json: not valid JSON"), "rc %d: %s", rc, log);
    rc = run_cmd(log, sizeof log, "%s compare --runs %s --out %s", singlora_bin(), tmp_path("empty"), tmp_path("z.md"));
    CHECK_MSG(rc == 1 && strstr(log, "empty"), "rc %d: %s", rc, log);
}
