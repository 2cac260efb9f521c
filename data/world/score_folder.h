// `singlora world score`: every PNG in a folder scored against the caption beside it (NAME.txt,
// else NAME.json's "prompt" as `singlora sample` writes it, else the PNG's `parameters` text up
// to its first newline; a file named grid.png is skipped), written as one JSON report:
//   {"images": [{"file", "caption", "background": {"want", "got", "right"},
//                "objects": [{"want_shape", "got_shape", "shape_right", "shape_iou",
//                             "want_colour", "got_colour", "colour_right" | "subject_fidelity", ...}]}],
//    "aggregate": {"images", "background_right_pct", "objects", "object_colour_right_pct",
//                  "shape_right_pct", "subject_images", "subject_fidelity_mean"}}
// Percentages are over images (background), plain objects (colour) and all objects (shape).
#pragma once

#include "data/world/subject.h"

typedef struct {
    int images, background_right;
    int objects, shape_right;
    int plain_objects, colour_right;
    int subject_objects;
    double fidelity_sum;
} score_totals;

// subject/token: the subject captions may name (NULL: captions name none). out_json may be NULL.
// 0, or -1 with sl_error naming the folder or file (a missing or unparsable caption is an error).
int score_folder(const char *dir, const world_subject *subject, const char *token, const char *out_json,
                 score_totals *totals);
double score_pct(int num, int den);
