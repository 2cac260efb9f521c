// Per-op profile (see profile.h).
#include "engine/core/profile.h"

#include <omp.h>
#include <stdlib.h>
#include <time.h>

static int enabled;
static double t_enabled;
static _Thread_local int depth;   // ops entered and not yet left on this thread

typedef struct {
    long long calls;
    double seconds, flops;
} prof_cell;
static prof_cell cells[PROF_N_OPS][2];   // [op][backward]

static const char *const OP_NAMES[PROF_N_OPS] = {"conv2d", "linear", "attention", "gemm (direct)", "norm", "activation",
                                                 "upsample"};

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void print_at_exit(void) { profile_print(stderr); }

void profile_enable(void) {
    if (enabled) return;
    enabled = 1;
    t_enabled = now();
    atexit(print_at_exit);
}

int profile_enabled(void) { return enabled; }

double profile_begin(void) {
    if (!enabled) return 0;
    return depth++ == 0 && !omp_in_parallel() ? now() : 0;
}

void profile_end(double token, prof_op op, int backward, double flops) {
    if (!enabled) return;
    depth--;
    if (token <= 0) return;
    prof_cell *c = &cells[op][backward != 0];
    c->calls++;
    c->seconds += now() - token;
    c->flops += flops;
}

void profile_get(prof_op op, int backward, long long *calls, double *seconds, double *flops) {
    const prof_cell *c = &cells[op][backward != 0];
    if (calls) *calls = c->calls;
    if (seconds) *seconds = c->seconds;
    if (flops) *flops = c->flops;
}

void profile_print(FILE *f) {
    if (!enabled) return;
    double wall = now() - t_enabled, counted = 0, flops = 0;
    int printed[PROF_N_OPS * 2] = {0};
    fprintf(f, "profile: %-14s %-8s %9s %10s %7s %10s %9s\n", "op", "pass", "calls", "seconds", "%", "GFLOP", "GFLOP/s");
    for (int done = 0; done < PROF_N_OPS * 2; done++) {   // rows by time, longest first
        int best = -1;
        for (int k = 0; k < PROF_N_OPS * 2; k++) {
            const prof_cell *c = &cells[k / 2][k % 2];
            if (c->calls > 0 && !printed[k] && (best < 0 || c->seconds > cells[best / 2][best % 2].seconds)) best = k;
        }
        if (best < 0) break;
        printed[best] = 1;
        const prof_cell *c = &cells[best / 2][best % 2];
        fprintf(f, "profile: %-14s %-8s %9lld %10.3f %6.1f%%", OP_NAMES[best / 2], best % 2 ? "backward" : "forward",
                c->calls, c->seconds, wall > 0 ? 100 * c->seconds / wall : 0.0);
        if (c->flops > 0) fprintf(f, " %10.2f %9.1f", c->flops * 1e-9, c->seconds > 0 ? c->flops * 1e-9 / c->seconds : 0.0);
        fputc('\n', f);
        counted += c->seconds, flops += c->flops;
    }
    fprintf(f, "profile: %-14s %-8s %9s %10.3f %6.1f%%\n", "other", "", "", wall - counted,
            wall > 0 ? 100 * (wall - counted) / wall : 0.0);
    fprintf(f, "profile: %-14s %-8s %9s %10.3f %6.1f%% %10.2f %9.1f\n", "total", "", "", wall, 100.0, flops * 1e-9,
            wall > 0 ? flops * 1e-9 / wall : 0.0);
}
