#include "engine/core/progress.h"

#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

double now_seconds(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void progress_start_with_clock(progress *p, const char *label, int total, double (*clock)(void), int is_tty) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->clock = clock;
    p->t_start = p->t_last_print = clock();
    p->is_tty = is_tty;
}

void progress_start(progress *p, const char *label, int total) {
    progress_start_with_clock(p, label, total, now_seconds, isatty(fileno(stderr)));
}

static void fmt_time(char *buf, size_t n, double s) {
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

// "R step/s, ETA m:ss" from the time since the start over the steps done
static void rate_and_eta(const progress *p, double now, char *buf, size_t len) {
    int steps = p->done - p->done_at_start;
    double per = steps > 0 ? (now - p->t_start) / steps : 0;
    char eta[32];
    fmt_time(eta, sizeof eta, per * (p->total > p->done ? p->total - p->done : 0));
    if (per >= 1 || per <= 0) snprintf(buf, len, "%.2f s/step, ETA %s", per, eta);
    else snprintf(buf, len, "%.2f step/s, ETA %s", 1 / per, eta);
}

void progress_line(const progress *p, double now, char *buf, size_t len) {
    char rate[64];
    rate_and_eta(p, now, rate, sizeof rate);
    snprintf(buf, len, "%s %d/%d %s%s%s", p->label, p->done, p->total, rate, p->extra[0] ? ", " : "", p->extra);
}

void progress_step(progress *p, const char *extra) {
    if (!p->stepped) p->done_at_start = p->done, p->stepped = 1;
    p->done++;
    if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
    double now = p->clock ? p->clock() : now_seconds();
    if (p->is_tty) {
        enum { WIDTH = 24 };
        char bar[WIDTH + 1], rate[64];
        int fill = p->total > 0 ? p->done * WIDTH / p->total : WIDTH;
        for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = 0;
        rate_and_eta(p, now, rate, sizeof rate);
        fprintf(stderr, "\r%s %d/%d [%s] %s%s%s\033[K", p->label, p->done, p->total, bar, rate, p->extra[0] ? ", " : "",
                p->extra);
    } else if (now - p->t_last_print >= 5 || p->done == p->total || p->done == p->done_at_start + 1) {
        char line[256];
        progress_line(p, now, line, sizeof line);
        fprintf(stderr, "%s\n", line);
        p->t_last_print = now;
    }
    fflush(stderr);
}

void progress_end(progress *p) {
    if (p->is_tty && p->done > 0) fputc('\n', stderr);
    fflush(stderr);
}
