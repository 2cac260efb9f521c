// The Open MPI back end of engine/dist/dist.h (`make MPI=1`). Collectives are the non-blocking
// MPI calls (MPI_Iallreduce, MPI_Ibcast, MPI_Ibarrier) completed by polling MPI_Test against a
// deadline, so a rank that died or hangs turns into a one-line error on the others; errors
// return codes (MPI_ERRORS_RETURN) instead of killing the job silently.
#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/core/error.h"
#include "engine/dist/dist.h"
#include "engine/dist/internal.h"

static int g_rank = 0, g_size = 1, g_up = 0;

static void abort_job(int code) {
    if (g_up && g_size > 1) MPI_Abort(MPI_COMM_WORLD, code);
}

static int mpi_fail(int err, const char *what) {
    char msg[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(err, msg, &len);
    return sl_error(NULL, "dist: %s failed: %s", what, msg);
}

// Polls r until it completes or dist_timeout() passes.
static int wait_for(MPI_Request *r, const char *what, uint64_t bytes) {
    const double t0 = MPI_Wtime(), limit = dist_timeout();
    for (long spin = 0;; spin++) {
        int done = 0, err = MPI_Test(r, &done, MPI_STATUS_IGNORE);
        if (err != MPI_SUCCESS) return mpi_fail(err, what);
        if (done) return 0;
        if (MPI_Wtime() - t0 > limit)
            return sl_error(NULL, "dist: %s (%llu bytes) timed out after %g s: another rank died or hangs "
                            "(SINGLORA_DIST_TIMEOUT sets the limit)", what, (unsigned long long)bytes, limit);
        if (spin > 2000) {   // past the first microseconds, poll every 50 µs instead of spinning
            struct timespec ts = {0, 50000};
            nanosleep(&ts, NULL);
        }
    }
}

int dist_init(int *argc, char ***argv) {
    int provided = 0, err = MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided);
    if (err != MPI_SUCCESS) return sl_error(NULL, "dist: MPI_Init_thread failed (code %d)", err);
    g_up = 1;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    if (g_size > 1) {
        static char tag[48];
        snprintf(tag, sizeof tag, "rank %d/%d: ", g_rank, g_size);
        sl_error_set_tag(tag);
        sl_set_fail_hook(abort_job);
        if (g_rank != 0) sl_set_warnings(0);   // rank 0 speaks for the job; the others only fail
    }
    if (dist_read_timeout_env() != 0) return sl_error(NULL, "SINGLORA_DIST_TIMEOUT is not a positive number of seconds");
    return 0;
}

int dist_rank(void) { return g_rank; }
int dist_size(void) { return g_size; }
const char *dist_backend(void) { return "mpi"; }

static int allreduce(void *buf, int64_t n, MPI_Datatype t, size_t elem, const char *what) {
    dist_count_reduced((uint64_t)n * elem);
    for (int64_t off = 0; off < n;) {   // counts are ints: chunks of at most 2^30 elements
        int64_t c = n - off < ((int64_t)1 << 30) ? n - off : ((int64_t)1 << 30);
        MPI_Request r;
        int err = MPI_Iallreduce(MPI_IN_PLACE, (char *)buf + (size_t)off * elem, (int)c, t, MPI_SUM, MPI_COMM_WORLD, &r);
        if (err != MPI_SUCCESS) return mpi_fail(err, what);
        if (wait_for(&r, what, (uint64_t)c * elem) != 0) return -1;
        off += c;
    }
    return 0;
}

int dist_allreduce_sum_f32(float *buf, int64_t n) { return allreduce(buf, n, MPI_FLOAT, sizeof(float), "all-reduce (f32 sum)"); }
int dist_allreduce_sum_f64(double *buf, int64_t n) { return allreduce(buf, n, MPI_DOUBLE, sizeof(double), "all-reduce (f64 sum)"); }

int dist_barrier(void) {
    MPI_Request r;
    int err = MPI_Ibarrier(MPI_COMM_WORLD, &r);
    if (err != MPI_SUCCESS) return mpi_fail(err, "barrier");
    return wait_for(&r, "barrier", 0);
}

int dist_bcast(void *buf, size_t bytes, int root) {
    if (root < 0 || root >= g_size) return sl_error(NULL, "dist: broadcast from rank %d of %d", root, g_size);
    for (size_t off = 0; off < bytes;) {
        size_t c = bytes - off < ((size_t)1 << 30) ? bytes - off : ((size_t)1 << 30);
        MPI_Request r;
        int err = MPI_Ibcast((char *)buf + off, (int)c, MPI_BYTE, root, MPI_COMM_WORLD, &r);
        if (err != MPI_SUCCESS) return mpi_fail(err, "broadcast");
        if (wait_for(&r, "broadcast", c) != 0) return -1;
        off += c;
    }
    return 0;
}

_Noreturn void dist_abort(int code) {
    fflush(stderr);
    if (g_up) MPI_Abort(MPI_COMM_WORLD, code);
    _Exit(code);
}

void dist_finalize(void) {
    if (g_up) MPI_Finalize();
    g_up = 0;
}
