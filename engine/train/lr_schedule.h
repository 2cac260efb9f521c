// Learning-rate schedules as diffusers' get_scheduler (a LambdaLR over optimizer steps):
// the lr of optimizer step K (1-based) is the schedule's value after K−1 scheduler steps, so
// with warm-up the first update has lr 0. s = K − 1, W = warm-up steps, N = total steps:
//   constant              base
//   constant_with_warmup  base·min(1, s/W)
//   linear                base·s/W during warm-up, then base·max(0, (N−s)/(N−W))
//   cosine                base·s/W during warm-up, then base·max(0, ½(1 + cos(π·p))), p = (s−W)/(N−W)
#pragma once
#include <stdint.h>

typedef enum { LR_CONSTANT, LR_CONSTANT_WITH_WARMUP, LR_LINEAR, LR_COSINE, LR_N_SCHEDULES } lr_schedule_kind;

typedef struct {
    lr_schedule_kind kind;
    double base;
    int64_t warmup, total;
} lr_schedule;

// -1 when the name is none of the above.
int lr_schedule_from_name(const char *name);
const char *lr_schedule_name(lr_schedule_kind k);
// The lr of optimizer step K >= 1.
double lr_schedule_at(const lr_schedule *s, int64_t K);
