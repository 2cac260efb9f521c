// --profile: wall seconds, calls and GFLOP per kind of op, counted at the kernels' entry points
// (engine/kernels/) and printed when the command ends. An op is counted only at the outermost
// level (a convolution's GEMMs count as the convolution, not as GEMMs) and outside OpenMP
// parallel regions (an op a parallel loop runs per thread is part of whatever encloses it);
// what no kernel covers shows as "other". Off by default: then an entry point costs one branch.
#pragma once
#include <stdio.h>

typedef enum {
    PROF_CONV,        // conv2d (im2col + GEMM)
    PROF_LINEAR,      // nn.Linear
    PROF_ATTENTION,   // softmax(QKᵀ)V, tiled
    PROF_GEMM,        // GEMMs called directly (adapters, merges), not inside another op
    PROF_NORM,        // GroupNorm, LayerNorm
    PROF_ACTIVATION,  // SiLU, GELU, GEGLU
    PROF_RESAMPLE,    // nearest upsampling
    PROF_N_OPS
} prof_op;

// Turns profiling on for the rest of the process and prints the table to stderr at exit.
void profile_enable(void);
int profile_enabled(void);
// profile_begin() before an op and profile_end() after it, in the same thread: the token says
// whether this call is counted (outermost, outside parallel regions).
double profile_begin(void);
void profile_end(double token, prof_op op, int backward, double flops);
// What was counted for one op and pass so far (calls, wall seconds, FLOPs).
void profile_get(prof_op op, int backward, long long *calls, double *seconds, double *flops);
// The table: per op and pass, calls, seconds, share of the profiled wall time, GFLOP, GFLOP/s.
void profile_print(FILE *f);

// Runs `call` as one counted op.
#define PROFILED(op, backward, flops, call)        \
    do {                                          \
        double prof_t0_ = profile_begin();        \
        call;                                     \
        profile_end(prof_t0_, op, backward, flops); \
    } while (0)
