// JSON config getters: values, defaults, and errors that name the file and the key.
#include <string.h>

#include "engine/io/config.h"
#include "engine/core/error.h"
#include "tests/test.h"

TEST(config_getters) {
    json_config *c = config_parse("cfg.json", "{\"a\": 3, \"f\": 0.5, \"b\": true, \"s\": \"silu\", "
                                              "\"l\": [16, 24, 32], \"n\": null, \"sl\": [\"x\", \"y\"], \"bad\": 2.5}");
    REQUIRE(c);
    int i, b, list[8], n;
    double f;
    const char *s, *strs[4];
    CHECK(config_int(c, "a", &i) == 0 && i == 3);
    CHECK(config_int_or(c, "n", 7, &i) == 0 && i == 7);        // null means absent
    CHECK(config_int_or(c, "zz", 9, &i) == 0 && i == 9);
    CHECK(config_float(c, "f", &f) == 0 && f == 0.5);
    CHECK(config_float(c, "a", &f) == 0 && f == 3);
    CHECK(config_bool_or(c, "b", 0, &b) == 0 && b == 1);
    CHECK(config_string_or(c, "s", NULL, &s) == 0 && strcmp(s, "silu") == 0);
    CHECK(config_int_list(c, "l", list, 8, &n) == 0 && n == 3 && list[2] == 32);
    CHECK(config_int_list(c, "a", list, 8, &n) == 0 && n == 1 && list[0] == 3);
    CHECK(config_string_list(c, "sl", strs, 4, &n) == 0 && n == 2 && strcmp(strs[1], "y") == 0);
    CHECK(config_int(c, "bad", &i) != 0);
    CHECK(strcmp(sl_error_msg(), "cfg.json: key 'bad': expected an integer") == 0);
    CHECK(config_int(c, "missing", &i) != 0);
    CHECK(strcmp(sl_error_msg(), "cfg.json: key 'missing': missing") == 0);
    CHECK(config_bool_or(c, "s", 0, &b) != 0);
    CHECK(strstr(sl_error_msg(), "key 's': expected true or false") != NULL);
    CHECK(config_int_list(c, "l", list, 2, &n) != 0);
    CHECK(config_string_or(c, "a", NULL, &s) != 0);
    config_free(c);
}

TEST(config_bad_files) {
    CHECK(config_parse("x.json", "{\"a\": 1,\n \"b\": }") == NULL);
    CHECK(strcmp(sl_error_msg(), "x.json: invalid JSON near line 2") == 0);
    CHECK(config_parse("x.json", "[1]") == NULL);
    CHECK(config_load(tmp_path("nope.json")) == NULL);
    CHECK(strstr(sl_error_msg(), "cannot open") != NULL);
    json_config *c = config_load(shared_path("models/sd15/unet/config.json"));
    REQUIRE(c);
    int lpb;
    CHECK(config_int(c, "layers_per_block", &lpb) == 0 && lpb == 2);
    config_free(c);
}

TEST(config_python_infinity) {
    json_config *c = config_parse("s.json", "{\"lambda_min_clipped\": -Infinity, \"x\": NaN, \"s\": \"Infinity NaN\", \"y\": 2}");
    REQUIRE(c);
    double v;
    const char *s;
    int y;
    CHECK(config_float(c, "lambda_min_clipped", &v) == 0 && isinf(v) && v < 0);
    CHECK(!config_has(c, "x"));
    CHECK(config_string_or(c, "s", NULL, &s) == 0 && strcmp(s, "Infinity NaN") == 0);
    CHECK(config_int(c, "y", &y) == 0 && y == 2);
    config_free(c);
}
