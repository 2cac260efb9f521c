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

void progress_start(progress *p, const char *label, int total) {
    memset(p, 0, sizeof *p);
    p->label = label;
    p->total = total;
    p->t_start = p->t_last_print = now_seconds();
    p->is_tty = isatty(fileno(stderr));
}

static void fmt_time(char *buf, size_t n, double s) {
    int t = (int)(s + 0.5);
    if (t >= 3600) snprintf(buf, n, "%d:%02d:%02d", t / 3600, t / 60 % 60, t % 60);
    else snprintf(buf, n, "%d:%02d", t / 60, t % 60);
}

void progress_step(progress *p, const char *extra) {
    p->done++;
    if (extra) snprintf(p->extra, sizeof p->extra, "%s", extra);
    double now = now_seconds(), elapsed = now - p->t_start;
    double per = elapsed / p->done;
    char eta[32];
    fmt_time(eta, sizeof eta, per * (p->total - p->done));
    char rate[32];
    if (per >= 1 || per == 0) snprintf(rate, sizeof rate, "%.2f s/step", per);
    else snprintf(rate, sizeof rate, "%.2f step/s", 1 / per);
    if (p->is_tty) {
        enum { WIDTH = 24 };
        char bar[WIDTH + 1];
        int fill = p->total > 0 ? p->done * WIDTH / p->total : WIDTH;
        for (int i = 0; i < WIDTH; i++) bar[i] = i < fill ? '#' : '.';
        bar[WIDTH] = 0;
        fprintf(stderr, "\r%s %d/%d [%s] %s, ETA %s%s%s\033[K", p->label, p->done, p->total, bar, rate, eta,
                p->extra[0] ? ", " : "", p->extra);
    } else if (now - p->t_last_print >= 5 || p->done == p->total || p->done == 1) {
        fprintf(stderr, "%s %d/%d %s, ETA %s%s%s\n", p->label, p->done, p->total, rate, eta, p->extra[0] ? ", " : "",
                p->extra);
        p->t_last_print = now;
    }
    fflush(stderr);
}

void progress_end(progress *p) {
    if (p->is_tty) fputc('\n', stderr);
    fflush(stderr);
}
