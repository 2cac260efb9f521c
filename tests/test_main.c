#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/kernels/gemm.h"
#include "tests/test.h"

// Under AddressSanitizer (make SAN=1) each test ends with a leak check of its own process: a
// test's child leaves by _exit, which skips LeakSanitizer's check at exit.
#ifndef __has_feature
#define __has_feature(x) 0
#endif
#if defined(__SANITIZE_ADDRESS__) || __has_feature(address_sanitizer)
#include <sanitizer/lsan_interface.h>
#define LEAKED() __lsan_do_recoverable_leak_check()
#else
#define LEAKED() 0
#endif

#define MAX_TESTS 1024
typedef struct { const char *name, *file; test_fn fn; } test_case;
static test_case g_tests[MAX_TESTS];
static int g_ntests;
int test_failures;
static char g_tmpdir[256];

void test_register(const char *name, test_fn fn, const char *file) {
    if (g_ntests < MAX_TESTS) {
        g_tests[g_ntests].name = name;
        g_tests[g_ntests].file = file;
        g_tests[g_ntests++].fn = fn;
    }
}

void test_fail_at(const char *file, int line, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "    FAIL %s:%d: ", file, line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    test_failures++;
}

err_stats compare_f32(const float *got, const float *want, size_t n) {
    err_stats s = {0, 0, 0};
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        if (isnan(got[i]) != isnan(want[i])) d = INFINITY;
        double r = d / (fabs((double)want[i]) + 1e-6);
        if (d > s.max_abs || isnan(d)) s.max_abs = isnan(d) ? INFINITY : d;
        if (r > s.max_rel) s.max_rel = r;
        if (fabs(want[i]) > s.max_ref) s.max_ref = fabs(want[i]);
    }
    return s;
}

void check_close(const char *label, const float *got, const float *want, size_t n, double tol) {
    err_stats s = compare_f32(got, want, n);
    fprintf(stderr, "    %-40s max abs %.3g  max rel %.3g  (max |ref| %.3g, tol %.3g)\n", label, s.max_abs, s.max_rel,
            s.max_ref, tol);
    if (!(s.max_abs <= tol)) test_fail_at(__FILE__, __LINE__, "%s: max abs error %.3g > %.3g", label, s.max_abs, tol);
}

const char *shared_path(const char *rel) {
    static char buf[8][1024];
    static int k;
    const char *root = getenv("SINGLORA_SHARED");
    char *b = buf[k++ % 8];
    snprintf(b, 1024, "%s/%s", root ? root : "../shared", rel);
    return b;
}

const char *tmp_path(const char *name) {
    static char buf[8][512];
    static int k;
    char *b = buf[k++ % 8];
    snprintf(b, 512, "%s/%s", g_tmpdir, name);
    return b;
}

const char *singlora_bin(void) {
    const char *b = getenv("SINGLORA_BIN");
    return b ? b : "./singlora";
}

int run_cmd(char *out, size_t outlen, const char *fmt, ...) {
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    char full[4200];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t n = 0;
    if (out && outlen) out[0] = 0;
    char tmp[4096];
    size_t k;
    while ((k = fread(tmp, 1, sizeof tmp, p)) > 0) {
        if (out && n + 1 < outlen) {
            size_t c = k < outlen - n - 1 ? k : outlen - n - 1;
            memcpy(out + n, tmp, c);
            n += c;
            out[n] = 0;
        }
    }
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + (WIFSIGNALED(st) ? WTERMSIG(st) : 0);
}

void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi) {
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 11) * (1.0 / 9007199254740992.0));
    }
}

int64_t raw_i64(const void *data, int64_t i) {
    int64_t v;
    memcpy(&v, (const char *)data + 8 * i, 8);
    return v;
}

double raw_f64(const void *data, int64_t i) {
    double v;
    memcpy(&v, (const char *)data + 8 * i, 8);
    return v;
}

float raw_f32(const void *data, int64_t i) {
    float v;
    memcpy(&v, (const char *)data + 4 * i, 4);
    return v;
}

void *raw_copy(const void *data, size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) abort();
    memcpy(p, data, n);
    return p;
}

static int cmp_tests(const void *a, const void *b) {
    const test_case *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : strcmp(x->name, y->name);
}

int main(int argc, char **argv) {
    gemm_openblas_fix_core(argv);   // the same OpenBLAS kernels as the singlora binary it tests
    const char *filter = argc > 1 ? argv[1] : NULL;
    qsort(g_tests, (size_t)g_ntests, sizeof g_tests[0], cmp_tests);
    int passed = 0, failed = 0;
    for (int i = 0; i < g_ntests; i++) {
        if (filter && !strstr(g_tests[i].name, filter) && !strstr(g_tests[i].file, filter)) continue;
        fprintf(stderr, "  %s (%s)\n", g_tests[i].name, g_tests[i].file);
        fflush(stderr);
        snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/singlora-test-XXXXXX");
        if (!mkdtemp(g_tmpdir)) { perror("mkdtemp"); return 2; }
        pid_t pid = fork();
        if (pid == 0) {
            // caches (model hashes) go to the test's temp dir, not the user's home
            char cache[300];
            snprintf(cache, sizeof cache, "%s/.cache", g_tmpdir);
            setenv("XDG_CACHE_HOME", cache, 1);
            test_failures = 0;
            g_tests[i].fn();
            if (LEAKED()) {
                fprintf(stderr, "    FAIL: the test leaked memory (LeakSanitizer's report above)\n");
                test_failures++;
            }
            fflush(stdout);
            fflush(stderr);
            _exit(test_failures ? 1 : 0);
        }
        int st = 0;
        waitpid(pid, &st, 0);
        int ok = WIFEXITED(st) && WEXITSTATUS(st) == 0;
        if (WIFSIGNALED(st)) fprintf(stderr, "    FAIL: crashed with signal %d\n", WTERMSIG(st));
        else if (WIFEXITED(st) && WEXITSTATUS(st) > 1) fprintf(stderr, "    FAIL: exited with %d\n", WEXITSTATUS(st));
        fprintf(stderr, "  %s %s\n", ok ? "ok  " : "FAIL", g_tests[i].name);
        ok ? passed++ : failed++;
        char rm[600];
        snprintf(rm, sizeof rm, "rm -rf '%s'", g_tmpdir);
        if (system(rm) != 0) { /* leftover temp dir is harmless */ }
    }
    printf("%d passed, %d failed\n", passed, failed);
    return failed ? 1 : 0;
}
