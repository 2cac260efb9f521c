#include "engine/core/parse_num.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>

#include "engine/core/error.h"

// strtoll/strtod skip leading white space; a number here starts at its first character.
static int starts_number(const char *s) { return *s && !isspace((unsigned char)*s); }

int parse_int(const char *what, const char *s, long long lo, long long hi, long long *out) {
    char *end = (char *)s;
    errno = 0;
    long long x = starts_number(s) ? strtoll(s, &end, 10) : 0;
    if (errno || end == s || *end || x < lo || x > hi)
        return sl_error(what, "'%s' is not an integer in %lld..%lld", s, lo, hi);
    *out = x;
    return 0;
}

int parse_u64(const char *what, const char *s, uint64_t *out) {
    char *end = (char *)s;
    errno = 0;
    // strtoull would accept "-1" as 2^64-1
    unsigned long long x = isdigit((unsigned char)*s) ? strtoull(s, &end, 10) : 0;
    if (errno || end == s || *end) return sl_error(what, "'%s' is not an integer in 0..2^64-1", s);
    *out = (uint64_t)x;
    return 0;
}

int parse_double(const char *what, const char *s, double lo, double hi, double *out) {
    char *end = (char *)s;
    double x = starts_number(s) ? strtod(s, &end) : NAN;
    // ERANGE alone is not an error: an underflow to 0 or a subnormal is a fine value
    if (end == s || *end || !isfinite(x) || x < lo || x > hi)
        return sl_error(what, "'%s' is not a number in %g..%g", s, lo, hi);
    *out = x;
    return 0;
}
