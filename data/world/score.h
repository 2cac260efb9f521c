// Scoring one image against the scene its caption describes: the background colour, and for
// each object (matched to the image's largest components, in the assignment that matches most)
// its colour (a plain object's) and shape, and for the subject its fidelity (fidelity.h).
#pragma once
#include <stdint.h>

#include "data/world/fidelity.h"
#include "data/world/scene.h"

typedef struct {
    int is_subject;
    int want_shape, got_shape;      // got: -1 when no component was found for it
    int want_colour, got_colour;    // plain objects; -1 for the subject / not found
    int shape_right, colour_right;
    float shape_iou;                // IoU with the wanted shape's template
    fidelity_parts fidelity;        // the subject's (zeros otherwise)
} object_score;

typedef struct {
    int want_background, got_background, background_right;
    int n_objects, n_components;
    object_score obj[WORLD_MAX_OBJECTS];
} image_score;

// Scores rgb (h, w, 3) against want (a parsed caption). ref: the subject's reference when the
// caption names the subject (NULL otherwise; a subject object then scores 0).
void score_image(const uint8_t *rgb, int w, int h, const world_scene *want, const subject_reference *ref,
                 image_score *out);
