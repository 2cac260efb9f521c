// Whole-string numbers with a range: the one parser for every number a user or a file gives
// (command-line options, recipes, adapter metadata, PNG parameters), so each is range-checked
// once and no value wraps, overflows or turns into nan/inf on the way in.
#pragma once
#include <stdint.h>

// A base-10 integer in lo..hi: no leading space, no trailing garbage, no overflow. `what` names
// the source in the error, which reads "<what>: '<s>' is not an integer in LO..HI".
// 0, or -1 with sl_error.
int parse_int(const char *what, const char *s, long long lo, long long hi, long long *out);
// An unsigned integer in 0..2^64-1 (a seed); a sign is refused.
int parse_u64(const char *what, const char *s, uint64_t *out);
// A finite number in lo..hi (nan, inf and values that overflow a double are refused):
// "<what>: '<s>' is not a number in LO..HI".
int parse_double(const char *what, const char *s, double lo, double hi, double *out);
