// The option table of `singlora train` (engine/train/train_options.h): spellings, ranges,
// recipes, and the command line winning over a recipe.
#include <stdio.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/train/train_options.h"
#include "tests/test.h"

TEST(train_options_spellings_and_values) {
    train_config c;
    train_config_defaults(&c);
    char buf[64];
    CHECK(!strcmp(train_option_normalize("--learning_rate=3", buf, sizeof buf), "learning-rate"));
    CHECK(!strcmp(train_option_normalize("pretrained_model_name_or_path", buf, sizeof buf), "model"));
    CHECK_EQ_INT(train_option_kind("--center_crop"), 1);
    CHECK_EQ_INT(train_option_kind("rank"), 0);
    CHECK_EQ_INT(train_option_kind("--no-such-option"), -1);
    REQUIRE(train_option_set(&c, "--rank", "16", "--rank") == 0);
    REQUIRE(train_option_set(&c, "learning_rate", "2.5e-4", "x") == 0);
    REQUIRE(train_option_set(&c, "max-train-steps", "123456789012", "x") == 0);
    REQUIRE(train_option_set(&c, "seed", "18446744073709551615", "x") == 0);
    REQUIRE(train_option_set(&c, "random_flip", "true", "x") == 0);
    REQUIRE(train_option_set(&c, "method", "dora", "x") == 0);
    CHECK_EQ_INT(c.rank, 16);
    CHECK_NEAR(c.learning_rate, 2.5e-4, 0);
    CHECK(c.max_train_steps == 123456789012ll);
    CHECK(c.seed == UINT64_MAX);
    CHECK_EQ_INT(c.random_flip, 1);
    CHECK(!strcmp(c.method, "dora"));
}

TEST(train_options_out_of_range_is_an_error_naming_the_range) {
    train_config c;
    train_config_defaults(&c);
    const char *bad[][2] = {{"rank", "0"}, {"rank", "4294967297"}, {"resolution", "64x"}, {"learning-rate", "nan"},
                            {"learning-rate", "inf"}, {"adam-beta2", "1.5"}, {"seed", "-1"}, {"train-batch-size", ""},
                            {"center-crop", "maybe"}, {"threads", "100000"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        CHECK_MSG(train_option_set(&c, bad[i][0], bad[i][1], bad[i][0]) == -1, "%s=%s accepted", bad[i][0], bad[i][1]);
        CHECK_MSG(strstr(sl_error_msg(), bad[i][0]) != NULL, "%s", sl_error_msg());
    }
    CHECK_EQ_INT(c.rank, 4);   // unchanged by the refused values
    CHECK(train_option_set(&c, "rank", "0", "--rank") == -1 && strstr(sl_error_msg(), "1..4096"));
}

TEST(train_options_recipe_sets_and_rejects) {
    const char *good = tmp_path("good.json"), *bad = tmp_path("bad.json"), *inner = tmp_path("inner.json");
    FILE *f = fopen(good, "w");
    REQUIRE(f);
    fprintf(f, "{\"method\": \"lora\", \"rank\": 8, \"--learning_rate\": \"5e-4\", \"random_flip\": true, "
               "\"with-prior-preservation\": 1, \"snr_gamma\": null}\n");
    fclose(f);
    train_config c;
    train_config_defaults(&c);
    void *keep;
    REQUIRE(train_recipe_load(&c, good, &keep) == 0);
    CHECK(!strcmp(c.method, "lora"));
    CHECK_EQ_INT(c.rank, 8);
    CHECK_NEAR(c.learning_rate, 5e-4, 0);
    CHECK_EQ_INT(c.random_flip, 1);
    CHECK_EQ_INT(c.with_prior_preservation, 1);
    CHECK_NEAR(c.snr_gamma, 0, 0);
    train_recipe_free(keep);
    f = fopen(bad, "w");
    fprintf(f, "{\"rank\": \"eight\"}");
    fclose(f);
    CHECK(train_recipe_load(&c, bad, &keep) == -1 && strstr(sl_error_msg(), bad) && strstr(sl_error_msg(), "rank"));
    train_recipe_free(keep);
    f = fopen(inner, "w");
    fprintf(f, "{\"config\": \"other.json\"}");
    fclose(f);
    CHECK(train_recipe_load(&c, inner, &keep) == -1 && strstr(sl_error_msg(), "unknown option 'config'"));
    train_recipe_free(keep);
    CHECK(train_recipe_load(&c, tmp_path("missing.json"), &keep) == -1 && strstr(sl_error_msg(), "missing.json"));
}

TEST(train_cli_options_one_error_line) {
    char out[4096];
    const char *recipe = tmp_path("r.json");
    FILE *f = fopen(recipe, "w");
    REQUIRE(f);
    fprintf(f, "{\"rank\": 0}");
    fclose(f);
    CHECK(run_cmd(out, sizeof out, "%s train --config %s --rank 4", singlora_bin(), recipe) == 1);
    CHECK_MSG(strstr(out, "r.json: rank: '0' is not an integer in 1..4096") && !strchr(strchr(out, '\n') + 1, '\n'), "%s", out);
    CHECK(run_cmd(out, sizeof out, "%s train --rank=0", singlora_bin()) == 1);
    CHECK_MSG(strstr(out, "--rank: '0' is not an integer in 1..4096"), "%s", out);
    CHECK(run_cmd(out, sizeof out, "%s train --max_train_steps", singlora_bin()) == 1);
    CHECK_MSG(strstr(out, "--max-train-steps needs a value"), "%s", out);
    CHECK(run_cmd(out, sizeof out, "%s train --bogus 1", singlora_bin()) == 1);
    CHECK_MSG(strstr(out, "unknown option or extra argument '--bogus'"), "%s", out);
    // --precision (and a recipe's "precision"): checked before any folder is read
    CHECK(run_cmd(out, sizeof out, "%s train --model m --instance-data-dir d --instance-prompt 'a sks dog' --output-dir o "
                  "--precision fp8", singlora_bin()) == 1);
    CHECK_MSG(strstr(out, "train: --precision: 'fp8' is not a precision (fp32 or bf16)") && !strchr(strchr(out, '\n') + 1, '\n'),
              "%s", out);
}
