#include "tools/args.h"

#include <omp.h>
#include <stdio.h>
#include <string.h>

#include "engine/core/error.h"
#include "engine/core/parse_num.h"
#include "engine/core/profile.h"
#include "engine/kernels/gemm.h"

// Length of `name` when a starts with it, '_' and '-' being the same after the leading dashes
// (diffusers' scripts spell options --a_b, ours --a-b); else 0.
static size_t name_prefix(const char *a, const char *name) {
    size_t n = 0;
    for (; name[n]; n++) {
        char x = a[n], y = name[n];
        if (x != y && !(n >= 2 && (x == '_' || x == '-') && (y == '_' || y == '-'))) return 0;
    }
    return n;
}

int arg_value(int argc, char **argv, int *i, const char *name, const char **val) {
    const char *a = argv[*i];
    size_t n = name_prefix(a, name);
    if (!n) return 0;
    if (a[n] == '=') { *val = a + n + 1; return 1; }
    if (a[n] != 0) return 0;
    if (*i + 1 >= argc) sl_die(NULL, "option %s needs a value", name);
    *val = argv[++*i];
    return 1;
}

int arg_flag(char **argv, int i, const char *name) {
    size_t n = name_prefix(argv[i], name);
    return n && argv[i][n] == 0;
}

int arg_model(int argc, char **argv, int *i, const char **model, const char **config, const char **variant) {
    return arg_value(argc, argv, i, "--model", model) ||
           arg_value(argc, argv, i, "--pretrained-model-name-or-path", model) ||
           (config && arg_value(argc, argv, i, "--config", config)) ||
           (variant && arg_value(argc, argv, i, "--variant", variant));
}
int arg_is_help(const char *a) { return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0; }

// "option --x" as the error's subject: `singlora: option --x: '...' is not ...`
static const char *subject(const char *opt, char *buf, size_t n) {
    snprintf(buf, n, "option %s", opt);
    return buf;
}

long long arg_int_range(const char *opt, const char *s, long long lo, long long hi) {
    char what[128];
    long long v;
    if (parse_int(subject(opt, what, sizeof what), s, lo, hi, &v) != 0) sl_fail();
    return v;
}

double arg_double_range(const char *opt, const char *s, double lo, double hi) {
    char what[128];
    double v;
    if (parse_double(subject(opt, what, sizeof what), s, lo, hi, &v) != 0) sl_fail();
    return v;
}

uint64_t arg_seed(const char *opt, const char *s) {
    char what[128];
    uint64_t v;
    if (parse_u64(subject(opt, what, sizeof what), s, &v) != 0) sl_fail();
    return v;
}

int arg_threads(const char *opt, const char *s) { return (int)arg_int_range(opt, s, 1, ARG_MAX_THREADS); }

int arg_precision(int argc, char **argv, int *i) {
    const char *v;
    if (!arg_value(argc, argv, i, "--precision", &v)) return 0;
    if (gemm_select_precision("--precision", v) != 0) sl_fail();
    return 1;
}

int arg_profile(char **argv, int i) {
    if (!arg_flag(argv, i, "--profile")) return 0;
    profile_enable();
    return 1;
}

_Noreturn void arg_unknown(const char *cmd, const char *a) {
    sl_die(NULL, "%s: unknown option or extra argument '%s' (see singlora %s --help)", cmd, a, cmd);
}

void set_threads(int n) {
    if (n > 0) omp_set_num_threads(n);
}
