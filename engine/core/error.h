// Error convention: library functions record one message with sl_error() and return
// NULL / -1; the command line prints it as `singlora: <file>: <what is wrong>` and exits 1.
#pragma once
#include <stddef.h>

// Records "<file>: <message>" as the current error (file may be NULL). Returns -1.
int sl_error(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
// The last recorded error ("" if none).
const char *sl_error_msg(void);
void sl_error_clear(void);

// Prints `singlora: <last error>` to stderr and exits with code 1.
_Noreturn void sl_fail(void);
// Records and fails in one call.
_Noreturn void sl_die(const char *file, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

// A warning line `singlora: warning: ...` on stderr; the program goes on.
void sl_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

// For multi-process runs (engine/dist/): a tag printed after "singlora: " on every failure and
// warning line (e.g. "rank 1/2: "), a hook sl_fail runs after printing and before exiting (the
// MPI back end aborts the whole job there), and warnings off (0) or on (1, the default).
void sl_error_set_tag(const char *tag);
void sl_set_fail_hook(void (*hook)(int code));
void sl_set_warnings(int on);

// malloc/calloc that fail with a clear message instead of returning NULL (returns_nonnull tells
// the compiler so: GCC's sanitizer builds otherwise warn of "null destination pointers").
void *sl_malloc(size_t n) __attribute__((returns_nonnull));
void *sl_calloc(size_t count, size_t size) __attribute__((returns_nonnull));
void *sl_realloc(void *p, size_t n) __attribute__((returns_nonnull));
char *sl_strdup(const char *s) __attribute__((returns_nonnull));
