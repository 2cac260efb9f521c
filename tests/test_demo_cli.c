// `singlora demo` on the shipped toy-world model, shortened to seconds: every stage runs and
// writes what the report links; bad input is one error line. `make test-long` runs the full
// demo and checks the targets (tests/test_long_toyworld.c).
#include <string.h>

#include "tests/test.h"

static int one_line(const char *s) {
    const char *nl = strchr(s, '\n');
    return nl && !nl[1];
}

TEST(demo_short_run_writes_report_and_scores) {
    char out[16384];
    const char *dir = tmp_path("demo");
    int rc = run_cmd(out, sizeof out,
                     "%s demo --out %s --steps 4 --photos 2 --class-images 3 --prompts 2 --drift-prompts 2 "
                     "--sample-steps 2 --quiet", singlora_bin(), dir);
    REQUIRE(rc == 0 || (printf("%s\n", out), 0));
    CHECK_MSG(strstr(out, "subject fidelity") && strstr(out, "report.md"), "%s", out);
    const char *files[] = {"report.md", "grid-photos.png", "grid-base.png", "grid-adapter.png", "grid-drift-base.png",
                           "grid-drift-adapter.png", "train/adapter.safetensors", "train/loss.png", "photos/00001.txt",
                           "class/00002.txt", "base/subject/scores.json", "adapter/plain/scores.json",
                           "adapter/subject/00001.png", "adapter/subject/00001.txt"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++)
        CHECK_MSG(run_cmd(out, sizeof out, "test -s %s/%s", dir, files[i]) == 0, "missing %s", files[i]);
    REQUIRE(run_cmd(out, sizeof out, "cat %s/report.md", dir) == 0);
    CHECK_MSG(strstr(out, "| subject fidelity (0-1) |") && strstr(out, "star:magenta:stripes-white:outline-orange") &&
              strstr(out, "singlora adapter, rank 8") && strstr(out, "trained 4 steps"), "%s", out);
    REQUIRE(run_cmd(out, sizeof out, "cat %s/photos/00000.txt %s/class/00000.txt %s/adapter/subject/00001.txt", dir, dir, dir) == 0);
    CHECK_MSG(!strncmp(out, "a photo of sks star on a", 24) && strstr(out, "star on a") && strstr(out, "sks star and a"), "%s", out);
    // class images: every other one beside a second object (prior preservation keeps two-object scenes)
    REQUIRE(run_cmd(out, sizeof out, "cat %s/class/00000.txt; echo; cat %s/class/00001.txt", dir, dir) == 0);
    CHECK_MSG(strstr(out, "star on a") && strstr(out, "star and a") && !strstr(out, "sks"), "%s", out);
    // the same prompts and seeds: the adapter changes the images
    CHECK(run_cmd(out, sizeof out, "cmp -s %s/base/subject/00000.png %s/adapter/subject/00000.png", dir, dir) != 0);
    CHECK(run_cmd(out, sizeof out, "cmp -s %s/base/subject/00000.txt %s/adapter/subject/00000.txt", dir, dir) == 0);
}

TEST(demo_bad_input_is_one_error_line) {
    char out[4096];
    CHECK(run_cmd(out, sizeof out, "%s demo --subject star:magenta --out %s", singlora_bin(), tmp_path("a")) == 1);
    CHECK_MSG(one_line(out) && strstr(out, "--subject"), "%s", out);
    CHECK(run_cmd(out, sizeof out, "%s demo --model %s --out %s", singlora_bin(), tmp_path("none"), tmp_path("b")) == 1);
    CHECK_MSG(one_line(out) && strstr(out, "none") && strstr(out, "no such model"), "%s", out);
    CHECK(run_cmd(out, sizeof out, "%s demo --prompts 0", singlora_bin()) == 1);
    CHECK_MSG(one_line(out) && strstr(out, "--prompts"), "%s", out);
    CHECK(run_cmd(out, sizeof out, "%s demo --out /proc/demo --quiet", singlora_bin()) == 1);
    CHECK_MSG(one_line(out) && strstr(out, "/proc/demo"), "%s", out);
    CHECK(run_cmd(out, sizeof out, "%s demo --method nope --out %s --quiet", singlora_bin(), tmp_path("c")) == 1);
    CHECK_MSG(one_line(out) && strstr(out, "nope"), "%s", out);
}

TEST(world_eval_samples_heldout_captions_and_scores) {
    char out[8192];
    const char *dir = tmp_path("eval");
    REQUIRE(run_cmd(out, sizeof out, "%s world eval --model models/toyworld --n 3 --steps 2 --out %s --quiet", singlora_bin(), dir) == 0);
    CHECK_MSG(strstr(out, "3 held-out captions (seed 1000;") && strstr(out, "images 3: background right"), "%s", out);
    CHECK(run_cmd(out, sizeof out, "test -s %s/scores.json && test -s %s/00002.png && test -s %s/00002.txt", dir, dir, dir) == 0);
}
