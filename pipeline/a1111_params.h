// A1111's generation parameters text (the PNG `parameters` chunk its "PNG Info" tab reads):
//   PROMPT (one or more lines)
//   Negative prompt: NEGATIVE (optional, may continue on more lines)
//   Steps: 30, Sampler: Euler a, Schedule type: Automatic, CFG scale: 7.5, Seed: 42, Size: 512x512, ...
// The last line is "Key: value" pairs separated by ", "; a value holding ',', ':' or a newline
// is written as a JSON string (A1111's quote()). Parsing follows A1111's
// parse_generation_parameters: the last line counts as parameters when it holds at least three
// pairs, every line is stripped, and values are unquoted.
#pragma once
#include <stddef.h>

typedef struct {
    char *prompt;      // "" when absent
    char *negative;    // NULL when there is no "Negative prompt:" line
    int n;
    char **keys, **values;   // the pairs in order; Size stays "WxH"
} a1111_params;

// 0; never fails on text (a text without a parameters line is all prompt).
int a1111_params_parse(const char *text, a1111_params *out);
// The value of key (case-sensitive, as A1111's), or NULL.
const char *a1111_params_get(const a1111_params *p, const char *key);
void a1111_params_free(a1111_params *p);

// The text for prompt, negative (NULL: no line) and n pairs, malloc'd.
char *a1111_params_format(const char *prompt, const char *negative, const char *const *keys,
                          const char *const *values, int n);
