// Command-line parsing helpers shared by the subcommands.
#pragma once
#include <stdint.h>

// Option names match with '_' and '-' interchangeable (--max-train-steps = --max_train_steps).
// If argv[*i] is `name` (followed by a value) or `name=VALUE`, stores the value, advances *i
// past it and returns 1. A missing value is a fatal error naming the option.
int arg_value(int argc, char **argv, int *i, const char *name, const char **val);
// If argv[i] is the flag `name`, returns 1.
int arg_flag(char **argv, int i, const char *name);
int arg_is_help(const char *a);
// The model options every model-reading command shares: --model PATH (alias
// --pretrained-model-name-or-path, diffusers' name), --config DIR, --variant V (config or
// variant NULL: that option is not taken). Returns 1 when argv[*i] was one of them.
int arg_model(int argc, char **argv, int *i, const char **model, const char **config, const char **variant);
// Numbers, range-checked once (engine/core/parse_num.h): a malformed or out-of-range value
// (trailing garbage, overflow, nan/inf) is a fatal error naming the option and the range.
long long arg_int_range(const char *opt, const char *s, long long lo, long long hi);
double arg_double_range(const char *opt, const char *s, double lo, double hi);
// A seed: an integer in [0, 2^64) (torch.Generator.manual_seed takes the same range).
uint64_t arg_seed(const char *opt, const char *s);
// The most OpenMP threads --threads takes (more only oversubscribes; far more crashes libgomp).
#define ARG_MAX_THREADS 1024
// --threads N, N in 1..ARG_MAX_THREADS.
int arg_threads(const char *opt, const char *s);
// If argv[*i] is --precision fp32|bf16 (or --precision=V), sets the precision every GEMM runs in
// (engine/kernels/gemm.h) and returns 1. An unknown value, or bf16 on a CPU without
// AVX512_BF16, is a fatal error naming the option.
int arg_precision(int argc, char **argv, int *i);
// If argv[i] is --profile, turns on the per-op profile (engine/core/profile.h: a table of time
// and GFLOP/s per op kind on stderr when the command ends) and returns 1.
int arg_profile(char **argv, int i);
// Dies with "unknown option" for argv[i].
_Noreturn void arg_unknown(const char *cmd, const char *a);
// Sets OpenMP (and so OpenBLAS) threads when n > 0.
void set_threads(int n);
