#include "engine/io/config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/io/file_read.h"

// Python's json module writes Infinity, -Infinity and NaN (diffusers' DPM configs carry
// "lambda_min_clipped": -Infinity); standard JSON has none. Rewrite them, outside strings,
// as 1e999 (strtod gives inf) and null.
static char *python_json_to_json(const char *text) {
    size_t n = strlen(text);
    char *out = sl_malloc(n + n / 2 + 16), *o = out;
    int in_string = 0;
    for (const char *p = text; *p;) {
        if (in_string) {
            if (*p == '\\' && p[1]) { *o++ = *p++; *o++ = *p++; continue; }
            if (*p == '"') in_string = 0;
            *o++ = *p++;
        } else if (*p == '"') {
            in_string = 1;
            *o++ = *p++;
        } else if (!strncmp(p, "Infinity", 8)) {
            memcpy(o, "1e999", 5); o += 5; p += 8;
        } else if (!strncmp(p, "NaN", 3)) {
            memcpy(o, "null", 4); o += 4; p += 3;
        } else {
            *o++ = *p++;
        }
    }
    *o = 0;
    return out;
}

json_config *config_parse(const char *path, const char *raw) {
    const char *end = NULL;
    char *text = python_json_to_json(raw);
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    if (!root) {
        long line = 1;
        for (const char *p = text; end && p < end; p++) line += *p == '\n';
        sl_error(path, "invalid JSON near line %ld", line);
        free(text);
        return NULL;
    }
    free(text);
    if (!cJSON_IsObject(root)) {
        cJSON_Delete(root);
        sl_error(path, "expected a JSON object at the top level");
        return NULL;
    }
    json_config *c = sl_calloc(1, sizeof *c);
    c->path = sl_strdup(path);
    c->root = root;
    return c;
}

json_config *config_load(const char *path) {
    size_t n;
    char *buf = read_file(path, &n, 64u << 20, "config");
    if (!buf) return NULL;
    json_config *c = config_parse(path, buf);
    free(buf);
    return c;
}

void config_free(json_config *c) {
    if (!c) return;
    cJSON_Delete(c->root);
    free(c->path);
    free(c);
}

static const cJSON *get(const json_config *c, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c->root, key);
    return cJSON_IsNull(v) ? NULL : v;
}

int config_has(const json_config *c, const char *key) { return get(c, key) != NULL; }

static int as_int(const json_config *c, const char *key, const cJSON *v, int *out) {
    if (!cJSON_IsNumber(v) || floor(v->valuedouble) != v->valuedouble || fabs(v->valuedouble) > 2147483647.0)
        return sl_error(c->path, "key '%s': expected an integer", key);
    *out = (int)v->valuedouble;
    return 0;
}

int config_int(const json_config *c, const char *key, int *out) {
    const cJSON *v = get(c, key);
    if (!v) return sl_error(c->path, "key '%s': missing", key);
    return as_int(c, key, v, out);
}

int config_int_or(const json_config *c, const char *key, int def, int *out) {
    const cJSON *v = get(c, key);
    if (!v) { *out = def; return 0; }
    return as_int(c, key, v, out);
}

int config_float(const json_config *c, const char *key, double *out) {
    const cJSON *v = get(c, key);
    if (!v) return sl_error(c->path, "key '%s': missing", key);
    if (!cJSON_IsNumber(v)) return sl_error(c->path, "key '%s': expected a number", key);
    *out = v->valuedouble;
    return 0;
}

int config_float_or(const json_config *c, const char *key, double def, double *out) {
    if (!get(c, key)) { *out = def; return 0; }
    return config_float(c, key, out);
}

int config_bool_or(const json_config *c, const char *key, int def, int *out) {
    const cJSON *v = get(c, key);
    if (!v) { *out = def; return 0; }
    if (!cJSON_IsBool(v)) return sl_error(c->path, "key '%s': expected true or false", key);
    *out = cJSON_IsTrue(v);
    return 0;
}

int config_string_or(const json_config *c, const char *key, const char *def, const char **out) {
    const cJSON *v = get(c, key);
    if (!v) {
        if (!def) return sl_error(c->path, "key '%s': missing", key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsString(v)) return sl_error(c->path, "key '%s': expected a string", key);
    *out = v->valuestring;
    return 0;
}

int config_int_list(const json_config *c, const char *key, int *out, int max, int *n) {
    const cJSON *v = get(c, key);
    if (!v) return sl_error(c->path, "key '%s': missing", key);
    if (cJSON_IsNumber(v)) { *n = 1; return as_int(c, key, v, out); }
    if (!cJSON_IsArray(v)) return sl_error(c->path, "key '%s': expected an integer or a list of integers", key);
    int k = cJSON_GetArraySize(v);
    if (k > max) return sl_error(c->path, "key '%s': %d entries, at most %d supported", key, k, max);
    for (int i = 0; i < k; i++)
        if (as_int(c, key, cJSON_GetArrayItem(v, i), &out[i]) != 0) return -1;
    *n = k;
    return 0;
}

int config_string_list(const json_config *c, const char *key, const char **out, int max, int *n) {
    const cJSON *v = get(c, key);
    if (!v) return sl_error(c->path, "key '%s': missing", key);
    if (!cJSON_IsArray(v)) return sl_error(c->path, "key '%s': expected a list of strings", key);
    int k = cJSON_GetArraySize(v);
    if (k > max) return sl_error(c->path, "key '%s': %d entries, at most %d supported", key, k, max);
    for (int i = 0; i < k; i++) {
        const cJSON *s = cJSON_GetArrayItem(v, i);
        if (!cJSON_IsString(s)) return sl_error(c->path, "key '%s': entry %d is not a string", key, i);
        out[i] = s->valuestring;
    }
    *n = k;
    return 0;
}
