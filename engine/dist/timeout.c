// dist_timeout / dist_set_timeout and the traffic counter, shared by both back ends.
#include <stdlib.h>

#include "engine/dist/dist.h"
#include "engine/dist/internal.h"

static double g_timeout = 1800.0;
static uint64_t g_bytes;

double dist_timeout(void) { return g_timeout; }
void dist_set_timeout(double s) { g_timeout = s > 0 ? s : 1800.0; }
uint64_t dist_bytes_reduced(void) { return g_bytes; }
void dist_count_reduced(uint64_t bytes) { g_bytes += bytes; }

int dist_read_timeout_env(void) {
    const char *v = getenv("SINGLORA_DIST_TIMEOUT");
    if (!v || !*v) return 0;
    char *end;
    double s = strtod(v, &end);
    if (*end || !(s > 0)) return -1;
    dist_set_timeout(s);
    return 0;
}
