// Subject fidelity: how much a component of an image looks like the subject, in [0, 1],
// measured against the subject's own renders (FIDELITY_REFERENCE_PHOTOS photos at 64 px, crisp
// and after 1..FIDELITY_BLUR_LEVELS-1 box-blur passes: the level that matches best counts, so
// that a soft but faithful image is not marked down for its softness):
//   colour   histogram intersection of the palette colours over the component's interior
//   pattern  similarity (1 - L1 / sum) of the pattern colour's transition rates along the four
//            directions -, |, \, / (per pixel pair, times sqrt(area): scale-free); stripes are
//            anisotropic, dots and checks differ in density
//   accent   similarity of the accent colour's mean distance from the centroid (over
//            sqrt(area)): an outline lies at the rim, an eye at the centre
//   shape    IoU with the subject's shape template over the best template's IoU (1 when the
//            component reads as the subject's shape)
//   fidelity = colour * (pattern + accent) / 2 * shape
// A plain shape in the body colour scores about colour 0.5, pattern 0, accent 0: near 0.
#pragma once

#include "data/world/palette.h"
#include "data/world/segment.h"
#include "data/world/subject.h"

#define FIDELITY_REFERENCE_PHOTOS 16
#define FIDELITY_REFERENCE_SIZE 64
#define FIDELITY_BLUR_LEVELS 4

typedef struct {
    float hist[N_COLOURS];   // fraction of the interior's known pixels per palette colour
    float trans[4];               // pattern-colour transitions along -, |, \, /  (x sqrt(area))
    float accent_radius;          // mean accent-pixel distance from the centroid / sqrt(area); -1: none
} subject_features;

typedef struct {
    float colour, pattern, accent, shape, fidelity;
} fidelity_parts;

typedef struct {
    world_subject subject;
    subject_features ref[FIDELITY_BLUR_LEVELS];   // mean over the reference photos, per blur level
} subject_reference;

// Features of component k (for the subject's colours).
void fidelity_features(const world_segmentation *seg, int k, const world_subject *s, subject_features *f);
// Renders the subject's reference photos (fixed seed) and averages their features.
void fidelity_reference(subject_reference *ref, const world_subject *s);
// Fidelity of component k of seg, with its parts when parts is not NULL.
float fidelity_score(const subject_reference *ref, const world_segmentation *seg, int k, fidelity_parts *parts);
