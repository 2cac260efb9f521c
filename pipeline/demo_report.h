// OUT/report.md of `singlora demo`: the before/after table against the targets, the
// image grids it links (grid-photos.png, grid-base.png, grid-adapter.png, grid-drift-base.png,
// grid-drift-adapter.png) and the loss plot the trainer drew (train/loss.png); and
// OUT/result.json with the same numbers and the run's settings.
#pragma once
#include <stdint.h>

#include "data/world/caption.h"
#include "pipeline/demo.h"

typedef struct {
    const demo_opts *o;
    const demo_result *r;
    const char *spec;                          // the subject, as a spec
    const char (*subject_caps)[CAPTION_MAX];   // (o->n_prompts)
    const char (*plain_caps)[CAPTION_MAX];     // (o->n_drift)
    const uint8_t *photos;                     // (o->n_photos, size, size, 3)
    // (n, size, size, 3): base subject, base plain, adapter subject, adapter plain
    const uint8_t *rgb[4];
    int size;
} demo_report_data;

// 0, or -1 with sl_error.
int demo_write_report(const demo_report_data *d);
