// Hardening: every number from a user or a file is range-checked once (engine/core/parse_num.h)
// and never wraps: options that wrapped to 32 bits (--width 4294967360 became 64, --n 4294967297
// became 1), --threads 100000 (a segfault inside OpenMP), a negative --seed (silently random),
// seed + k past 2^63-1, nan/inf numbers, and adapter metadata rank = 2^32 (accepted as rank 0).
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "engine/adapters/adapter_set.h"
#include "engine/core/error.h"
#include "engine/core/parse_num.h"
#include "engine/io/safetensors.h"
#include "tests/test.h"
#include "unet/config.h"

TEST(hardening_parse_int_ranges) {
    long long x = 0;
    CHECK(parse_int("opt", "-3", -5, 5, &x) == 0 && x == -3);
    CHECK(parse_int("opt", "9223372036854775807", 0, INT64_MAX, &x) == 0 && x == INT64_MAX);
    // wraps, overflow, garbage, space, empty: refused, x untouched
    const char *bad[] = {"4294967297", "99999999999999999999", "5x", " 5", "", "0x10", "1e3", "+", "6", "-6"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        x = 42;
        CHECK_MSG(parse_int("opt", bad[i], -5, 5, &x) == -1 && x == 42, "'%s' accepted", bad[i]);
    }
    parse_int("option --n", "4294967297", 1, 10000, &x);
    CHECK_MSG(!strcmp(sl_error_msg(), "option --n: '4294967297' is not an integer in 1..10000"), "%s", sl_error_msg());

    uint64_t u = 0;
    CHECK(parse_u64("seed", "18446744073709551615", &u) == 0 && u == UINT64_MAX);
    CHECK(parse_u64("seed", "18446744073709551616", &u) == -1);
    CHECK(parse_u64("seed", "-1", &u) == -1);   // strtoull alone reads it as 2^64-1
    CHECK(parse_u64("seed", " 1", &u) == -1);
    CHECK_MSG(strstr(sl_error_msg(), "seed: ' 1' is not an integer in 0..2^64-1"), "%s", sl_error_msg());
}

TEST(hardening_parse_double_finite) {
    double d = 0;
    CHECK(parse_double("opt", "7.5", 0, 100, &d) == 0 && d == 7.5);
    CHECK(parse_double("opt", "1e-400", 0, 100, &d) == 0 && d == 0);   // an underflow is a fine 0
    const char *bad[] = {"nan", "-nan", "inf", "-inf", "1e999", "7.5x", "", " 1", "100.5", "-0.1"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        d = 42;
        CHECK_MSG(parse_double("opt", bad[i], 0, 100, &d) == -1 && d == 42, "'%s' accepted", bad[i]);
    }
    parse_double("option --cfg", "nan", 0, 100, &d);
    CHECK_MSG(!strcmp(sl_error_msg(), "option --cfg: 'nan' is not a number in 0..100"), "%s", sl_error_msg());
}

// `singlora ARGS` must exit 1 with one line `singlora: <want>...`; the options are checked before
// any model is read, so the model path need not exist.
static void refused(const char *args, const char *want) {
    char out[4096];
    int rc = run_cmd(out, sizeof out, "%s %s", singlora_bin(), args);
    CHECK_MSG(rc == 1, "'%s': exit %d\n%s", args, rc, out);
    const char *nl = strchr(out, '\n');
    CHECK_MSG(!strncmp(out, "singlora: ", 10) && strstr(out, want) && nl && !nl[1], "'%s':\n%s", args, out);
}

TEST(hardening_cli_numbers_refused) {
    const char *s = "sample --model none --prompt p --out none";
    char a[512];
#define SAMPLE(opts, want) (snprintf(a, sizeof a, "%s %s", s, opts), refused(a, want))
    SAMPLE("--width 4294967360", "option --width: '4294967360' is not an integer in 8..8192");
    SAMPLE("--height 100000", "option --height: '100000' is not an integer in 8..8192");
    SAMPLE("--n 4294967297", "option --n: '4294967297' is not an integer in 1..10000");
    SAMPLE("--threads 100000", "option --threads: '100000' is not an integer in 1..1024");
    SAMPLE("--seed -5", "option --seed: '-5' is not an integer in 0..9223372036854775807");
    SAMPLE("--cfg nan", "option --cfg: 'nan' is not a number in 0..100");
    SAMPLE("--steps 30x", "option --steps: '30x' is not an integer");
    SAMPLE("--adapter-scale inf", "option --adapter-scale: 'inf' is not a number");
    // image k has seed + k: the last seed must fit
    SAMPLE("--seed 9223372036854775807 --n 2", "option --seed: 9223372036854775807 + 2 images passes 2^63-1");
#undef SAMPLE
    refused("tokenize --model none --max-length 4294967299 dog", "option --max-length: '4294967299' is not an integer in 3..65536");
    refused("adapter init --model none --method singlora --rank 4294967296 --out none", "option --rank: '4294967296' is not an integer in 1..4096");
    refused("adapter init --model none --method lora --rank 4 --alpha 1e39 --out none", "option --alpha: '1e39' is not a number");
    refused("adapter init --model none --method lora --rank 4 --seed -1 --out none", "option --seed: '-1' is not an integer in 0..2^64-1");
    refused("forward unet --model none --in none --out none --threads 100000", "option --threads");
    refused("init --config none --out none --seed -1", "option --seed");
    refused("merge --model none --adapter none --out none --scale nan", "option --scale");
    refused("world render --n 4294967297 --out none", "option --n: '4294967297' is not an integer in 1..99999");
}

