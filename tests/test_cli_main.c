// The command line: help, version, inspect output on files the test makes.
#include <string.h>

#include "engine/io/safetensors.h"
#include "tests/test.h"

TEST(cli_help_and_version) {
    char out[8192];
    CHECK(run_cmd(out, sizeof out, "%s --version", singlora_bin()) == 0);
    CHECK(strncmp(out, "singlora ", 9) == 0);
    // OpenBLAS's SSE3 fallback is replaced on a CPU with AVX2 and FMA; a core the user names stays
    CHECK(run_cmd(out, sizeof out, "env -u OPENBLAS_CORETYPE %s --version", singlora_bin()) == 0);
    CHECK_MSG(strstr(out, "OpenBLAS core "), "%s", out);
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        CHECK_MSG(!strstr(out, "OpenBLAS core Prescott"), "%s", out);
    CHECK(run_cmd(out, sizeof out, "OPENBLAS_CORETYPE=Prescott %s --version", singlora_bin()) == 0);
    CHECK_MSG(strstr(out, "OpenBLAS core Prescott (OPENBLAS_CORETYPE)"), "%s", out);
    CHECK(run_cmd(out, sizeof out, "%s help", singlora_bin()) == 0);
    CHECK(strstr(out, "inspect") != NULL);
    CHECK(run_cmd(out, sizeof out, "%s --help", singlora_bin()) == 0);
    CHECK(run_cmd(out, sizeof out, "%s inspect --help", singlora_bin()) == 0);
    CHECK(strstr(out, "usage: singlora inspect") != NULL);
    CHECK(run_cmd(out, sizeof out, "%s frobnicate", singlora_bin()) == 1);
    CHECK(strstr(out, "unknown command 'frobnicate'") != NULL);
    CHECK(run_cmd(out, sizeof out, "%s inspect --bogus x", singlora_bin()) == 1);
    CHECK(strstr(out, "unknown option") != NULL);
}

// True when a line of out starts with `start` and contains a, b and c.
static int line_has(const char *out, const char *start, const char *a, const char *b, const char *c) {
    for (const char *l = out; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
        const char *e = strchr(l, '\n');
        size_t n = e ? (size_t)(e - l) : strlen(l);
        char line[512];
        snprintf(line, sizeof line, "%.*s", (int)n, l);
        if (strncmp(line, start, strlen(start)) == 0 && strstr(line, a) && strstr(line, b) && strstr(line, c)) return 1;
    }
    return 0;
}

TEST(cli_inspect_original_layout) {
    // a tiny file with original-layout names from two components and metadata
    const char *path = tmp_path("tiny.safetensors");
    float w[6] = {0};
    uint16_t h[4] = {0};
    st_writer *wr = st_writer_new();
    st_writer_add(wr, "model.diffusion_model.input_blocks.0.0.weight", DT_F16, 2, (int64_t[]){2, 2}, h);
    st_writer_add(wr, "model.diffusion_model.out.2.bias", DT_F32, 1, (int64_t[]){2}, w);
    st_writer_add(wr, "first_stage_model.decoder.conv_in.bias", DT_F32, 1, (int64_t[]){4}, w);
    st_writer_meta(wr, "note", "made by test");
    REQUIRE(st_writer_save(wr, path) == 0);
    st_writer_free(wr);
    char out[8192];
    CHECK(run_cmd(out, sizeof out, "%s inspect %s --tensors", singlora_bin(), path) == 0);
    CHECK(strstr(out, "layout: single-file original") != NULL);
    CHECK(line_has(out, "  unet ", "2 tensors", "6 parameters", "F32(1) F16(1)"));
    CHECK(line_has(out, "  vae ", "1 tensors", "4 parameters", "F32(1)"));
    CHECK(!line_has(out, "  text_encoder", "", "", ""));
    CHECK(strstr(out, "note: made by test") != NULL);
    CHECK(strstr(out, "model.diffusion_model.input_blocks.0.0.weight F16 [2, 2]") != NULL);
}

TEST(cli_inspect_diffusers_folder) {
    char out[16384];
    CHECK(run_cmd(out, sizeof out, "%s inspect %s", singlora_bin(), shared_path("fixtures/sd1_tiny")) == 0);
    CHECK(strstr(out, "layout: diffusers") != NULL);
    CHECK(strstr(out, "unet.fp16") != NULL);
    CHECK(strstr(out, "text_encoder") != NULL);
    CHECK(run_cmd(out, sizeof out, "%s inspect %s", singlora_bin(), tmp_path("")) == 1);
}
