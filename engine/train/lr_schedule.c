#include "engine/train/lr_schedule.h"

#include <math.h>
#include <string.h>

static const char *NAMES[LR_N_SCHEDULES] = {"constant", "constant_with_warmup", "linear", "cosine"};

int lr_schedule_from_name(const char *name) {
    for (int i = 0; i < LR_N_SCHEDULES; i++)
        if (strcmp(name, NAMES[i]) == 0) return i;
    return -1;
}

const char *lr_schedule_name(lr_schedule_kind k) { return (unsigned)k < LR_N_SCHEDULES ? NAMES[k] : "?"; }

static double max1(int64_t x) { return x > 1 ? (double)x : 1.0; }

double lr_schedule_at(const lr_schedule *s, int64_t K) {
    const double step = (double)(K - 1), W = (double)s->warmup, N = (double)s->total;
    switch (s->kind) {
    case LR_CONSTANT:
        return s->base;
    case LR_CONSTANT_WITH_WARMUP:
        return step < W ? s->base * step / max1(s->warmup) : s->base;
    case LR_LINEAR:
        if (step < W) return s->base * step / max1(s->warmup);
        return s->base * fmax(0.0, (N - step) / max1(s->total - s->warmup));
    case LR_COSINE: {
        if (step < W) return s->base * step / max1(s->warmup);
        double p = (step - W) / max1(s->total - s->warmup);
        return s->base * fmax(0.0, 0.5 * (1.0 + cos(M_PI * 0.5 * 2.0 * p)));
    }
    default:
        return s->base;
    }
}
