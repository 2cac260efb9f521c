#include "engine/core/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static _Thread_local char g_error[1024];
static const char *g_tag = "";
static void (*g_fail_hook)(int);
static int g_warnings = 1;

void sl_error_set_tag(const char *tag) { g_tag = tag ? tag : ""; }
void sl_set_fail_hook(void (*hook)(int code)) { g_fail_hook = hook; }
void sl_set_warnings(int on) { g_warnings = on; }

static void error_vset(const char *file, const char *fmt, va_list ap) {
    size_t off = 0;
    if (file) {
        int n = snprintf(g_error, sizeof g_error, "%s: ", file);
        off = n < 0 ? 0 : (size_t)n < sizeof g_error ? (size_t)n : sizeof g_error - 1;
    }
    vsnprintf(g_error + off, sizeof g_error - off, fmt, ap);
    // one line only: an error message never carries a newline from its inputs
    for (char *p = g_error; *p; p++)
        if (*p == '\n' || *p == '\r') *p = ' ';
}

int sl_error(const char *file, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_vset(file, fmt, ap);
    va_end(ap);
    return -1;
}

const char *sl_error_msg(void) { return g_error; }
void sl_error_clear(void) { g_error[0] = 0; }

_Noreturn void sl_fail(void) {
    fprintf(stderr, "singlora: %s%s\n", g_tag, g_error[0] ? g_error : "unknown error");
    fflush(stderr);
    if (g_fail_hook) g_fail_hook(1);
    exit(1);
}

_Noreturn void sl_die(const char *file, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    error_vset(file, fmt, ap);
    va_end(ap);
    sl_fail();
}

void sl_warn(const char *fmt, ...) {
    if (!g_warnings) return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "singlora: %swarning: ", g_tag);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

void *sl_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) sl_die(NULL, "out of memory allocating %zu bytes", n);
    return p;
}

void *sl_calloc(size_t count, size_t size) {
    void *p = calloc(count ? count : 1, size ? size : 1);
    if (!p) sl_die(NULL, "out of memory allocating %zu x %zu bytes", count, size);
    return p;
}

void *sl_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) sl_die(NULL, "out of memory allocating %zu bytes", n);
    return q;
}

char *sl_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = sl_malloc(n);
    memcpy(p, s, n);
    return p;
}
