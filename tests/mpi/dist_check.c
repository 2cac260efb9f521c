// build-mpi/dist_check: the dist layer's collectives under mpirun, run by tests/test_dist_mpi.c.
//   dist_check sum         every collective against its closed form; prints "ok P <bytes>"
//   dist_check stall S     rank 1 sleeps S seconds before an all-reduce (set SINGLORA_DIST_TIMEOUT
//                          below S: the others must fail with a timeout, not hang)
//   dist_check fail        rank 1 fails while the others wait in a barrier: the job must end with
//                          rank 1's message
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/core/error.h"
#include "engine/dist/dist.h"

static int check_sum(void) {
    const int P = dist_size(), r = dist_rank();
    const int64_t n = 100003;   // not a multiple of anything
    float *f = malloc(sizeof *f * (size_t)n);
    double *d = malloc(sizeof *d * (size_t)n);
    for (int64_t i = 0; i < n; i++) f[i] = (float)(r + 1) * (float)(i % 7), d[i] = (r + 1) * 0.5 + (double)i;
    if (dist_allreduce_sum_f32(f, n) || dist_allreduce_sum_f64(d, n)) return -1;
    const double tri = P * (P + 1) / 2.0;
    for (int64_t i = 0; i < n; i++) {
        if (f[i] != (float)(tri * (double)(i % 7))) return sl_error(NULL, "dist_check: f32 sum [%lld] = %g, want %g", (long long)i, f[i], tri * (double)(i % 7));
        if (d[i] != tri * 0.5 + P * (double)i) return sl_error(NULL, "dist_check: f64 sum [%lld] = %.17g", (long long)i, d[i]);
    }
    char msg[64] = "";
    if (r == P - 1) snprintf(msg, sizeof msg, "from the last rank %d", r);
    if (dist_bcast(msg, sizeof msg, P - 1)) return -1;
    char want[64];
    snprintf(want, sizeof want, "from the last rank %d", P - 1);
    if (strcmp(msg, want)) return sl_error(NULL, "dist_check: broadcast gave '%s'", msg);
    if (dist_barrier()) return -1;
    if (r == 0) printf("ok %d %llu\n", P, (unsigned long long)dist_bytes_reduced());
    free(f);
    free(d);
    return 0;
}

int main(int argc, char **argv) {
    if (dist_init(&argc, &argv) != 0) sl_fail();
    const char *mode = argc > 1 ? argv[1] : "sum";
    int rc = 0;
    if (!strcmp(mode, "sum")) {
        rc = check_sum();
    } else if (!strcmp(mode, "stall")) {
        if (dist_rank() == 1) sleep((unsigned)(argc > 2 ? atoi(argv[2]) : 5));
        double x = 1;
        rc = dist_allreduce_sum_f64(&x, 1);
    } else if (!strcmp(mode, "fail")) {
        if (dist_rank() == 1) sl_die(NULL, "dist_check: deliberate failure on rank 1");
        rc = dist_barrier();
    } else {
        sl_die(NULL, "dist_check: unknown mode '%s'", mode);
    }
    if (rc != 0) sl_fail();
    dist_finalize();
    return 0;
}
