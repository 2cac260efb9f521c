// tools/eval_dreambooth.sh end to end on a tiny random model and the two-subject DreamBooth set
// of ../shared/data/dreambooth: two methods, a few training steps, one prompt, one small image
// each; the tables must have a row per (subject, method) and an overall row per method, and a
// rerun must skip every finished pair and write the same table.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/test.h"
#include "tests/tiny_tokenizer.h"

static int count_lines_with(const char *path, const char *needle) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof line, f))
        if (strstr(line, needle)) n++;
    fclose(f);
    return n;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    char *buf = calloc(1, 1 << 16);
    size_t n = fread(buf, 1, (1 << 16) - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

TEST(eval_protocol_script_end_to_end) {
    char model[600], out[600], clip[600], cmd[4096], log[16384], csv[700], md[700];
    snprintf(model, sizeof model, "%s", tmp_path("model"));
    // the tiny CLIP has a 1000-token vocabulary: give it the tests' tiny tokenizer
    const char *tok = tiny_tokenizer();
    REQUIRE(tok);
    snprintf(clip, sizeof clip, "%s", tmp_path("clip"));
    REQUIRE(run_cmd(log, sizeof log, "mkdir -p %s && cp %s/config.json %s/model.safetensors %s/ && cp %s/vocab.json %s/merges.txt %s/",
                    clip, shared_path("fixtures/eval/clip_tiny"), shared_path("fixtures/eval/clip_tiny"), clip, tok, tok,
                    clip) == 0);
    snprintf(out, sizeof out, "%s", tmp_path("protocol"));
    REQUIRE(run_cmd(log, sizeof log, "%s init --config configs/tiny --layout diffusers --out %s", singlora_bin(), model) == 0);
    snprintf(cmd, sizeof cmd,
             "SINGLORA_BIN=%s OMP_NUM_THREADS=1 sh tools/eval_dreambooth.sh %s --model %s --methods singlora,lora "
             "--rank 2 --steps 2 --prompts 1 --images-per-prompt 1 --resolution 64 --sample-steps 2 --dino %s --clip %s "
             "--out %s",
             singlora_bin(), shared_path("data/dreambooth"), model, shared_path("fixtures/eval/dino_tiny_hf"),
             clip, out);
    int rc = run_cmd(log, sizeof log, "%s", cmd);
    REQUIRE(rc == 0 || (fprintf(stderr, "%s\n", log), 0));
    snprintf(csv, sizeof csv, "%s/results.csv", out);
    snprintf(md, sizeof md, "%s/results.md", out);
    // the header and one row per (subject, method), each with numbers in every metric column
    const char *rows[] = {"backpack,singlora,", "backpack,lora,", "dog,singlora,", "dog,lora,"};
    for (int k = 0; k < 4; k++) CHECK_MSG(count_lines_with(csv, rows[k]) == 1, "row %s", rows[k]);
    CHECK_EQ_INT(count_lines_with(md, "**overall**"), 2);
    CHECK_EQ_INT(count_lines_with(md, "| – |"), 0);   // every metric was computed
    char *before = slurp(csv);
    REQUIRE(before);
    // the trainable parameters differ by method at equal rank (SingLoRA: max(d_in, d_out)·r per layer)
    char sl[64] = "", lo[64] = "";
    sscanf(strstr(before, "backpack,singlora,") + strlen("backpack,singlora,"), "%63[0-9]", sl);
    sscanf(strstr(before, "backpack,lora,") + strlen("backpack,lora,"), "%63[0-9]", lo);
    CHECK_MSG(atoll(sl) > 0 && atoll(lo) > atoll(sl), "params singlora %s lora %s", sl, lo);
    // a rerun skips all four pairs and writes the same rows
    rc = run_cmd(log, sizeof log, "%s", cmd);
    CHECK_EQ_INT(rc, 0);
    int skipped = 0;
    for (const char *p = log; (p = strstr(p, "done, skipped")); p++) skipped++;
    CHECK_EQ_INT(skipped, 4);
    char *after = slurp(csv);
    CHECK(after && !strcmp(before, after));
    free(before);
    free(after);
}
