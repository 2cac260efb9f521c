// A small test harness: TEST(name) { CHECK(...); } registers itself; each test runs in its
// own process so a crash is a failure, not the end of the run. `make test T=pattern` filters.
#pragma once
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

typedef void (*test_fn)(void);
void test_register(const char *name, test_fn fn, const char *file);
void test_fail_at(const char *file, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
extern int test_failures;   // failures in the current test (child process)

#define TEST(name)                                                                          \
    static void name(void);                                                                 \
    __attribute__((constructor)) static void register_##name(void) { test_register(#name, name, __FILE__); } \
    static void name(void)

#define CHECK(cond) \
    do { if (!(cond)) test_fail_at(__FILE__, __LINE__, "CHECK(%s)", #cond); } while (0)
#define CHECK_MSG(cond, ...) \
    do { if (!(cond)) test_fail_at(__FILE__, __LINE__, __VA_ARGS__); } while (0)
#define CHECK_EQ_INT(a, b)                                                                   \
    do { long long a_ = (long long)(a), b_ = (long long)(b);                                 \
         if (a_ != b_) test_fail_at(__FILE__, __LINE__, "%s == %s: %lld != %lld", #a, #b, a_, b_); } while (0)
#define CHECK_NEAR(a, b, tol)                                                                \
    do { double a_ = (double)(a), b_ = (double)(b);                                          \
         if (!(fabs(a_ - b_) <= (tol))) test_fail_at(__FILE__, __LINE__, "%s ~ %s: %.9g vs %.9g (tol %g)", #a, #b, a_, b_, (double)(tol)); } while (0)
// Stops the current test (after a failure that makes the rest meaningless).
#define REQUIRE(cond) \
    do { if (!(cond)) { test_fail_at(__FILE__, __LINE__, "REQUIRE(%s)", #cond); return; } } while (0)

// Error statistics of `got` against `want` (n values).
typedef struct { double max_abs, max_rel, max_ref; } err_stats;
err_stats compare_f32(const float *got, const float *want, size_t n);
// Fails the test when max_abs > tol; prints "label: max abs .. max rel .." either way.
void check_close(const char *label, const float *got, const float *want, size_t n, double tol);

// A path under ../shared (or $SINGLORA_SHARED).
const char *shared_path(const char *rel);
// A fresh temp directory for this test (removed by the runner), and a path inside it.
const char *tmp_path(const char *name);
// Runs a shell command, capturing stdout+stderr into out; returns the exit status.
int run_cmd(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
// The singlora binary under test ($SINGLORA_BIN, default ./singlora).
const char *singlora_bin(void);
// Deterministic uniform / normal test data.
void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi);
// Element i of a tensor's raw (mapped) bytes: a safetensors file may place a tensor at any byte
// offset, so typed loads straight from the mapping are undefined behaviour (UBSan: misaligned).
int64_t raw_i64(const void *data, int64_t i);
double raw_f64(const void *data, int64_t i);
float raw_f32(const void *data, int64_t i);
// An aligned copy of n raw bytes (free with free()).
void *raw_copy(const void *data, size_t n);
