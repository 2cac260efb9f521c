// `singlora sample` end to end on the tiny SD 1.x model: PNGs with A1111 parameters, JSON
// sidecars, a grid, determinism per seed, img2img, and clear errors for bad input.
#include <stdlib.h>
#include <string.h>

#include "data/png.h"
#include "tests/test.h"
#include "tests/tiny_tokenizer.h"

static long file_size(const char *p) {
    FILE *f = fopen(p, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fclose(f);
    return n;
}

static int same_file(const char *a, const char *b) {
    char out[256];
    return run_cmd(out, sizeof out, "cmp -s %s %s", a, b) == 0;
}

TEST(sample_txt2img_tiny) {
    const char *tok = tiny_tokenizer();
    REQUIRE(tok);
    const char *out = tmp_path("out");
    char log[8192];
    int rc = run_cmd(log, sizeof log,
                     "%s sample --model %s --tokenizer %s --prompt 'a photo of a dog' --negative-prompt 'blurry' "
                     "--steps 3 --sampler euler_a --scheduler karras --seed 42 --n 2 --width 96 --height 64 --out %s",
                     singlora_bin(), shared_path("fixtures/sd1_tiny"), tok, out);
    CHECK_MSG(rc == 0, "sample failed: %s", log);
    char p0[600], p1[600], j0[600], grid[600];
    snprintf(p0, sizeof p0, "%s/00000-42.png", out);
    snprintf(p1, sizeof p1, "%s/00001-43.png", out);
    snprintf(j0, sizeof j0, "%s/00000-42.json", out);
    snprintf(grid, sizeof grid, "%s/grid.png", out);
    CHECK(file_size(p0) > 0 && file_size(p1) > 0 && file_size(j0) > 0 && file_size(grid) > 0);
    char *params = png_read_text(p0, "parameters");
    REQUIRE(params);
    CHECK(strncmp(params, "a photo of a dog\nNegative prompt: blurry\nSteps: 3, Sampler: Euler a, Schedule type: Karras, "
                          "CFG scale: 7.5, Seed: 42, Size: 96x64, Model hash: ", 120) == 0);
    free(params);
    params = png_read_text(p1, "parameters");
    CHECK(params && strstr(params, "Seed: 43") != NULL);
    free(params);
    char json[4096];
    run_cmd(json, sizeof json, "cat %s", j0);
    CHECK(strstr(json, "\"seed\":\t42") != NULL && strstr(json, "\"sampler\":\t\"euler_a\"") != NULL);
    CHECK(strstr(log, "image 1/2") != NULL);   // progress lines on a non-terminal stderr
    // the same seed gives the same image; another seed another one
    const char *out2 = tmp_path("out2");
    rc = run_cmd(log, sizeof log,
                 "%s sample --model %s --tokenizer %s --prompt 'a photo of a dog' --negative-prompt 'blurry' "
                 "--steps 3 --sampler euler_a --scheduler karras --seed 43 --width 96 --height 64 --out %s",
                 singlora_bin(), shared_path("fixtures/sd1_tiny"), tok, out2);
    CHECK(rc == 0);
    char q[600];
    snprintf(q, sizeof q, "%s/00000-43.png", out2);
    CHECK(same_file(q, p1));
    CHECK(!same_file(p0, p1));
}

TEST(sample_img2img_and_errors) {
    const char *tok = tiny_tokenizer();
    REQUIRE(tok);
    const char *out = tmp_path("out");
    char log[8192];
    // make an init image with a txt2img run, then img2img from it
    int rc = run_cmd(log, sizeof log, "%s sample --model %s --tokenizer %s --prompt dog --steps 2 --sampler ddim --seed 1 "
                     "--width 96 --height 64 --cfg 1 --out %s", singlora_bin(), shared_path("fixtures/sd1_tiny"), tok, out);
    CHECK_MSG(rc == 0, "%s", log);
    char init[600];
    snprintf(init, sizeof init, "%s/00000-1.png", out);
    const char *out2 = tmp_path("i2i");
    rc = run_cmd(log, sizeof log, "%s sample --model %s --tokenizer %s --prompt dog --steps 4 --sampler dpmpp_2m "
                 "--init-image %s --strength 0.5 --seed 2 --vae-tiling --out %s", singlora_bin(),
                 shared_path("fixtures/sd1_tiny"), tok, init, out2);
    CHECK_MSG(rc == 0, "%s", log);
    char p[600];
    snprintf(p, sizeof p, "%s/00000-2.png", out2);
    char *params = png_read_text(p, "parameters");
    CHECK(params && strstr(params, "Denoising strength: 0.5") && strstr(params, "Size: 96x64"));
    free(params);
    CHECK(strstr(log, "image 1/1 2/2") != NULL);   // strength 0.5 of 4 steps runs 2
    // bad input: one line, exit 1
    rc = run_cmd(log, sizeof log, "%s sample --model %s --tokenizer %s --prompt dog --width 100 --out %s", singlora_bin(),
                 shared_path("fixtures/sd1_tiny"), tok, out);
    CHECK(rc == 1 && strstr(log, "multiples of 8"));
    rc = run_cmd(log, sizeof log, "%s sample --model %s --tokenizer %s --prompt dog --sampler plms --out %s", singlora_bin(),
                 shared_path("fixtures/sd1_tiny"), tok, out);
    CHECK(rc == 1 && strstr(log, "plms"));
    rc = run_cmd(log, sizeof log, "%s sample --model %s --prompt dog --out %s", singlora_bin(), tmp_path("nope"), out);
    CHECK(rc == 1 && strstr(log, "nope"));
}

TEST(sample_readme_tiny_preset) {
    // the README's first command, smaller: configs/tiny + CLIP's real tokenizer
    const char *m = tmp_path("tiny-model"), *out = tmp_path("out");
    char log[8192];
    int rc = run_cmd(log, sizeof log, "%s init --config configs/tiny --layout diffusers --tokenizer %s --out %s", singlora_bin(),
                     shared_path("models/clip-tokenizer"), m);
    CHECK_MSG(rc == 0, "init: %s", log);
    rc = run_cmd(log, sizeof log, "%s sample --model %s --prompt 'a photo of sks dog' --steps 2 --width 64 --height 64 --n 2 --out %s",
                 singlora_bin(), m, out);
    CHECK_MSG(rc == 0, "sample: %s", log);
    char p[600];
    snprintf(p, sizeof p, "%s/grid.png", out);
    CHECK(file_size(p) > 0);
}
