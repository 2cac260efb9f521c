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
// Parse numbers; a malformed value is a fatal error naming the option.
long arg_long(const char *opt, const char *s);
double arg_double(const char *opt, const char *s);
// A seed: an integer in [0, 2^64) (torch.Generator.manual_seed takes the same range).
uint64_t arg_seed(const char *opt, const char *s);
// Dies with "unknown option" for argv[i].
_Noreturn void arg_unknown(const char *cmd, const char *a);
// Sets OpenMP (and so OpenBLAS) threads when n > 0.
void set_threads(int n);
