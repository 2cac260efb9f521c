// JSON configs (diffusers config.json files, presets) with typed getters. Every getter
// that fails records "<file>: key '<key>': <problem>" via sl_error and returns -1.
#pragma once
#include <cjson/cJSON.h>

typedef struct {
    char *path;
    cJSON *root;
} json_config;

json_config *config_load(const char *path);   // NULL with sl_error
json_config *config_parse(const char *path, const char *text);
void config_free(json_config *c);

int config_has(const json_config *c, const char *key);   // present and not null
int config_int(const json_config *c, const char *key, int *out);
int config_int_or(const json_config *c, const char *key, int def, int *out);
int config_float(const json_config *c, const char *key, double *out);
int config_float_or(const json_config *c, const char *key, double def, double *out);
int config_bool_or(const json_config *c, const char *key, int def, int *out);
// The string is owned by the config. With def == NULL a missing key is an error.
int config_string_or(const json_config *c, const char *key, const char *def, const char **out);
// An array of integers (or a single integer, returned as one element). *n gets the count.
int config_int_list(const json_config *c, const char *key, int *out, int max, int *n);
// An array of strings (pointers owned by the config).
int config_string_list(const json_config *c, const char *key, const char **out, int max, int *n);
