// A progress bar on stderr: "label  12/30 [#####.....] 1.23 s/step, ETA 0:22". When stderr is
// not a terminal it prints plain lines instead (at most one every few seconds, plus the last).
#pragma once

typedef struct {
    const char *label;
    int total, done;
    double t_start, t_last_print;
    int is_tty;
    char extra[96];    // e.g. "loss 0.123"
} progress;

void progress_start(progress *p, const char *label, int total);
// Marks one more step done; `extra` (may be NULL) is shown after the rate.
void progress_step(progress *p, const char *extra);
void progress_end(progress *p);
double now_seconds(void);   // monotonic clock
