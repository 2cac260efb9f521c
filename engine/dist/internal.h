// What the two back ends (mpi.c, single.c) share with timeout.c; not for other callers.
#pragma once
#include <stdint.h>

void dist_count_reduced(uint64_t bytes);
// Applies SINGLORA_DIST_TIMEOUT when set: 0, or -1 when it is not a positive number of seconds.
int dist_read_timeout_env(void);
