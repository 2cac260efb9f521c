// A progress bar on stderr: "label  12/30 [#####.....] 1.23 s/step, ETA 0:22". When stderr is
// not a terminal it prints plain lines instead (at most one every few seconds, plus the first and
// the last).
//
// Time runs from progress_start: call it right before the first step's work begins (not after
// the first step), so that after k steps the rate is k / (time since the start) and the count
// reads k/total. A resumed run may set `done` after progress_start: the steps done before are
// counted in k/total but not in the rate.
#pragma once
#include <stddef.h>

typedef struct {
    const char *label;
    int total, done;
    int done_at_start, stepped;   // `done` when the first step came: the rate counts the steps after
    double t_start, t_last_print;
    int is_tty;
    char extra[96];             // e.g. "loss 0.123"
    double (*clock)(void);      // now_seconds, or a test's clock (progress_start_with_clock)
} progress;

void progress_start(progress *p, const char *label, int total);
// The same with another clock (tests) and an explicit terminal / plain-lines choice.
void progress_start_with_clock(progress *p, const char *label, int total, double (*clock)(void), int is_tty);
// Marks one more step done; `extra` (may be NULL) is shown after the rate.
void progress_step(progress *p, const char *extra);
void progress_end(progress *p);
// The plain line progress_step prints for the current state at time `now` (no newline):
// "label done/total R step/s, ETA m:ss[, extra]" (or "R s/step" when a step takes >= 1 s).
void progress_line(const progress *p, double now, char *buf, size_t len);
double now_seconds(void);   // monotonic clock