// An adapter file whose metadata has rank, alpha as given (the load fails on them before tensors).
static const char *adapter_file(const char *name, const char *rank, const char *alpha) {
    const char *path = tmp_path(name);
    st_writer *w = st_writer_new();
    static const float A[8];
    st_writer_add(w, "unet.x.singlora.A", DT_F32, 2, (int64_t[]){4, 2}, A);
    st_writer_meta(w, "singlora.format", "1");
    st_writer_meta(w, "singlora.method", "singlora");
    st_writer_meta(w, "singlora.rank", rank);
    st_writer_meta(w, "singlora.alpha", alpha);
    st_writer_meta(w, "singlora.ramp_steps", "0");
    st_writer_meta(w, "singlora.step", "0");
    st_writer_meta(w, "singlora.init", "kaiming");
    st_writer_meta(w, "singlora.targets", "x");
    st_writer_meta(w, "singlora.base_model", "0");
    if (st_writer_save(w, path) != 0) path = NULL;
    st_writer_free(w);
    return path;
}

TEST(hardening_adapter_metadata_ranges) {
    const char *p = adapter_file("rank.safetensors", "4294967296", "2");
    REQUIRE(p);
    CHECK(!adapter_set_load(p));
    CHECK_MSG(strstr(sl_error_msg(), "rank.safetensors: adapter metadata singlora.rank: '4294967296' is not an integer in 1..4096"),
              "%s", sl_error_msg());
    const char *bad_alpha[] = {"inf", "nan", "1e39", "-1"};
    for (int i = 0; i < 4; i++) {
        p = adapter_file("alpha.safetensors", "2", bad_alpha[i]);
        REQUIRE(p);
        CHECK(!adapter_set_load(p));
        CHECK_MSG(strstr(sl_error_msg(), "alpha.safetensors: adapter metadata singlora.alpha: ") &&
                      strstr(sl_error_msg(), "is not a number in 0..1e+06"),
                  "%s: %s", bad_alpha[i], sl_error_msg());
    }
    // the same file with sane numbers loads
    p = adapter_file("ok.safetensors", "2", "2");
    adapter_set *s = adapter_set_load(p);
    CHECK_MSG(s, "%s", sl_error_msg());
    if (s) CHECK(s->rank == 2 && s->alpha == 2.0f);
    adapter_set_free(s);
}

// UNet config sizes are bounded before anything multiplies them (4·block_out_channels[0] was
// signed overflow for 2^30 channels)
TEST(hardening_unet_config_sizes) {
    const char *fmt = "{\"block_out_channels\": [%s], \"down_block_types\": [\"DownBlock2D\"], "
                      "\"up_block_types\": [\"UpBlock2D\"], \"cross_attention_dim\": %s, \"attention_head_dim\": 8, "
                      "\"norm_num_groups\": 32}";
    const char *cases[][3] = {
        {"1073741824", "64", "block_out_channels[0] = 1073741824 is outside 1..65536"},
        {"64", "2147483647", "cross_attention_dim = 2147483647 is outside 1..65536"},
        {"64", "64", NULL},
    };
    for (int k = 0; k < 3; k++) {
        char text[512];
        snprintf(text, sizeof text, fmt, cases[k][0], cases[k][1]);
        json_config *j = config_parse("unet/config.json", text);
        REQUIRE(j);
        unet_config c;
        int rc = unet_config_from_json(&c, j);
        if (cases[k][2]) {
            CHECK_MSG(rc == -1 && strstr(sl_error_msg(), "unet/config.json: ") && strstr(sl_error_msg(), cases[k][2]), "%s",
                      sl_error_msg());
        } else {
            CHECK_MSG(rc == 0, "%s", sl_error_msg());
            CHECK_EQ_INT(c.time_embed_dim, 256);
        }
        config_free(j);
    }
}
