// Multi-process glue: the ranks of one job (Open MPI under `make MPI=1`, else a one-process
// stand-in with the same interface; the Makefile links exactly one of mpi.c / single.c). Every
// collective waits at most dist_timeout() seconds (SINGLORA_DIST_TIMEOUT, default 1800), so a
// rank that died or hangs becomes an error instead of a hang. Collectives return 0, or -1 with
// sl_error; the caller fails, and a failing rank of a multi-rank job aborts the whole job
// (MPI_Abort) with its own message, tagged "rank R/P".
#pragma once
#include <stddef.h>
#include <stdint.h>

// Starts the job (MPI_Init_thread, FUNNELED: only the main thread calls MPI), reads
// SINGLORA_DIST_TIMEOUT and, with several ranks, tags errors and warnings with the rank and
// makes a failing rank abort the job. 0, or -1 with sl_error.
int dist_init(int *argc, char ***argv);
int dist_rank(void);          // 0 .. dist_size() - 1
int dist_size(void);          // 1 for the stand-in
const char *dist_backend(void);   // "mpi" or "single"

// In-place sums over every rank (one collective call each; n may exceed INT_MAX).
int dist_allreduce_sum_f32(float *buf, int64_t n);
int dist_allreduce_sum_f64(double *buf, int64_t n);
// Every rank waits for the others.
int dist_barrier(void);
// Copies root's `bytes` bytes of buf to every rank's buf.
int dist_bcast(void *buf, size_t bytes, int root);
// Ends every rank of the job now, with exit code `code`.
_Noreturn void dist_abort(int code);
// Leaves the job (MPI_Finalize); no collective may follow.
void dist_finalize(void);

double dist_timeout(void);
void dist_set_timeout(double seconds);
// Bytes handed to the all-reduce calls so far on this rank (the bench's traffic figure).
uint64_t dist_bytes_reduced(void);

// The rank that does work item i of a list split round-robin.
static inline int dist_owner(int64_t i) { return (int)(i % dist_size()); }
static inline int dist_is_lead(void) { return dist_rank() == 0; }
