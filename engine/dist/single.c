// The one-process stand-in for engine/dist/mpi.c (the default build): rank 0 of 1, every
// collective a no-op on the caller's buffer (sums over one rank), abort = exit.
#include <stdlib.h>

#include "engine/core/error.h"
#include "engine/dist/dist.h"
#include "engine/dist/internal.h"

int dist_init(int *argc, char ***argv) {
    (void)argc, (void)argv;
    if (dist_read_timeout_env() != 0) return sl_error(NULL, "SINGLORA_DIST_TIMEOUT is not a positive number of seconds");
    return 0;
}
int dist_rank(void) { return 0; }
int dist_size(void) { return 1; }
const char *dist_backend(void) { return "single"; }

int dist_allreduce_sum_f32(float *buf, int64_t n) {
    (void)buf;
    dist_count_reduced((uint64_t)n * sizeof(float));
    return 0;
}
int dist_allreduce_sum_f64(double *buf, int64_t n) {
    (void)buf;
    dist_count_reduced((uint64_t)n * sizeof(double));
    return 0;
}
int dist_barrier(void) { return 0; }
int dist_bcast(void *buf, size_t bytes, int root) {
    (void)buf, (void)bytes;
    return root == 0 ? 0 : sl_error(NULL, "dist: broadcast from rank %d in a one-process run", root);
}
_Noreturn void dist_abort(int code) { exit(code); }
void dist_finalize(void) {}
